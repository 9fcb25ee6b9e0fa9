"""Python environments for `reproduce`: a virtualenv per distinct (interpreter, package set),
made once under roar's data directory (`envs/<key>`) and reused by every later reproduction.

The key is the BLAKE3 of the base interpreter (its real path and `sys.version`) and the exact
requirements. An environment is made with `python -m venv --without-pip` from the interpreter
the job ran (a venv's python makes a venv of its base), then the recorded versions are
installed exactly, without dependency resolution (`--no-deps`: the recorded set is already
complete), with `uv pip` when uv is installed, else pip. The base's own bundled wheels
(ensurepip) are offered as a find-links directory, so pip and setuptools at the versions a
`python -m venv` gave need no index. What got installed is then listed and compared with the
requirements: an environment is marked complete (`.roar-env`) only when they match.

An interpreter a build step of the plan installs into (`pip install -e .`) gets an environment
of that reproduction's own (its key also holds the reproduction directory): a build must not
change an environment another reproduction shares.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from roar.paths import paths
from roar.protocol import PlanInterpreter
from roarctl.errors import RoarError

MARKER = ".roar-env"
_PROBE = (
    "import json, os, sys\n"
    "try:\n import ensurepip\n bundled = os.path.join(os.path.dirname(ensurepip.__file__),"
    " '_bundled')\nexcept ImportError:\n bundled = None\n"
    "print(json.dumps({'version': sys.version, 'base': os.path.realpath("
    "getattr(sys, '_base_executable', sys.executable)), 'bundled': bundled}))"
)
_LIST = (
    "import importlib.metadata as m, json\n"
    "print(json.dumps(sorted([d.metadata['Name'], d.version] for d in m.distributions())))"
)
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==|@)\s*(.+)$")
_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    return _NORMALIZE.sub("-", name).lower()


def envs_dir() -> Path:
    return paths().data / "envs"


def environment(
    interp: PlanInterpreter, into: bytes, note: Callable[[str], None]
) -> tuple[Path, bool]:
    """The environment for a recorded interpreter and package set: (its directory, whether it
    was made now). RoarError when it cannot be made."""
    if not os.path.exists(interp.path):
        raise RoarError(f"the interpreter {interp.path} is not on this machine")
    info = _probe(interp.path)
    requirements = sorted(interp.requirements)
    keyed = [info["base"], info["version"], requirements]
    if interp.build:
        keyed.append(os.fsdecode(into))
    key = blake3.blake3(json.dumps(keyed).encode()).hexdigest()[:16]
    root = envs_dir() / key
    root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another reproduction making the same one: wait
        if (root / MARKER).exists():
            return root, False
        if root.exists():  # an earlier attempt that did not finish
            shutil.rmtree(root)
        what = f"{len(requirements)} package(s)" if requirements else "no packages"
        note(f"making an environment for {interp.path} ({what}) in {root}")
        _run([interp.path, "-m", "venv", "--without-pip", str(root)], "python -m venv")
        python = root / "bin" / "python"
        if requirements:
            _install(python, requirements, info.get("bundled"))
        _check(python, requirements)
        (root / MARKER).write_text(
            json.dumps(
                {"interpreter": interp.path, "requirements": requirements, "made": time.time()}
            )
        )
    return root, True


def _probe(interpreter: str) -> dict[str, str]:
    try:
        out = subprocess.run(
            [interpreter, "-c", _PROBE],
            capture_output=True,
            check=True,
            timeout=60,
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
        ).stdout
        info: dict[str, str] = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise RoarError(f"cannot run the interpreter {interpreter}: {exc}") from None
    return info


def _install(python: Path, requirements: list[str], bundled: str | None) -> None:
    links = ["--find-links", bundled] if bundled and os.path.isdir(bundled) else []
    uv = shutil.which("uv")
    if uv is not None:
        cmd = [uv, "pip", "install", "--python", str(python), "--no-deps", *links, *requirements]
    else:
        import importlib.util

        if importlib.util.find_spec("pip") is None:
            raise RoarError(
                "installing the recorded packages needs uv or pip, and neither is installed",
                "install uv (https://docs.astral.sh/uv/) or pip beside roar",
            )
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-input",
            "--disable-pip-version-check",
            "--quiet",
            *links,
            *requirements,
        ]
    _run(
        cmd, "installing " + ", ".join(requirements[:5]) + (" ..." if len(requirements) > 5 else "")
    )


def _check(python: Path, requirements: list[str]) -> None:
    """What the environment holds is exactly what was asked for."""
    out = _run([str(python), "-c", _LIST], "listing the environment's packages")
    have = {normalize(name): version for name, version in json.loads(out)}
    wanted: dict[str, str | None] = {}
    for req in requirements:
        m = _NAME.match(req)
        if m is None:
            raise RoarError(f"cannot read the requirement {req!r}")
        wanted[normalize(m.group(1))] = m.group(3).strip() if m.group(2) == "==" else None
    wrong = [
        f"{name} {have.get(name, 'missing')} (wanted {version or 'from its URL'})"
        for name, version in wanted.items()
        if name not in have or (version is not None and have[name] != version)
    ]
    extra = sorted(set(have) - set(wanted))
    if wrong or extra:
        raise RoarError(
            "the environment does not hold the recorded packages: "
            + "; ".join(wrong + [f"{name} (not recorded)" for name in extra])
        )


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=3600, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RoarError(f"{what} failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RoarError(f"{what} failed (exit {proc.returncode}): " + " / ".join(tail))
    return proc.stdout
