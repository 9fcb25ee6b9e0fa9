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
env change, holds a shared lock on it while it lives, and removes it when it stops. No file,
one nobody holds (its roard died), or one from another roard version means wait: the safe
way, which also starts or replaces roard as before.

Here: the file's format and the reader (`early_start`); roard.prerun writes it. Imported by
`roarctl run` before it starts the command: only `os` and `fcntl` at import time.
"""

from __future__ import annotations

import fcntl
import os

from roar import __version__
from roar.paths import PRERUN, runtime_base, unsafe_dir

_HEADER = f"roard {__version__}".encode()
_RULES = (b"committed_code_only",)  # hygiene rules that can refuse a run


def early_start(cwd: bytes) -> tuple[bool, bytes | None]:
    """(may a run in `cwd` start before roard answers, the git work tree around cwd).

    roard takes the git state (dirty files hashed) while an early command runs, so the
    command must not change a file of that tree first: `roarctl run` holds every write of
    the command until roard has answered (roarctl.run)."""
    if os.environ.get("ROAR_EARLY") == "0":
        return False, None
    base = runtime_base()
    if unsafe_dir(base) is not None:  # not the user's own: wait, and let the client refuse it
        return False, None
    try:
        fd = os.open(os.path.join(base, PRERUN), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False, None
    try:
        lines = os.read(fd, 1 << 20).split(b"\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False, None  # no roard holds it: left by one that died
    except BlockingIOError:
        pass  # a live roard holds it (shared)
    except OSError:
        return False, None
    finally:
        os.close(fd)
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
