"""Folding the tracer's events into what a run did: per-path facts and the process tree.

Runs in `roarctl run`'s tracer thread while the command runs, before the modules that talk to
roard may have finished loading: kept to `os`, `time` and the tracer wrapper. Facts and
processes become protocol messages only when asked for (`facts()`, `proc_list()`).
"""

from __future__ import annotations

import os
import stat
import sys
import time

from roarctl import trace

TYPE_CHECKING = False  # not `from typing`: this module loads before the command starts

if TYPE_CHECKING:
    from collections.abc import Callable

    from roar.protocol import FileFact, Proc

CHUNK = 20000
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2 flags (linux/fs.h)
_ONE_PATH = (trace.OPEN, trace.UNLINK, trace.TRUNCATE)
_TWO_PATHS = (trace.RENAME, trace.LINK)


def _norm(path: bytes) -> bytes:
    """Collapse `//` and `/./` but keep `..`: after a symlinked directory, `..` is resolved by
    the kernel against the link's target, never lexically (roard resolves it with realpath)."""
    if b"/.." in path:
        parts = [p for p in path.split(b"/") if p not in (b"", b".")]
        return b"/" + b"/".join(parts)
    return os.path.normpath(path)


def pyc_source(path: bytes) -> bytes | None:
    """`<dir>/<name>.py` for CPython's cached bytecode `<dir>/__pycache__/<name>.<tag>.pyc`
    (also `.opt-1.pyc`, and pytest's `<name>.<tag>-pytest-<version>.pyc`): the source the
    interpreter derived that file's name from and checked it against before loading it, as
    importlib.util.source_from_cache does. None for any other path (a sourceless `.pyc` that
    lives beside where its `.py` would be is code of its own)."""
    head, _, name = path.rpartition(b"/")
    if not head.endswith(b"/__pycache__") or not name.endswith(b".pyc"):
        return None
    base, dot, _ = name.partition(b".")
    if not base or not dot:
        return None
    return head[: -len(b"/__pycache__")] + b"/" + base + b".py"


class _PathState:
    __slots__ = (
        "deleted",
        "pre_existed",
        "pre_hash",
        "pre_size",
        "rdwr",
        "read",
        "read_before",
        "written",
    )

    def __init__(self) -> None:
        self.read = self.written = self.rdwr = self.deleted = False
        self.read_before = False  # (maybe) read in an earlier chunk: hash before destroying
        self.pre_existed: bool | None = None
        self.pre_hash: str | None = None
        self.pre_size: int | None = None

    def merge(self, other: _PathState) -> None:
        """Add what is known of `other` (the same path's facts from elsewhere), as roard
        merges one path's facts across chunks."""
        self.read |= other.read
        self.written |= other.written
        self.rdwr |= other.rdwr
        self.deleted |= other.deleted
        self.read_before |= other.read_before
        if self.pre_existed is None:
            self.pre_existed = other.pre_existed
        if self.pre_hash is None and other.pre_hash is not None:
            self.pre_hash, self.pre_size = other.pre_hash, other.pre_size


class _Bloom:
    """Set membership with false positives and none negative, in fixed memory (1 MiB)."""

    BITS = 1 << 23
    K = 7

    def __init__(self) -> None:
        import hashlib  # only once a run is this large: loading OpenSSL costs ~4 MB

        self._blake2b = hashlib.blake2b
        self.bits = bytearray(self.BITS // 8)

    def _indexes(self, key: bytes) -> list[int]:
        d = self._blake2b(key, digest_size=4 * self.K).digest()
        mask = self.BITS - 1
        return [int.from_bytes(d[i : i + 4], "little") & mask for i in range(0, 4 * self.K, 4)]

    def add(self, key: bytes) -> None:
        for i in self._indexes(key):
            self.bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, key: bytes) -> bool:
        return all(self.bits[i >> 3] & (1 << (i & 7)) for i in self._indexes(key))


class _Proc:
    """A process of the run, as the tracer saw it (becomes a protocol Proc at the end)."""

    __slots__ = ("end", "execs", "pid", "ppid", "start", "wait_status")

    def __init__(self, pid: int, ppid: int, start: float) -> None:
        self.pid, self.ppid, self.start = pid, ppid, start
        self.end: float | None = None
        self.wait_status: int | None = None
        self.execs: list[tuple[bytes, bytes, list[bytes]]] = []  # (path, exe, argv)


class Recorder:
    """Folds tracer events into per-path facts and the process tree.

    With `flush`, memory stays bounded however many paths a run touches: once `chunk` paths
    are held, their facts go to `flush` (streamed to roard, which merges facts for one path
    across chunks) and are forgotten, but for Bloom filters of the paths read and of those
    written: a path read before a flush is still hashed before it is overwritten (a false
    positive costs only an extra hash), and a directory renamed after a flush still carries
    the files the run read or wrote in it to their new names (`_rename_dir`)."""

    def __init__(
        self,
        root_pid: int,
        started: float,
        flush: Callable[[list[FileFact]], None] | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.files: dict[bytes, _PathState] = {}
        self._flush = flush
        self._chunk = chunk
        self._read_before: _Bloom | None = None
        self._written_before: _Bloom | None = None
        self.procs: dict[int, _Proc] = {root_pid: _Proc(root_pid, os.getpid(), started)}
        self.threads: set[int] = set()
        self.blind_spots: list[str] = []
        self.unresolved = 0
        self.external: set[str] = set()

    def _state(self, path: bytes) -> _PathState:
        st = self.files.get(path)
        if st is None:
            st = self.files[path] = _PathState()
            if self._read_before is not None and path in self._read_before:
                st.read_before = True
        return st

    def flush(self) -> None:
        """Hand the facts held so far to `flush` and forget them."""
        if self._flush is None or not self.files:
            return
        if self._read_before is None or self._written_before is None:
            self._read_before, self._written_before = _Bloom(), _Bloom()
        read, written = self._read_before, self._written_before
        for path, st in self.files.items():
            if st.read:
                read.add(path)
            if st.written or st.rdwr:
                written.add(path)
        facts = self.facts()
        self.files = {}
        self._flush(facts)

    def _before_destroy(self, path: bytes, reads_content: bool = False) -> None:
        """Called while the tracee is held, before it may overwrite or remove `path`."""
        st = self._state(path)
        if st.pre_existed is not None:
            return
        try:
            info = os.stat(path)
        except OSError:
            st.pre_existed = False
            return
        st.pre_existed = True
        if (st.read or st.read_before or reads_content) and os.path.isfile(path):
            from roar.hashing import hash_file

            try:
                st.pre_hash, st.pre_size = hash_file(path), info.st_size
            except OSError:
                pass

    def apply(self, ev: trace.Event) -> None:
        if len(self.files) >= self._chunk and self._flush is not None:
            self.flush()
        kind = ev.kind
        if (kind in _ONE_PATH and not ev.path.startswith(b"/")) or (
            kind in _TWO_PATHS and not (ev.path.startswith(b"/") and ev.path2.startswith(b"/"))
        ):
            self._unresolved(ev)
            return
        if kind == trace.OPEN:
            path = _norm(ev.path)
            flags = ev.arg
            if ev.flags:  # a write-intent open not held: there was no old content to hash
                st = self._state(path)
                if st.pre_existed is None:
                    st.pre_existed = ev.flags == trace.OPEN_SPECIAL
            acc = flags & os.O_ACCMODE
            if acc == os.O_RDONLY and not flags & os.O_TRUNC:
                if ev.held:  # O_CREAT on a read-only open: may create the file
                    self._before_destroy(path)
                self._state(path).read = True
                if path.endswith(b".pyc") and (source := pyc_source(path)) is not None:
                    # The bytecode is the source compiled: the code that ran is the .py,
                    # which CPython only stat'ed to check the cache was fresh.
                    self._state(source).read = True
            elif acc == os.O_RDWR and not flags & os.O_TRUNC:
                self._before_destroy(path, reads_content=True)
                self._state(path).rdwr = True
            else:
                # O_APPEND keeps the old bytes: hash them so the output's `previous` is known.
                self._before_destroy(path, reads_content=bool(flags & os.O_APPEND))
                self._state(path).written = True
        elif kind == trace.EXEC:
            proc = self.procs.get(ev.pid)
            if proc is None:
                proc = self.procs[ev.pid] = _Proc(ev.pid, 0, time.time())
            argv = ev.data.split(b"\0")[:-1] if ev.data else []
            proc.execs.append((ev.path, ev.path2, argv))
            # The program that ran is an input (roard filters system programs out); the
            # kernel loaded it, and a script's interpreter, without an open the tracer sees.
            for image in (ev.path, ev.path2):
                if image.startswith(b"/"):
                    self._state(_norm(image)).read = True
            if ev.flags and (why := privilege_dropped(ev.path2)):
                self._blind(
                    f"{os.fsdecode(ev.path2)} {why}: it ran without that privilege (roar's "
                    "tracing sets no_new_privs), so it may have failed or behaved differently"
                )
        elif kind == trace.FORK:
            if ev.flags:
                self.threads.add(ev.arg)
            else:
                parent = ev.pid
                self.procs[ev.arg] = _Proc(ev.arg, parent, time.time())
        elif kind == trace.EXIT:
            proc = self.procs.get(ev.pid)
            if proc is not None and ev.pid not in self.threads:
                proc.end, proc.wait_status = time.time(), ev.arg
            self.threads.discard(ev.pid)
        elif kind == trace.RENAME:
            old, new = _norm(ev.path), _norm(ev.path2)
            if _is_dir(old):
                self._rename_dir(old, new, ev.flags)
                return
            if ev.flags & RENAME_EXCHANGE:  # both names get the other's content
                self._before_destroy(old)
                self._before_destroy(new)
                self._state(old).written = True
                self._state(new).written = True
                return
            old_st = self._state(old)
            if old_st.read or old_st.read_before:
                self._before_destroy(old)
            self._before_destroy(new)
            self._state(old).deleted = True
            self._state(new).written = True
        elif kind == trace.UNLINK:
            path = _norm(ev.path)
            if not ev.flags:
                self._before_destroy(path)
                self._state(path).deleted = True
        elif kind == trace.TRUNCATE:
            path = _norm(ev.path)
            self._before_destroy(path)
            self._state(path).written = True
        elif kind == trace.LINK:
            new = _norm(ev.path2)
            self._before_destroy(new)
            self._state(new).written = True
        elif kind == trace.UNTRACED:
            reason = ev.data.decode("utf-8", "replace")
            self._blind(_UNTRACED.get(reason, f"not observed: {reason}"))
        elif kind == trace.CONNECT:
            peer = _peer(ev.data, ev.arg)
            if peer:
                self.external.add(peer)

    def _rename_dir(self, old: bytes, new: bytes, flags: int) -> None:
        """Called while the tracee is held, before directory `old` is renamed to `new`: what
        the run did to paths under `old` now lives under `new` (and, for RENAME_EXCHANGE, the
        other way round), whether those facts are held here or were flushed already. A
        rename the kernel will refuse moves nothing."""
        if old == new or new.startswith(old + b"/") or old.startswith(new + b"/"):
            return  # EINVAL, or a no-op
        moves = [(old, new)]
        if flags & RENAME_EXCHANGE:
            if _is_dir(new):
                moves.append((new, old))
            elif os.path.lexists(new):  # a file: it takes the directory's name
                self._before_destroy(new)
                self._state(old).written = True
            else:
                return  # ENOENT
        elif os.path.lexists(new) and (
            flags & RENAME_NOREPLACE or not _is_dir(new) or _has_entries(new)
        ):
            return  # EEXIST, ENOTDIR or ENOTEMPTY
        moving: list[tuple[bytes, _PathState]] = []
        for src, dst in moves:
            prefix = src + b"/"
            for path in [p for p in self.files if p.startswith(prefix)]:
                if os.path.lexists(path):  # else what happened to it stays under its name
                    moving.append((dst + path[len(src) :], self.files.pop(path)))
            if self._read_before is not None and self._written_before is not None:
                moving += self._flushed_under(src, dst, self._read_before, self._written_before)
        for path, st in moving:
            known = self.files.get(path)
            if known is None:
                self.files[path] = st
            else:
                known.merge(st)

    @staticmethod
    def _flushed_under(
        src: bytes, dst: bytes, read: _Bloom, written: _Bloom
    ) -> list[tuple[bytes, _PathState]]:
        """The files under directory `src` that an earlier chunk read or wrote (their facts
        are with roard, under names that are about to vanish), as facts under `dst`."""
        out = []
        for top, _dirs, names in os.walk(src):
            for name in names:
                path = os.path.join(top, name)
                was_read, was_written = path in read, path in written
                if was_read or was_written:
                    st = _PathState()
                    st.read, st.written, st.read_before = was_read, was_written, was_read
                    out.append((dst + path[len(src) :], st))
        return out

    def _blind(self, sentence: str) -> None:
        if sentence not in self.blind_spots:
            self.blind_spots.append(sentence)

    def _unresolved(self, ev: trace.Event) -> None:
        """The tracer could not make a path absolute: its directory's name is longer than
        PATH_MAX (or /proc could not tell it), so roard could neither resolve nor hash it."""
        if self.unresolved == 0:
            self.blind_spots.append(
                "a file was accessed by a path roar could not resolve (its directory's name "
                "is longer than PATH_MAX, reached through relative opens): not recorded"
            )
        self.unresolved += 1

    def proc_list(self) -> list[Proc]:
        from roar.protocol import ExecImage, Proc

        return [
            Proc(
                pid=p.pid,
                ppid=p.ppid,
                start=p.start,
                end=p.end,
                wait_status=p.wait_status,
                execs=[ExecImage(path=a, exe=b, argv=c) for a, b, c in p.execs],
            )
            for p in self.procs.values()
        ]

    def facts(self) -> list[FileFact]:
        from roar.protocol import FileFact

        return [
            FileFact(
                path=p,
                read=s.read,
                written=s.written,
                rdwr=s.rdwr,
                deleted=s.deleted,
                pre_existed=s.pre_existed,
                pre_hash=s.pre_hash,
                pre_size=s.pre_size,
            )
            for p, s in self.files.items()
        ]


def _is_dir(path: bytes) -> bool:
    """A real directory (not a symlink to one: renaming a symlink moves only the link)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _has_entries(path: bytes) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is not None
    except OSError:
        return False


_UNTRACED = {
    "io_uring": "a process set up io_uring: file reads and writes submitted through it bypass "
    "the tracer, so files it used may be missing from the inputs and outputs",
    "nested ptrace": "a process called ptrace (a debugger or tracer inside the run): what it "
    "did to other processes is not observed, and a process it traces may run untraced",
    "memfd": "a process created an anonymous in-memory file (memfd_create): what is written to "
    "it is not recorded until it reaches a file on disk, which then shows no input it came from",
    "foreign-arch process": "a process ran a program of another architecture (e.g. 32-bit): "
    "its system calls bypass the tracer's filter, so its files are not recorded",
    "unexpected seccomp stop": "the tracer stopped at a system call it does not handle: that "
    "call's effect is not recorded",
}


def privilege_dropped(exe: bytes) -> str | None:
    """'is setuid USER' / 'is setgid GROUP' when running exe would change this process's
    credentials (which no_new_privs prevents), else None."""
    try:
        st = os.stat(exe)
    except OSError:
        return None
    why = []
    if st.st_mode & 0o4000 and st.st_uid != os.geteuid():
        why.append(f"setuid {_user(st.st_uid)}")
    if st.st_mode & 0o2000 and st.st_mode & 0o010 and st.st_gid not in (os.getegid(),):
        why.append(f"setgid {_group(st.st_gid)}")
    return "is " + " and ".join(why) if why else None


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


_SOCK_TYPES = {1: "tcp", 2: "udp", 5: "sctp"}  # SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET


def _peer(raw: bytes, sock_type: int) -> str | None:
    """'93.184.216.34:443 (tcp)' from a raw AF_INET/AF_INET6 sockaddr; loopback is marked
    local.  None for AF_UNSPEC (a disconnect) or a short address."""
    import ipaddress
    import socket

    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == socket.AF_INET and len(raw) >= 8:
        port, addr = int.from_bytes(raw[2:4], "big"), ipaddress.IPv4Address(raw[4:8])
        host = str(addr)
    elif family == socket.AF_INET6 and len(raw) >= 24:
        port, addr = int.from_bytes(raw[2:4], "big"), ipaddress.IPv6Address(raw[8:24])
        mapped = addr.ipv4_mapped
        if mapped is not None:
            addr = mapped
            host = str(addr)
        else:
            host = f"[{addr}]"
    else:
        return None
    proto = _SOCK_TYPES.get(sock_type & 0xF, "unknown protocol")
    local = ", local" if addr.is_loopback else ""
    return f"{host}:{port} ({proto}{local})"
