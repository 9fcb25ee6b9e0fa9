"""The Python distributions an interpreter sees: name and version of each, first on sys.path wins.

The interpreter is asked once for its sys.path (a subprocess, ~20-50 ms); the site directories
are then read directly — only the first header lines of each METADATA/PKG-INFO — which is much
faster than importing importlib.metadata in the target. Both results are cached and revalidated
by stat: the interpreter's (mtime, inode) for sys.path, the sys.path directories' mtimes for
both (installing or removing a distribution, or a .pth, changes its directory's mtime).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections import OrderedDict
from typing import TypeVar

from roar.model import Package

_SCRIPT = "import json, sys; print(json.dumps(sys.path))"
_TIMEOUT = 10.0
_CACHE_SIZE = 64
_PYTHON = re.compile(r"(?:python|pypy)(?:\d+(?:\.\d+)*)?(?:t|d|m|dm|w|-dbg)?(?:\.exe)?")
_NORMALIZE = re.compile(r"[-_.]+")

_K = TypeVar("_K")
_V = TypeVar("_V")

Stamps = tuple[tuple[str, int], ...]


class _Lru(OrderedDict[_K, _V]):
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_fresh(self, key: _K) -> _V | None:
        with self.lock:
            value = self.get(key)
            if value is not None:
                self.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


_sys_paths: _Lru[tuple[str, int, int, int], tuple[list[str], Stamps]] = _Lru(_CACHE_SIZE)
_listings: _Lru[Stamps, list[Package]] = _Lru(_CACHE_SIZE)


def is_python(exe: str) -> bool:
    """Whether an executable's basename names a Python interpreter (python3.11, pythonw, ...)."""
    return bool(_PYTHON.fullmatch(os.path.basename(exe)))


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return _NORMALIZE.sub("-", name).lower()


def _stamps(dirs: list[str]) -> Stamps:
    out = []
    for d in dirs:
        try:
            out.append((d, os.stat(d).st_mtime_ns))
        except OSError:
            out.append((d, -1))
    return tuple(out)


def _probe(interpreter: str) -> list[str] | None:
    """Ask the interpreter for its sys.path (absolute directories only)."""
    try:
        proc = subprocess.run(
            [interpreter, "-c", _SCRIPT],
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            return None
        paths = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not isinstance(paths, list):
        return None
    dirs = [p for p in paths if isinstance(p, str) and os.path.isabs(p) and os.path.isdir(p)]
    return list(dict.fromkeys(dirs))


def _sys_path(interpreter: str) -> tuple[list[str], Stamps] | None:
    try:
        st, lst = os.stat(interpreter), os.lstat(interpreter)
    except OSError:
        return None
    key = (interpreter, st.st_mtime_ns, st.st_ino, lst.st_ino)
    cached = _sys_paths.get_fresh(key)
    if cached is not None and _stamps(cached[0]) == cached[1]:
        return cached
    paths = _probe(interpreter)
    if paths is None:
        return None
    entry = (paths, _stamps(paths))
    _sys_paths.put(key, entry)
    return entry


def _read_metadata(path: str) -> tuple[str, str] | None:
    """Name and Version from the header of a METADATA/PKG-INFO file."""
    name = version = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                if not line.strip() or n > 200:  # the headers end at the first blank line
                    break
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                if key == "Name" and name is None:
                    name = value.strip()
                elif key == "Version" and version is None:
                    version = value.strip()
                if name and version:
                    return name, version
    except OSError:
        return None
    return None


def _distribution(directory: str, entry: str) -> tuple[str, str] | None:
    path = os.path.join(directory, entry)
    if entry.endswith(".dist-info"):
        found = _read_metadata(os.path.join(path, "METADATA"))
    elif os.path.isdir(path):
        found = _read_metadata(os.path.join(path, "PKG-INFO"))
    else:  # a single-file .egg-info is the PKG-INFO itself
        found = _read_metadata(path)
    if found is None:  # fall back on the directory name: name-version.dist-info
        stem = entry.rsplit(".", 1)[0]
        name, sep, version = stem.partition("-")
        if not sep or not name:
            return None
        found = (name, version.split("-")[0] or "unknown")
    return found


def _scan(dirs: list[str]) -> list[Package]:
    seen: dict[str, Package] = {}
    for d in dirs:
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            found = _distribution(d, entry)
            if found is not None:
                seen.setdefault(normalize(found[0]), Package(name=found[0], version=found[1]))
    return [seen[k] for k in sorted(seen)]


def python_packages(interpreter: str) -> list[Package]:
    """Distributions visible to the interpreter at this path, sorted by normalized name.

    Give the absolute path the program was exec'd with (a venv's bin/python), not its resolved
    target. Returns [] when the path is relative, not a Python interpreter, or anything fails.
    """
    if not os.path.isabs(interpreter) or not is_python(interpreter):
        return []
    found = _sys_path(interpreter)
    if found is None:
        return []
    paths, stamps = found
    listing = _listings.get_fresh(stamps)
    if listing is None:
        listing = _scan(paths)
        _listings.put(stamps, listing)
    return list(listing)


_origins: _Lru[Stamps, dict[str, dict[str, object]]] = _Lru(_CACHE_SIZE)


def origins(interpreter: str) -> dict[str, dict[str, object]] | None:
    """Where the interpreter's distributions that were not installed from an index came from:
    normalized name -> their PEP 610 direct_url.json (`url` and `dir_info`, `archive_info` or
    `vcs_info`). None when the interpreter is not on this machine (any more)."""
    if not os.path.isabs(interpreter) or not is_python(interpreter):
        return None
    found = _sys_path(interpreter)
    if found is None:
        return None
    paths, stamps = found
    known: dict[str, dict[str, object]] | None = _origins.get_fresh(stamps)
    if known is None:
        known = {}
        seen: set[str] = set()
        for d in paths:  # the first on sys.path wins, as for the names
            try:
                entries = sorted(os.listdir(d))
            except OSError:
                continue
            for entry in entries:
                if not entry.endswith(".dist-info"):
                    continue
                found_name = _distribution(d, entry)
                if found_name is None or normalize(found_name[0]) in seen:
                    continue
                seen.add(normalize(found_name[0]))
                try:
                    with open(os.path.join(d, entry, "direct_url.json"), encoding="utf-8") as f:
                        record = json.load(f)
                except (OSError, ValueError):
                    continue
                if isinstance(record, dict) and isinstance(record.get("url"), str):
                    known[normalize(found_name[0])] = record
        _origins.put(stamps, known)
    return dict(known)
