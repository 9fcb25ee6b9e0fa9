"""What `strace -f` says a command read and wrote: the independent file list that the real
projects tier (test_real_projects.py) holds roar's record against.

strace runs with `-y`, so every descriptor it prints carries the path the kernel resolved
(`openat(AT_FDCWD</w>, "f", O_RDONLY) = 3</w/f>`); the few path arguments that are not tied
to a descriptor (execve, rename, link, truncate, chdir) are joined to the calling process's
working directory, followed here through chdir, fchdir and fork.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

TRACE = ["-f", "-qq", "-y", "-e", "trace=%file,%process,fchdir"]

_LINE = re.compile(r"(\d+)\s+(.*)")
_RESUMED = re.compile(r"<\.\.\. \w+ resumed>(.*)")
_CALL = re.compile(r"(\w+)\((.*)\)\s+=\s+(.*)")  # greedy: the last `) = ` ends the arguments
_RET = re.compile(r"(-?\d+)(?:<(.*)>)?")
_FD = re.compile(r"(?:AT_FDCWD|-?\d+)<(.*)>")
_OPENS = {"open", "openat", "openat2", "creat"}
_FORKS = {"clone", "clone3", "fork", "vfork"}


@dataclass
class Seen:
    """Absolute paths strace saw opened for reading (or executed) and written (opened to
    write, renamed or linked into place, truncated); renamed directories carry their files."""

    read: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)


def parse(log: Path, cwd: Path) -> Seen:
    seen = Seen()
    cwds: dict[int, str] = {}
    pending: dict[int, str] = {}
    for raw in log.read_text(errors="replace").splitlines():
        m = _LINE.fullmatch(raw)
        if not m:
            continue
        pid, text = int(m[1]), m[2]
        if text.endswith("<unfinished ...>"):
            pending[pid] = text[: -len("<unfinished ...>")]
            continue
        resumed = _RESUMED.fullmatch(text)
        if resumed:
            text = pending.pop(pid, "") + resumed[1]
        call = _CALL.fullmatch(text)
        if not call:
            continue
        name, args_text = call[1], call[2]
        ret = _RET.match(call[3])
        if ret is None or int(ret[1]) < 0:
            continue
        here = cwds.setdefault(pid, str(cwd))
        args = _split(args_text)
        if name in _OPENS:
            if ret[2] and ret[2].startswith("/"):
                path = ret[2].removesuffix(" (deleted)")
                flags = "O_WRONLY|O_TRUNC" if name == "creat" else _flags(name, args)
                writes = "O_WRONLY" in flags or "O_RDWR" in flags or "O_TRUNC" in flags
                (seen.written if writes or "O_CREAT" in flags else seen.read).add(path)
        elif name in ("execve", "execveat"):
            seen.read.add(_path(args, 1 if name == "execveat" else 0, here))
        elif name in ("rename", "renameat", "renameat2", "link", "linkat"):
            two = name in ("rename", "link")
            old = _path(args, 0 if two else 1, here)
            new = _path(args, 1 if two else 3, here)
            seen.written.add(new)
            if name.startswith("rename"):  # a directory carries what was seen inside it
                for paths in (seen.read, seen.written):
                    paths |= {new + p[len(old) :] for p in paths if p.startswith(old + "/")}
        elif name in ("truncate",):
            seen.written.add(_path(args, 0, here))
        elif name == "chdir":
            cwds[pid] = _path(args, 0, here)
        elif name == "fchdir":
            fd = _FD.fullmatch(args[0])
            if fd:
                cwds[pid] = fd[1]
        elif name in _FORKS and int(ret[1]) > 0:
            cwds.setdefault(int(ret[1]), here)
    return seen


def expected(seen: Seen, root: Path, before: set[str], keep: object) -> set[str]:
    """The project's files (relative to `root`) roar must record: those seen that are
    regular files at the end, or that were read and existed before the run; `keep(path)`
    applies roar's documented filters (True: a path roar records)."""
    out = set()
    for path in seen.read | seen.written:
        path = os.path.normpath(path)
        rel = os.path.relpath(path, root)
        if rel.startswith("../"):
            continue
        if not (os.path.isfile(path) or (path in seen.read and rel in before)):
            continue
        if keep(path):  # type: ignore[operator]
            out.add(rel)
    return out


def pyc_sources(seen: Seen) -> None:
    """README's rule: reading `<dir>/__pycache__/<name>.<tag>.pyc` is reading `<dir>/<name>.py`."""
    for path in list(seen.read):
        head, name = os.path.split(path)
        if os.path.basename(head) == "__pycache__" and name.endswith(".pyc"):
            seen.read.add(os.path.join(os.path.dirname(head), name.split(".")[0] + ".py"))


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _flags(name: str, args: list[str]) -> str:
    if name == "open":
        return args[1] if len(args) > 1 else ""
    if name == "openat2":
        return args[2] if len(args) > 2 else ""
    return args[2] if len(args) > 2 else ""


def _path(args: list[str], i: int, cwd: str) -> str:
    """Argument i (a quoted path) made absolute: against the descriptor before it when
    strace named that descriptor's path (the *at calls), else against the working directory."""
    text = ast.literal_eval("b" + args[i]).decode() if args[i].startswith('"') else ""
    if text.startswith("/"):
        return os.path.normpath(text)
    base = cwd
    if i > 0:
        fd = _FD.fullmatch(args[i - 1])
        if fd:
            base = fd[1]
    return os.path.normpath(os.path.join(base, text))


def _split(args: str) -> list[str]:
    """Top-level comma-separated arguments, respecting quotes, brackets and braces."""
    out, depth, cur, quoted, escaped = [], 0, [], False, False
    for ch in args:
        if quoted:
            cur.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out
