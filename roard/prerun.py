"""The prerun file: which runs must have roard's answer before their command starts.

`roarctl run` starts the command at once and announces it to roard while it runs (an *early
start*: roard's start-up work, git state and the CLI's own imports then cost the command
nothing), unless roard's answer could change how the command runs:

- project env vars (`roarctl env set`) go into the command's environment: roard lists here
  the roots of the projects that have some;
- a hygiene rule (`committed_code_only`) may refuse the run: roarctl looks for one itself, in
  the .roar/config.toml of the working directory and of every directory above it, so a rule
  written a moment ago is never missed.

roard writes the file (`roard <version>`, then one root per line) when it starts and on every
env change, and removes it when it stops. No file, or one from another roard version, means
wait: the safe way, which also starts or replaces roard as before.

Imported by `roarctl run` before it starts the command: only `os` at import time.
"""

from __future__ import annotations

import os

from roard import __version__
from roard.paths import PRERUN, runtime_base

TYPE_CHECKING = False  # not `from typing`: this module loads before the command starts

if TYPE_CHECKING:
    from roard.daemon import Daemon

_HEADER = f"roard {__version__}".encode()
_RULES = (b"committed_code_only",)  # hygiene rules that can refuse a run


def early_start(cwd: bytes) -> tuple[bool, bytes | None]:
    """(may a run in `cwd` start before roard answers, the git work tree around cwd).

    roard takes the git state (dirty files hashed) while an early command runs, so the
    command must not change a file of that tree first: `roarctl run` holds a command that is
    about to change an existing file under it until roard has answered. Files the command
    creates are left out of the git state by roard at finish."""
    if os.environ.get("ROAR_EARLY") == "0":
        return False, None
    try:
        with open(os.path.join(runtime_base(), PRERUN), "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return False, None
    if lines[0] != _HEADER:
        return False, None
    for root in lines[1:]:
        if root and (root == b"/" or cwd == root or cwd.startswith(root + b"/")):
            return False, None
    return _look_up(cwd)


def _look_up(cwd: bytes) -> tuple[bool, bytes | None]:
    """From cwd up to /: (no hygiene rule set to true in a .roar/config.toml, the nearest
    directory holding .git). A rule is a line naming it and `true`: TOML keeps a key and its
    value on one line."""
    path, tree = cwd, None
    while True:
        try:
            with open(os.path.join(path, b".roar", b"config.toml"), "rb") as f:
                text = f.read()
        except OSError:
            text = b""
        if any(rule in text for rule in _RULES):
            for line in text.splitlines():
                if b"true" in line and any(rule in line for rule in _RULES):
                    return False, None
        if tree is None and os.path.lexists(os.path.join(path, b".git")):
            tree = path
        parent = os.path.dirname(path)
        if parent == path:
            return True, tree
        path = parent


def render(roots: list[bytes]) -> bytes:
    # A root whose name holds a newline cannot be listed: "/" makes every run wait.
    listed = [b"/" if b"\n" in r else r for r in roots]
    return b"\n".join([_HEADER, *sorted(set(listed))]) + b"\n"


async def refresh(d: Daemon) -> None:
    """Rewrite the file from the store (atomically: a reader sees the old or the new one)."""
    rows = await d.store.rows(
        "SELECT DISTINCT p.root FROM project_env e JOIN projects p ON p.id = e.project_id"
    )
    target = d.paths.prerun
    tmp = target.with_name(f".{PRERUN}.{os.getpid()}")
    tmp.write_bytes(render([bytes(r[0]) for r in rows]))
    os.replace(tmp, target)


def remove(d: Daemon) -> None:
    try:
        d.paths.prerun.unlink()
    except OSError:
        pass
