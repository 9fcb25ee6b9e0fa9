"""`roarctl run`: run a command exactly as the shell would, traced, and hand the record to roard.

This process is the command's parent and its tracer (the C loop in roarctl._tracer), so the command
keeps the terminal, process group, stdin and signals it would have had, and it never depends on
roard being alive: if roard dies mid-run, the record is delivered to a restarted roard at the end,
or spooled to disk for the next one.

Early start: where roard's answer cannot change how the command runs (roard.prerun), the command
starts at once, and a helper thread loads the modules that talk to roard and announces the run
while the command runs. So the CLI's imports and roard's start work cost the command nothing,
up to its first write: in a git tree that write is held until roard has taken the git state
(dirty files hashed), so the state is the tree the command found. Otherwise (project env vars,
a hygiene rule, re-running a step, no live roard, a tree file inherited open for writing) the
run is announced first. Until the command has started, this module is kept to `os`, `time` and
the tracer.
"""

from __future__ import annotations

import _thread
import os
import sys
import time

from roar import prerun
from roarctl import messages, trace
from roarctl.errors import RoarError
from roarctl.record import CHUNK, Recorder, privilege_dropped

TYPE_CHECKING = False  # not `from typing`: this module loads before the command starts

if TYPE_CHECKING:
    from roar.model import JobKind
    from roar.protocol import FileFact, RunDone, RunStart
    from roarctl.deliver import Announced, Stream

SIGKILL_STATUS = 9  # the raw wait status of a process killed by SIGKILL


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
    from roar.protocol import GetStep, StepReply
    from roarctl.client import Client

    with Client.connect() as c:
        step = c.call(GetStep(cwd=os.getcwdb(), ref=ref), expect=StepReply)
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

        messages.note(f"re-running {step.ref}: {shlex.join(argv)}")
    return run(argv, quiet, verbose, kind=step.kind, step=int(step.ref.lstrip("@Bb")))


def run(
    argv: list[str],
    quiet: bool = False,
    verbose: bool = False,
    kind: JobKind = "run",
    step: int | None = None,
) -> int:
    if step is None and argv[0].startswith("@"):
        return rerun(argv[0], argv[1:], quiet, verbose)
    exe = find_executable(argv[0])
    why = privilege_dropped(exe)
    if why and not quiet:  # warn before it runs: it will run without its privilege
        messages.warn(
            f"{argv[0]} {why}; under roar it runs without that privilege "
            "(tracing sets no_new_privs) and may fail or behave differently"
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
    early, tree = prerun.early_start(cwd) if step is None else (False, None)
    if early and tree is not None and _writable_in(tree):
        early = False  # e.g. `>> log` in the tree: the command could change it before roard looks
    announced: Announced | None = None
    if not early:
        announced = _announce_first(argv_b, cwd, env, started, kind, step, quiet)
        env = announced.start.env  # with the project's `roarctl env set` variables
    affinity = os.sched_getaffinity(0) if early else set()
    began = time.monotonic()
    try:
        tracer = trace.Tracer(exe, argv_b, env, cwd)
    except trace.TraceStartError as exc:
        if announced is not None and announced.client is not None:
            announced.client.close()
        code = 127 if exc.errno == 2 else 126
        raise RoarError(f"cannot run {argv[0]}: {exc.strerror or exc}", exit_code=code) from None
    # In a git tree, an early command's first change waits until roard has taken the git
    # state: every write is held until then (the window), whatever path it goes through.
    window = early and tree is not None
    if early:
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)  # a held tracee waits at most this for the GIL
        if window:
            tracer.hold_writes(True)
        helper = _Announcer(argv_b, cwd, env, started, kind, affinity)
    # ROAR_FLUSH_EVERY: paths held before their facts are streamed to roard (tests use a few)
    every = int(os.environ.get("ROAR_FLUSH_EVERY", "0") or 0) or CHUNK
    stream: Stream | None = None

    def flush(facts: list[FileFact]) -> None:
        nonlocal stream
        if stream is None:
            from roarctl.deliver import Stream

            a = announced or helper.result()
            stream = Stream(a.client, a.job_id)
        stream(facts)

    recorder = Recorder(tracer.root_pid, started, flush=flush, chunk=every)
    tracer_ok = recording = True
    try:
        tracer.forward_signals()
        try:
            while batch := tracer.next_batch():
                if recording:
                    try:
                        for ev in batch:
                            recorder.apply(ev)
                    except Exception as exc:  # never the command's problem: it goes on
                        recording = tracer_ok = False
                        messages.warn(f"recording failed: {exc!r}")
                if window and batch[-1].held:
                    _wait_for_snapshot(helper, quiet)
                    tracer.hold_writes(False)
                    window = False
        except OSError as exc:  # the tracer itself failed: keep what was seen, as partial
            tracer_ok = False
            messages.warn(f"tracing failed: {exc}")
    finally:
        status = tracer.exit_status()
        tracer.close()  # after a tracer failure this kills what is left of the command
    if status < 0:  # never reaped: killed by close() above
        status = SIGKILL_STATUS
    ended = time.time()
    elapsed = time.monotonic() - began
    root = recorder.procs[tracer.root_pid]
    root.end, root.wait_status = ended, status
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code
    if announced is None:
        try:
            announced = helper.result()
        except KeyboardInterrupt:  # Ctrl-C while roard is slow to answer: the command is done
            if not quiet:
                messages.note("not waiting for roard; this run is not recorded")
            return exit_code
        except Exception as exc:  # roarctl cannot talk to roard at all (a broken install?)
            messages.warn(f"this run is not recorded: {exc!r}")
            return exit_code
        sys.setswitchinterval(switch)
        if not quiet:
            _warn(announced.warnings)
    return _finish(announced, recorder, status, ended, tracer_ok, stream, elapsed, quiet, verbose)


def _writable_in(tree: bytes) -> bool:
    """Whether this process holds a descriptor open for writing on a file under `tree` (a
    shell redirect such as `>> train.log`): the command inherits it and may write through it
    before roard takes the git state."""
    import fcntl

    prefix = tree.rstrip(b"/") + b"/"
    try:
        fds = os.listdir(b"/proc/self/fd")
    except OSError:
        return True
    for name in fds:
        try:
            if not os.readlink(b"/proc/self/fd/" + name).startswith(prefix):
                continue
            if fcntl.fcntl(int(name), fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
                return True
        except OSError:
            continue
    return False


def _wait_for_snapshot(helper: _Announcer, quiet: bool) -> None:
    """Hold the command (stopped at its first write) until roard has taken the git state.
    Ctrl-C lets it go at once, as does a roard that has not answered in 15 s."""
    seen = trace.interrupts()
    deadline = time.monotonic() + 15
    while not helper.wait(0.05):
        if trace.interrupts() != seen:
            return
        if time.monotonic() > deadline:
            if not quiet:
                messages.warn(
                    "roard has not answered in 15 s; the command goes on, "
                    "and its git state may include the command's first changes"
                )
            return


class _Announcer:
    """An early start's announcement, made in a helper thread while the command runs (or, if
    no thread can be started, before the command takes its first step)."""

    def __init__(
        self,
        argv: list[bytes],
        cwd: bytes,
        env: list[bytes],
        started: float,
        kind: JobKind,
        affinity: set[int],
    ) -> None:
        self._args = (argv, cwd, env, started, kind)
        self._result: Announced | None = None
        self._error: BaseException | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()
        try:
            _thread.start_new_thread(self._work, (affinity,))
        except RuntimeError:  # no thread (a pids limit): announce now, the command waits
            self._work(set())

    def _start(self) -> RunStart:
        from roar.protocol import RunStart

        argv, cwd, env, started, kind = self._args
        return RunStart(argv=argv, cwd=cwd, env=env, started=started, kind=kind, early=True)

    def _work(self, affinity: set[int]) -> None:
        try:
            if affinity:  # a new thread has the tracer's pinned CPU: let it run anywhere
                os.sched_setaffinity(0, affinity)
            from roarctl import deliver

            self._result = deliver.announce(self._start())
        except BaseException as exc:  # said at the end, where the delivery tries again
            self._error = exc
        finally:
            self._done.release()

    def wait(self, timeout: float = -1) -> bool:
        """Whether the announcement is done (waiting up to `timeout` s; -1: for good)."""
        if not self._done.acquire(timeout=timeout):
            return False
        self._done.release()
        return True

    def result(self) -> Announced:
        """The announcement, once made; a stand-in (no roard yet) if it failed."""
        self.wait()
        if self._result is None:
            from roarctl import deliver

            warning = f"could not announce the run: {self._error!r}"
            self._result = deliver.Announced(
                self._start(), None, os.urandom(6).hex(), warnings=[warning]
            )
        return self._result


def _announce_first(
    argv: list[bytes],
    cwd: bytes,
    env: list[bytes],
    started: float,
    kind: JobKind,
    step: int | None,
    quiet: bool,
) -> Announced:
    """Announce the run before its command starts: its answer may inject env vars or refuse."""
    from roar.protocol import RunStart
    from roarctl import deliver

    start = RunStart(argv=argv, cwd=cwd, env=env, started=started, kind=kind, step=step)
    announced = deliver.announce(start)
    if not quiet:
        _warn(announced.warnings)
    if announced.inject:  # the project's `roarctl env set` variables
        names = {e.split(b"=", 1)[0] for e in announced.inject}
        env = [e for e in env if e.split(b"=", 1)[0] not in names] + announced.inject
        announced.start = RunStart(
            argv=argv, cwd=cwd, env=env, started=started, kind=kind, step=step
        )
    return announced


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        messages.warn(warning)


def _finish(
    announced: Announced,
    recorder: Recorder,
    status: int,
    ended: float,
    tracer_ok: bool,
    stream: Stream | None,
    elapsed: float,
    quiet: bool,
    verbose: bool,
) -> int:
    """Deliver the record and say what was recorded; returns the command's exit code."""
    from roar.paths import paths
    from roar.protocol import RunFinish
    from roarctl import deliver

    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code
    job_id = announced.job_id
    finish = RunFinish(
        job_id=job_id,
        start=announced.start,
        ended=ended,
        wait_status=status,
        procs=recorder.proc_list(),
        blind_spots=recorder.blind_spots,
        tracer_ok=tracer_ok,
        external=sorted(recorder.external),
    )
    try:
        done = deliver.deliver(announced.client, finish, recorder.facts(), quiet, stream)
    except KeyboardInterrupt:
        if not quiet:
            messages.note("not waiting; roard finishes the record in the background")
        return exit_code
    if not quiet:
        if done is None and (paths().spool / f"{job_id}.msgpack").exists():
            messages.note(
                f"job {job_id} spooled (roard unavailable; it is stored when roard next starts)"
            )
        elif done is not None:
            _summary(done, elapsed, verbose)
    return exit_code


def _summary(done: RunDone, elapsed: float, verbose: bool) -> None:
    job = done.job
    status = "" if job.status == "complete" else f" · {job.status}"
    step = f" · {job.step}" if job.step else ""
    line = (
        f"job {job.id}{step} · {job.inputs} input{'s' * (job.inputs != 1)} · "
        f"{job.outputs} output{'s' * (job.outputs != 1)} · {_duration(elapsed)}{status}"
    )
    if verbose:
        line += f" · {done.filtered} system files filtered"
    messages.note(line)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
