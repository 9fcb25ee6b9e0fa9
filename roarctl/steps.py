"""A recorded step to run again (`roarctl run @N [--name=value ...]`): its command with the
overrides applied, the directory it ran in and its kind, as roard recorded them. The CLI runs
it with roarctl.run.Runner; so will `reproduce`, step after step."""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from roarctl.errors import RoarError

if TYPE_CHECKING:
    from roar.model import JobKind


class Step:
    """A step ready to run: pass `argv`, `cwd`, `kind` and `number` to Runner.run."""

    __slots__ = ("argv", "cwd", "kind", "number", "ref")

    def __init__(self, ref: str, argv: list[str], cwd: bytes, kind: JobKind) -> None:
        self.ref = ref  # "@2", "@B1"
        self.argv = argv
        self.cwd = cwd
        self.kind: JobKind = kind
        self.number = int(ref.lstrip("@Bb"))


def resolve(ref: str, overrides: list[str], cwd: bytes) -> Step:
    """Step `ref` of the session of the project around `cwd`, with `overrides` applied."""
    from roar.protocol import GetStep, StepReply
    from roarctl.client import Client

    with Client.connect() as c:
        step = c.call(GetStep(cwd=cwd, ref=ref), expect=StepReply)
    if any("<redacted>" in a for a in step.argv):
        raise RoarError(
            f"{step.ref}'s command held a secret that roar did not store",
            "run the command again yourself under `roarctl run`",
        )
    argv = apply_overrides(step.ref, step.argv, overrides)
    where = step.cwd_raw or os.fsencode(step.cwd)
    why = cannot_enter(where)
    if why:
        raise RoarError(f"cannot enter {step.cwd}, where {step.ref} ran: {why}")
    return Step(step.ref, argv, where, step.kind)


def cannot_enter(path: bytes) -> str | None:
    """Why a command could not be started in directory `path` (as strerror says it), or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISDIR(st.st_mode):
        return os.strerror(errno.ENOTDIR)
    if not os.access(path, os.X_OK):
        return os.strerror(errno.EACCES)
    return None


def apply_overrides(step: str, argv: list[str], overrides: list[str]) -> list[str]:
    """Replace `--name value` / `--name=value` arguments; an override matching nothing is an
    error, never ignored."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or arg == "--":
            raise RoarError(
                f"'{arg}' is not an override",
                "write overrides as --name=value or --name value",
                exit_code=2,
            )
        if "=" in arg:
            name, value = arg[2:].split("=", 1)
            i += 1
        elif i + 1 < len(overrides):
            name, value = arg[2:], overrides[i + 1]
            i += 2
        else:
            raise RoarError(f"{arg} needs a value", exit_code=2)
        pairs.append((name, value))
    out = list(argv)
    for name, value in pairs:
        flag = f"--{name}"
        for j, a in enumerate(out):
            if a == flag and j + 1 < len(out):
                out[j + 1] = value
                break
            if a.startswith(flag + "="):
                out[j] = f"{flag}={value}"
                break
        else:
            import shlex

            raise RoarError(
                f"{flag} matches no argument of {step}: {shlex.join(argv)}",
                "an override replaces an argument the step already has",
                exit_code=2,
            )
    return out
