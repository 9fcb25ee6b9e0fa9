"""`roarctl run`: run a command exactly as the shell would, traced, and hand the record to roard.

This process is the command's parent and its tracer (the C loop in roarctl._tracer), so the command
keeps the terminal, process group, stdin and signals it would have had, and it never depends on
roard being alive: if roard dies mid-run, the record is delivered to a restarted roard at the end,
or spooled to disk for the next one.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO

import msgspec

from roarctl import trace
from roarctl.client import Client, DaemonGone
from roarctl.errors import RoarError
from roard.paths import paths
from roard.protocol import (
    Error,
    ExecImage,
    FileFact,
    Proc,
    Progress,
    RunDone,
    RunFiles,
    RunFinish,
    RunStart,
    RunStarted,
    frame,
)

CHUNK = 20000
RENAME_EXCHANGE = 2  # renameat2 flag (linux/fs.h)
_ONE_PATH = (trace.OPEN, trace.UNLINK, trace.TRUNCATE)
_TWO_PATHS = (trace.RENAME, trace.LINK)


def _norm(path: bytes) -> bytes:
    """Collapse `//` and `/./` but keep `..`: after a symlinked directory, `..` is resolved by
    the kernel against the link's target, never lexically (roard resolves it with realpath)."""
    if b"/.." in path:
        parts = [p for p in path.split(b"/") if p not in (b"", b".")]
        return b"/" + b"/".join(parts)
    return os.path.normpath(path)


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


class Recorder:
    """Folds tracer events into per-path facts and the process tree.

    With `flush`, memory stays bounded however many paths a run touches: once `chunk` paths
    are held, their facts go to `flush` (streamed to roard, which merges facts for one path
    across chunks) and are forgotten, but for a Bloom filter of the paths read: a path read
    before a flush is still hashed before it is overwritten (a false positive costs only an
    extra hash)."""

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
        self.procs: dict[int, Proc] = {
            root_pid: Proc(pid=root_pid, ppid=os.getpid(), start=started)
        }
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
        if self._read_before is None:
            self._read_before = _Bloom()
        bloom = self._read_before
        for path, st in self.files.items():
            if st.read:
                bloom.add(path)
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
            from roard.hashing import hash_file

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
                proc = self.procs[ev.pid] = Proc(pid=ev.pid, ppid=0, start=time.time())
            argv = ev.data.split(b"\0")[:-1] if ev.data else []
            proc.execs.append(ExecImage(path=ev.path, exe=ev.path2, argv=argv))
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
                self.procs[ev.arg] = Proc(pid=ev.arg, ppid=parent, start=time.time())
        elif kind == trace.EXIT:
            proc = self.procs.get(ev.pid)
            if proc is not None and ev.pid not in self.threads:
                proc.end, proc.wait_status = time.time(), ev.arg
            self.threads.discard(ev.pid)
        elif kind == trace.RENAME:
            old, new = _norm(ev.path), _norm(ev.path2)
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

    def facts(self) -> list[FileFact]:
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


class _Stream:
    """Facts flushed during the run: sent to roard at once (on the run's connection) and kept
    in an unlinked temporary file, so that a roard that dies mid-run can be sent them again
    (or they can be spooled) without holding them in memory."""

    def __init__(self, client: Client | None, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self.sent_ok = client is not None  # every chunk so far reached `client`
        self.file: IO[bytes] | None = None
        self.chunks = 0

    def __call__(self, facts: list[FileFact]) -> None:
        if self.file is None:
            import tempfile

            self.file = tempfile.NamedTemporaryFile(prefix="roar-facts-")  # noqa: SIM115
        body = msgspec.msgpack.encode(facts)
        self.file.write(len(body).to_bytes(4, "big") + body)
        self.chunks += 1
        if self.sent_ok and self.client is not None:
            try:
                self.client.send(RunFiles(job_id=self.job_id, files=facts))
            except DaemonGone:
                self.sent_ok = False

    def replay(self) -> Iterator[list[FileFact]]:
        if self.file is None:
            return
        f = self.file
        f.flush()
        f.seek(0)
        while header := f.read(4):
            body = f.read(int.from_bytes(header, "big"))
            yield msgspec.msgpack.decode(body, type=list[FileFact])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def find_executable(name: str) -> bytes:
    """PATH lookup as the shell does it; RoarError with exit 126/127 when it cannot run."""
    if "/" in name:
        if not os.path.exists(name):
            raise RoarError(f"{name}: no such file or directory", exit_code=127)
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise RoarError(f"{name}: permission denied (not an executable file)", exit_code=126)
        return os.fsencode(name)
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.fsencode(candidate)
    raise RoarError(f"{name}: command not found", "check the spelling, or your PATH", exit_code=127)


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


def rerun(ref: str, overrides: list[str], quiet: bool, verbose: bool) -> int:
    """`roarctl run @N [--name=value ...]`: run a recorded step again, in its directory."""
    from roard.protocol import GetStep, StepReply

    with Client.connect() as c:
        step = c.call(GetStep(cwd=os.getcwdb(), ref=ref))
    assert isinstance(step, StepReply)
    if any("<redacted>" in a for a in step.argv):
        raise RoarError(
            f"{step.ref}'s command held a secret that roar did not store",
            "run the command again yourself under `roarctl run`",
        )
    argv = apply_overrides(step.ref, step.argv, overrides)
    try:
        os.chdir(step.cwd_raw or step.cwd)
    except OSError as exc:
        raise RoarError(f"cannot enter {step.cwd}, where {step.ref} ran: {exc.strerror}") from None
    if not quiet:
        import shlex

        print(f"roar: re-running {step.ref}: {shlex.join(argv)}", file=sys.stderr)
    return run(argv, quiet, verbose, kind=step.kind, step=int(step.ref.lstrip("@Bb")))


def run(
    argv: list[str],
    quiet: bool = False,
    verbose: bool = False,
    kind: str = "run",
    step: int | None = None,
) -> int:
    if step is None and argv[0].startswith("@"):
        return rerun(argv[0], argv[1:], quiet, verbose)
    exe = find_executable(argv[0])
    why = privilege_dropped(exe)
    if why and not quiet:  # warn before it runs: it will run without its privilege
        print(
            f"roarctl: warning: {argv[0]} {why}; under roar it runs without that privilege "
            "(tracing sets no_new_privs) and may fail or behave differently",
            file=sys.stderr,
        )
    argv_b = [os.fsencode(a) for a in argv]
    try:
        cwd = os.getcwdb()
    except FileNotFoundError:
        raise RoarError(
            "the current directory no longer exists", "cd somewhere that does"
        ) from None
    env = [k + b"=" + v for k, v in os.environb.items()]
    started = time.time()
    start = RunStart(argv=argv_b, cwd=cwd, env=env, started=started, kind=kind, step=step)

    client, job_id, inject = _announce(start, quiet)
    if inject:  # the project's `roarctl env set` variables
        names = {e.split(b"=", 1)[0] for e in inject}
        env = [e for e in env if e.split(b"=", 1)[0] not in names] + inject
        start = RunStart(argv=argv_b, cwd=cwd, env=env, started=started, kind=kind, step=step)
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_quit = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    began = time.monotonic()
    tracer_ok = True
    try:
        tracer = trace.Tracer(exe, argv_b, env, cwd)
    except trace.TraceStartError as exc:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGQUIT, old_quit)
        code = 127 if exc.errno == 2 else 126
        raise RoarError(f"cannot run {argv[0]}: {exc.strerror or exc}", exit_code=code) from None
    stream = _Stream(client, job_id)
    # ROAR_FLUSH_EVERY: paths held before their facts are streamed to roard (tests use a few)
    every = int(os.environ.get("ROAR_FLUSH_EVERY", "0") or 0) or CHUNK
    recorder = Recorder(tracer.root_pid, started, flush=stream, chunk=every)
    try:
        tracer.forward_signals()
        try:
            while batch := tracer.next_batch():
                for ev in batch:
                    recorder.apply(ev)
        except OSError as exc:  # the tracer itself failed: keep what was seen, as partial
            tracer_ok = False
            print(f"roarctl: warning: tracing failed: {exc}", file=sys.stderr)
    finally:
        status = tracer.exit_status()
        tracer.close()  # after a tracer failure this kills what is left of the command
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGQUIT, old_quit)
    if status < 0:  # never reaped: killed by close() above
        status = signal.SIGKILL  # the raw wait status of a process killed by SIGKILL
    elapsed = time.monotonic() - began
    root = recorder.procs[tracer.root_pid]
    root.end, root.wait_status = time.time(), status
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code

    finish = RunFinish(
        job_id=job_id,
        start=start,
        ended=time.time(),
        wait_status=status,
        procs=list(recorder.procs.values()),
        blind_spots=recorder.blind_spots,
        tracer_ok=tracer_ok,
        external=sorted(recorder.external),
    )
    try:
        done = _deliver(client, finish, recorder.facts(), quiet, stream)
    except KeyboardInterrupt:
        if not quiet:
            print(
                "roarctl: not waiting; roard finishes the record in the background", file=sys.stderr
            )
        return exit_code
    if not quiet:
        if done is None and (paths().spool / f"{job_id}.msgpack").exists():
            print(
                f"roar: job {job_id} spooled (roard unavailable; it is stored when roard "
                "next starts)",
                file=sys.stderr,
            )
        elif done is not None:
            _summary(done, elapsed, verbose)
    return exit_code


def _announce(start: RunStart, quiet: bool) -> tuple[Client | None, str, list[bytes]]:
    """Register the run with roard; a run goes ahead even when roard cannot be reached."""
    try:
        client = Client.connect()
        reply = client.call(start)
    except RoarError as exc:
        if start.step is not None:  # re-running a step needs the daemon's answer
            raise
        print(
            f"roarctl: warning: {exc.message}; the run is recorded when roard is back",
            file=sys.stderr,
        )
        return None, os.urandom(6).hex(), []
    assert isinstance(reply, RunStarted)
    if reply.refuse:
        client.close()
        raise RoarError(f"not running: {reply.refuse}")
    if not quiet:
        for warning in reply.warnings:
            print(f"roar: warning: {warning}", file=sys.stderr)
    return client, reply.job_id, reply.inject


def _deliver(
    client: Client | None,
    finish: RunFinish,
    facts: list[FileFact],
    quiet: bool,
    stream: _Stream | None = None,
) -> RunDone | None:
    """Send the record; on a lost daemon, restart it and send again; failing that, spool it.
    Facts streamed during the run are sent again on any new connection."""
    try:
        return _deliver_once(client, finish, facts, quiet, stream)
    finally:
        if stream is not None:
            stream.close()


def _deliver_once(
    client: Client | None,
    finish: RunFinish,
    facts: list[FileFact],
    quiet: bool,
    stream: _Stream | None,
) -> RunDone | None:
    # The run's own connection already carries the streamed chunks, unless sending failed;
    # any new connection (a restarted roard) is sent them again first.
    fresh = stream is not None and not stream.sent_ok
    for attempt in range(2):
        try:
            if client is None or fresh:
                if client is not None:
                    client.close()
                client = Client.connect()
                if stream is not None:
                    for chunk in stream.replay():
                        client.send(RunFiles(job_id=finish.job_id, files=chunk))
            for i in range(0, len(facts), CHUNK):
                client.send(RunFiles(job_id=finish.job_id, files=facts[i : i + CHUNK]))
            client.send(finish)
            bar = _ProgressBar(quiet)
            while True:
                reply = client.recv()
                if isinstance(reply, Progress):
                    bar.update(reply)
                    continue
                bar.close()
                if isinstance(reply, Error):
                    raise RoarError(reply.message, reply.hint)
                assert isinstance(reply, RunDone)
                return reply
        except DaemonGone:
            if client is not None:
                client.close()
            client = None
            fresh = True
            if attempt == 0:
                continue
        except RoarError as exc:
            print(f"roarctl: warning: {exc.message}", file=sys.stderr)
            break
        finally:
            if client is not None:
                client.close()
                client = None
    if stream is not None:  # the record spooled must be whole: the streamed chunks too
        facts = [f for chunk in stream.replay() for f in chunk] + facts
    _spool(finish, facts)
    return None


def _spool(finish: RunFinish, facts: list[FileFact]) -> None:
    """Save the record for the next roard; secrets are redacted first (nothing unredacted is
    ever stored). A failure to save costs the record, never the command's exit status."""
    from roard.capture.redact import redact_argv, redact_env

    start = msgspec.structs.replace(
        finish.start,
        argv=[a.encode("utf-8", "surrogateescape") for a in redact_argv(finish.start.argv)],
        env=[f"{k}={v}".encode() for k, v in redact_env(finish.start.env).items()],
    )
    whole = msgspec.structs.replace(finish, start=start, files=facts)
    try:
        spool = paths().spool
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = spool / f"{finish.job_id}.msgpack"
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(frame(whole)[4:])
        os.replace(tmp, target)
    except OSError as exc:
        print(
            f"roarctl: warning: could not save the record of job {finish.job_id} "
            f"({exc.strerror or exc}); it is lost",
            file=sys.stderr,
        )


def _summary(done: RunDone, elapsed: float, verbose: bool) -> None:
    job = done.job
    status = "" if job.status == "complete" else f" · {job.status}"
    step = f" · {job.step}" if job.step else ""
    line = (
        f"roar: job {job.id}{step} · {job.inputs} input{'s' * (job.inputs != 1)} · "
        f"{job.outputs} output{'s' * (job.outputs != 1)} · {_duration(elapsed)}{status}"
    )
    if verbose:
        line += f" · {done.filtered} system files filtered"
    print(line, file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class _ProgressBar:
    """A one-line bar on stderr, shown only on a terminal and only once work passes a second
    (ROAR_PROGRESS_AFTER seconds)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.after = float(os.environ.get("ROAR_PROGRESS_AFTER", "1.0"))
        self.shown = False
        self.began = time.monotonic()

    def update(self, p: Progress) -> None:
        if not self.enabled or time.monotonic() - self.began < self.after or p.total <= 0:
            return
        frac = min(1.0, p.done / p.total)
        width = 30
        filled = int(frac * width)
        sys.stderr.write(
            f"\rroar: {p.label} [{'#' * filled}{' ' * (width - filled)}] {frac:4.0%} "
            f"{_size(p.done)}/{_size(p.total)}"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"
