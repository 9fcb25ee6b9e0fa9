"""What a job used beyond Python: the system packages that own the executables and shared
libraries it ran (dpkg, or rpm where that is the system's manager), the active conda
environment, and the container it ran in.

The package owners are looked up once and cached, not per run: for dpkg, an index of the
executables and libraries every installed package owns, read from /var/lib/dpkg (about 0.15 s,
once per roard) and read again only when the dpkg database changes; for rpm, `rpm -qf` for the
paths not yet known, remembered until the rpm database changes. Paths are compared resolved
(`/bin/sh` as the tracer sees it, `/usr/bin/dash`), so merged-/usr systems match.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping

from roar.model import CondaEnv, Container, Package, SystemPackages

DPKG = "/var/lib/dpkg"
RPM_DBS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
_LIBRARY = re.compile(rb"\.so(\.[0-9.]+)?$")
_BIN_DIRS = (b"/bin/", b"/sbin/", b"/libexec/")
_RPM_TIMEOUT = 20.0


def wanted(path: bytes) -> bool:
    """An executable's or a shared library's path: what the package owners are found for."""
    return bool(_LIBRARY.search(path)) or any(d in path for d in _BIN_DIRS)


def _stamp(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class _Dpkg:
    """path (resolved) -> package, and package -> version, from dpkg's own files."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.stamp: int | None = None
        self.owners: dict[bytes, str] = {}
        self.versions: dict[str, str] = {}
        self.lock = threading.Lock()

    def fresh(self) -> _Dpkg:
        stamp = _stamp(os.path.join(self.root, "status"))
        with self.lock:
            if stamp != self.stamp:
                self.owners, self.versions = _read_dpkg(self.root)
                self.stamp = stamp
        return self


def _read_dpkg(root: str) -> tuple[dict[bytes, str], dict[str, str]]:
    versions: dict[str, str] = {}
    name = arch = version = None
    installed = False
    try:
        with open(os.path.join(root, "status"), encoding="utf-8", errors="replace") as f:
            for line in [*f, "\n"]:
                if not line.strip():
                    if name and version and installed:
                        versions[name] = version
                        if arch:
                            versions[f"{name}:{arch}"] = version
                    name = arch = version = None
                    installed = False
                elif line.startswith("Package:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("Architecture:"):
                    arch = line.split(":", 1)[1].strip()
                elif line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
                elif line.startswith("Status:"):
                    installed = line.split()[-1] == "installed"
    except OSError:
        return {}, {}
    owners: dict[bytes, str] = {}
    real_dirs: dict[bytes, bytes] = {}
    info = os.path.join(root, "info")
    try:
        lists = [e for e in os.listdir(info) if e.endswith(".list")]
    except OSError:
        lists = []
    for entry in sorted(lists):
        package = entry[: -len(".list")]
        try:
            with open(os.path.join(info, entry), "rb") as f:
                for line in f:
                    path = line.rstrip(b"\n")
                    if not wanted(path):
                        continue
                    head, _, tail = path.rpartition(b"/")
                    real = real_dirs.get(head)
                    if real is None:
                        real = real_dirs[head] = os.path.realpath(head or b"/")
                    owners.setdefault(os.path.join(real, tail), package)
                    owners.setdefault(path, package)
        except OSError:
            continue
    return owners, versions


class _Rpm:
    """Owners looked up with `rpm -qf` for the paths not seen before, until the db changes."""

    def __init__(self) -> None:
        self.stamp: int | None = None
        self.owners: dict[bytes, Package | None] = {}
        self.lock = threading.Lock()

    def lookup(self, paths: list[bytes]) -> dict[bytes, Package | None]:
        stamp = next((s for s in map(_stamp, RPM_DBS) if s is not None), None)
        with self.lock:
            if stamp != self.stamp:
                self.owners, self.stamp = {}, stamp
            todo = [p for p in paths if p not in self.owners]
            for start in range(0, len(todo), 500):
                chunk = todo[start : start + 500]
                self.owners.update(zip(chunk, _rpm_query(chunk), strict=True))
            return {p: self.owners[p] for p in paths}


def _rpm_query(paths: list[bytes]) -> list[Package | None]:
    """One owner per path (None: no package owns it), as `rpm -qf` answers, line by line."""
    try:
        proc = subprocess.run(
            ["rpm", "-qf", "--queryformat", "%{NAME}.%{ARCH} %{VERSION}-%{RELEASE}\\n", *paths],
            capture_output=True,
            timeout=_RPM_TIMEOUT,
            check=False,
            env={"PATH": os.defpath, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return [None] * len(paths)
    return parse_rpm(proc.stdout.decode("utf-8", "replace"), len(paths))


def parse_rpm(out: str, n: int) -> list[Package | None]:
    """`rpm -qf --queryformat '%{NAME}.%{ARCH} %{VERSION}-%{RELEASE}\\n'`'s answer: a line per
    path, "file X is not owned by any package" for the unowned ones."""
    found: list[Package | None] = []
    for line in out.splitlines()[:n]:
        name, sep, version = line.strip().partition(" ")
        owned = sep and not line.startswith(("file ", "error:")) and "not owned" not in line
        found.append(Package(name=name, version=version) if owned else None)
    return found + [None] * (n - len(found))


_dpkg = _Dpkg(DPKG)
_rpm = _Rpm()


def manager() -> str | None:
    """The system's package manager: dpkg where its database exists, else rpm, else None."""
    if os.path.isfile(os.path.join(DPKG, "status")):
        return "dpkg"
    if any(os.path.isdir(d) for d in RPM_DBS):
        return "rpm"
    return None


def packages(paths: Iterable[bytes]) -> SystemPackages | None:
    """The packages owning these (resolved) executables and libraries; None without a package
    manager or without such paths."""
    used = sorted({p for p in paths if wanted(p)})
    kind = manager()
    if kind is None or not used:
        return None
    found: dict[str, str] = {}
    unowned = 0
    if kind == "dpkg":
        db = _dpkg.fresh()
        for path in used:
            owner = db.owners.get(path)
            if owner is None:
                unowned += 1
            else:
                found[owner] = db.versions.get(owner, "unknown")
    else:
        for owner_pkg in _rpm.lookup(used).values():
            if owner_pkg is None:
                unowned += 1
            else:
                found[owner_pkg.name] = owner_pkg.version
    listed = [Package(name=n, version=v) for n, v in sorted(found.items())]
    return SystemPackages(manager=kind, packages=listed, unowned=unowned)  # type: ignore[arg-type]


def installed(names: Iterable[str], kind: str) -> dict[str, str | None]:
    """This machine's versions of these packages now (None: not installed)."""
    names = list(names)
    if kind == "dpkg" and manager() == "dpkg":
        versions = _dpkg.fresh().versions
        return {n: versions.get(n) for n in names}
    if kind == "rpm" and manager() == "rpm":
        return {n: _rpm_version(n) for n in names}
    return dict.fromkeys(names)


def _rpm_version(name: str) -> str | None:
    try:
        proc = subprocess.run(
            ["rpm", "-q", "--queryformat", "%{VERSION}-%{RELEASE}", name],
            capture_output=True,
            timeout=_RPM_TIMEOUT,
            check=False,
            env={"PATH": os.defpath, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


# ---------------------------------------------------------------- conda


def conda(env: Mapping[str, str]) -> CondaEnv | None:
    """The active conda environment of a run's environment (CONDA_PREFIX), if any."""
    prefix = env.get("CONDA_PREFIX")
    if not prefix or not os.path.isabs(prefix):
        return None
    name = env.get("CONDA_DEFAULT_ENV") or os.path.basename(prefix.rstrip("/")) or None
    meta = os.path.join(prefix, "conda-meta")
    return CondaEnv(prefix=prefix, name=name, packages=list(conda_packages(meta, _stamp(meta))))


@functools.lru_cache(maxsize=32)
def conda_packages(meta: str, stamp: int | None) -> tuple[Package, ...]:
    """The packages of a conda environment, from its conda-meta/*.json records (cached while
    the directory is unchanged: installing or removing a package changes its mtime)."""
    if stamp is None:
        return ()
    found: dict[str, str] = {}
    try:
        entries = os.listdir(meta)
    except OSError:
        return ()
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        try:
            with open(os.path.join(meta, entry), encoding="utf-8") as f:
                record = json.load(f)
            name, version = record["name"], record["version"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(name, str) and isinstance(version, str):
            found[name] = version
    return tuple(Package(name=n, version=v) for n, v in sorted(found.items()))


# ---------------------------------------------------------------- containers


def container(root: str = "/") -> Container | None:
    """The container this machine is, if it is one: podman's /run/.containerenv (which names
    the image), docker's /.dockerenv, Kubernetes' service account, or the `container`
    variable systemd-nspawn and lxc give PID 1. `root` is for tests."""
    path = os.path.join(root, "run/.containerenv")
    if os.path.exists(path):
        fields = _containerenv(path)
        return Container(
            runtime=fields.get("engine", "podman").split("-")[0] or "podman",
            image=fields.get("image") or None,
            id=fields.get("id") or None,
        )
    if os.path.exists(os.path.join(root, ".dockerenv")):
        return Container(runtime="docker", id=_cgroup_id(os.path.join(root, "proc/self/cgroup")))
    if os.path.isdir(os.path.join(root, "var/run/secrets/kubernetes.io")):
        return Container(runtime="kubernetes")
    init_env = _pid1_container(os.path.join(root, "proc/1/environ"))
    if init_env:
        return Container(runtime=init_env)
    return None


def _containerenv(path: str) -> dict[str, str]:
    fields = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip('"')
    except OSError:
        pass
    return fields


_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")


def _cgroup_id(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = _CONTAINER_ID.search(f.read())
    except OSError:
        return None
    return m.group(1)[:12] if m else None


def _pid1_container(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"container="):
                    return item.split(b"=", 1)[1].decode("utf-8", "replace") or None
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=1)
def this_container() -> Container | None:
    """The container roard runs in (the runs it records run there too): looked up once."""
    return container()
