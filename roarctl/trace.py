"""Thin wrapper over the C ptrace tracer (roarctl._tracer, built by native/build_tracer.py).

The calling process forks the command and is its tracer.  ``Tracer.next_batch`` runs the
ptrace loop in C (without the GIL) and returns events.  A *held* event (write-intent open
of an existing regular file, rename, unlink, truncate, link) is always the last of its
batch, and the tracee that made the call stays stopped until the next ``next_batch``
call: that is the moment to hash a file's old content.

Kept to ``os`` and the compiled module: this is on the CLI's hot path.
"""

import os

from roarctl._tracer import ffi as _ffi
from roarctl._tracer import lib as _lib

EXEC = 1
FORK = 2
EXIT = 3
OPEN = 4
RENAME = 5
UNLINK = 6
TRUNCATE = 7
LINK = 8
SYMLINK = 9
UNTRACED = 10
CONNECT = 11

OPEN_NEW = 1  # OPEN flags of a write-intent open not held: the file did not exist
OPEN_SPECIAL = 2  # ... or is not a regular file

KIND_NAMES = {
    EXEC: "exec",
    FORK: "fork",
    EXIT: "exit",
    OPEN: "open",
    RENAME: "rename",
    UNLINK: "unlink",
    TRUNCATE: "truncate",
    LINK: "link",
    SYMLINK: "symlink",
    UNTRACED: "untraced",
    CONNECT: "connect",
}

BATCH_CAP = 4096


class Event:
    """One traced event.

    kind: one of the constants above.  pid: tid of the calling task (tgid for EXEC,
    the reaped tid for EXIT).  arg: OPEN open flags, FORK new tid, EXIT raw wait
    status, CONNECT the socket type.  flags: FORK 1 if a thread; RENAME renameat2
    flags; UNLINK 1 for a directory; EXIT 1 if a non-leader thread; EXEC 1 setuid,
    2 setgid executable; OPEN: OPEN_NEW or OPEN_SPECIAL for a write-intent open that
    was not held (nothing to hash first).  path/path2/data: bytes, see tracer.h.
    """

    __slots__ = ("arg", "data", "flags", "held", "kind", "path", "path2", "pid")

    def __init__(
        self,
        kind: int,
        pid: int,
        arg: int,
        flags: int,
        held: int,
        path: bytes,
        path2: bytes,
        data: bytes,
    ) -> None:
        self.kind = kind
        self.pid = pid
        self.arg = arg
        self.flags = flags
        self.held = held
        self.path = path
        self.path2 = path2
        self.data = data

    @property
    def argv(self) -> list[bytes]:
        """EXEC: the argument vector."""
        return self.data.split(b"\0")[:-1] if self.data else []

    def __repr__(self) -> str:
        return (
            f"Event({KIND_NAMES.get(self.kind, self.kind)}, pid={self.pid}, arg={self.arg}, "
            f"flags={self.flags}, held={self.held}, path={self.path!r}, "
            f"path2={self.path2!r}, data={self.data!r})"
        )


def interrupts() -> int:
    """SIGINT/SIGQUIT received so far (a tracer counts them instead of dying of them)."""
    return int(_lib.roar_interrupts())


class TraceStartError(OSError):
    """The command could not be started (execve failed, or fork/ptrace did)."""


def _env_entries(env: dict[bytes, bytes] | list[bytes]) -> list[bytes]:
    if isinstance(env, dict):
        return [k + b"=" + v for k, v in env.items()]
    return list(env)


class Tracer:
    """Start ``path`` with ``argv``/``env`` in ``cwd`` under the tracer.

    Use it from the thread that created it (ptrace requests are per thread).  While
    it runs, this process should not have other children of its own that it means to
    wait for: the tracer waits for any child (waitpid(-1)) and may reap them.
    """

    def __init__(
        self,
        path: bytes,
        argv: list[bytes],
        env: dict[bytes, bytes] | list[bytes],
        cwd: bytes,
    ) -> None:
        self._t = _ffi.NULL
        new = _ffi.new
        # Keep every buffer alive for as long as the tracer lives.
        self._keep = keep = [new("char[]", bytes(a)) for a in argv]
        envs = [new("char[]", e) for e in _env_entries(env)]
        keep.extend(envs)
        self._argv = new("char *[]", [*keep[: len(argv)], _ffi.NULL])
        self._envp = new("char *[]", [*envs, _ffi.NULL])
        self._path = new("char[]", bytes(path))
        self._cwd = new("char[]", bytes(cwd))
        err = new("int *")
        t = _lib.roar_start(self._path, self._argv, self._envp, self._cwd, err)
        if t == _ffi.NULL:
            code = err[0]
            raise TraceStartError(code, os.strerror(code), os.fsdecode(path))
        self._t = t
        self._events = new("roar_event[]", BATCH_CAP)
        self.root_pid: int = _lib.roar_root_pid(t)

    def forward_signals(self) -> None:
        """Forward SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to this process to the command."""
        rc = _lib.roar_forward_signals(self._live())
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))

    def hold_writes(self, on: bool) -> None:
        """While on, every write-intent open is held, not only those of existing files."""
        _lib.roar_hold_writes(self._live(), int(on))

    def next_batch(self) -> list[Event]:
        """Run the tracees until some events are ready; [] once every tracee has exited."""
        evs = self._events
        n = _lib.roar_next(self._live(), evs, BATCH_CAP)
        if n < 0:
            if n == -1:  # -EPERM
                raise OSError(1, "Tracer used from a thread other than the one that started it")
            raise OSError(-n, os.strerror(-n))
        unpack = _ffi.unpack
        out: list[Event] = []
        append = out.append
        for i in range(n):
            e = evs[i]
            pl = e.path_len
            p2l = e.path2_len
            dl = e.data_len
            append(
                Event(
                    e.kind,
                    e.pid,
                    e.arg,
                    e.flags,
                    e.held,
                    unpack(e.path, pl) if pl else b"",
                    unpack(e.path2, p2l) if p2l else b"",
                    unpack(e.data, dl) if dl else b"",
                )
            )
        return out

    def exit_status(self) -> int:
        """Raw wait status of the command's root process (-1 if not reaped yet)."""
        return int(_lib.roar_exit_status(self._live()))

    def usage(self) -> tuple[float, float, int] | None:
        """(user CPU seconds, system CPU seconds, peak RSS bytes) of the command's process tree,
        as wait4 reported them; None until its root process is reaped."""
        new = _ffi.new
        user, sys_, rss = new("long long *"), new("long long *"), new("long long *")
        if _lib.roar_usage(self._live(), user, sys_, rss) < 0:
            return None
        return user[0] / 1e6, sys_[0] / 1e6, rss[0] * 1024

    def close(self) -> None:
        """Free the tracer; tracees still running are killed."""
        t = self._t
        if t != _ffi.NULL:
            self._t = _ffi.NULL
            _lib.roar_free(t)

    def _live(self):
        if self._t == _ffi.NULL:
            raise ValueError("tracer is closed")
        return self._t

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
