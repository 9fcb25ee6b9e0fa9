"""`roarctl run`: run a command exactly as the shell would, traced, and hand the record to roard.

This process is the command's parent and its tracer (the C loop in roarctl._tracer), so the command
keeps the terminal, process group, stdin and signals it would have had, and it never depends on
roard being alive: if roard dies mid-run, the record is delivered to a restarted roard at the end,
or spooled to disk for the next one.

Early start: where roard's answer cannot change how the command runs (roar.prerun), the command
starts at once, and a helper thread loads the modules that talk to roard and announces the run
while the command runs. So the CLI's imports and roard's start work cost the command nothing,
up to its first write: in a git tree that write is held until roard has taken the git state
(dirty files hashed), so the state is the tree the command found. Otherwise (project env vars,
a hygiene rule, re-running a step, no live roard, a tree file inherited open for writing) the
run is announced first. Until the command has started, this module is kept to `os`, `time` and
the tracer.

Runner is the library face: it runs one command after another, each with its own cwd and
environment, prints nothing and returns a RunResult. `main` is the CLI's: `roarctl run` and
`roarctl build` (roarctl.entry calls it without click), printing what they always have.
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
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Literal

    from roar.model import JobKind, Usage
    from roar.protocol import FileFact, JobRow, RunStart
    from roarctl.deliver import Announced, Stream
    from roarctl.messages import ProgressBar

    Record = Literal["stored", "spooled", "lost", "not-recorded", "in-background"]
    OnWarning = Callable[[str, bool], None]

SIGKILL_STATUS = 9  # the raw wait status of a process killed by SIGKILL
REQUEST_ENV = "ROAR_REQUEST"  # the training request runs are for (like --request)


class RunResult:
    """What became of one run: the command's exit code, and where its record went.

    `record` is "stored" (roard stored it: `job` is its row), "spooled" (no roard could take
    it: saved to `spool` for the next one), "lost" (it could not be saved either: a warning
    says why), "not-recorded" (roard could not be told about the run at all, or, with
    `interrupted`, Ctrl-C stopped the wait for it) or "in-background" (Ctrl-C stopped the
    wait while roard was finishing the record: it goes on without us). `warnings` holds every
    warning given through `on_warning`, in order."""

    __slots__ = (
        "elapsed",
        "exit_code",
        "filtered",
        "interrupted",
        "job",
        "job_id",
        "record",
        "spool",
        "store_failed",
        "warnings",
    )

    def __init__(
        self,
        job_id: str,
        exit_code: int,
        elapsed: float,
        record: Record,
        warnings: list[str],
        job: JobRow | None = None,
        filtered: int = 0,
        spool: Path | None = None,
        interrupted: bool = False,
    ) -> None:
        self.job_id = job_id  # "" when the run was never announced
        self.exit_code = exit_code  # as the shell reports it: 128+N for signal N
        self.elapsed = elapsed  # the command's wall time, in seconds
        self.record: Record = record
        self.warnings = warnings
        self.job = job
        self.filtered = filtered  # system files filtered out of the record
        self.spool = spool
        self.store_failed = False  # spooled because roard's store failed, not roard
        self.interrupted = interrupted


class Runner:
    """Runs commands traced, one after another, and hands each one's record to roard.

    Prints nothing. `on_warning(text, at_risk)` is called as each warning arises (some must be
    seen before or while the command runs: a setuid program, a refusing or slow roard);
    `at_risk` is true when the record itself is partial, lost or not made (`roarctl run -q`
    still shows those). `progress` shows roard's progress on a large record.

    Each run takes its own cwd and environment; this process's working directory is never
    changed. ROAR_EARLY and ROAR_FLUSH_EVERY are read from this process's environment."""

    def __init__(
        self, on_warning: OnWarning | None = None, progress: ProgressBar | None = None
    ) -> None:
        self.on_warning = on_warning
        self.progress = progress

    def run(
        self,
        argv: list[str],
        cwd: str | bytes | None = None,
        env: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
        kind: JobKind = "run",
        step: int | None = None,
        request: str | None = None,
    ) -> RunResult:
        """Run `argv` in `cwd` (default: this process's) with `env` (default: this process's),
        as a job of `kind`; `step`: the number of the recorded step it runs again (`@N`);
        `request`: the training request it runs for (checked by the caller).

        The executable is looked up in `env`'s PATH, a relative one in `cwd`. Raises RoarError
        when the command cannot be started (exit_code 126 or 127, as the shell's) or roard
        refuses it; the command's own failure is the result's exit_code."""
        if not argv:
            raise RoarError("no command to run", exit_code=2)
        warn = _Warnings(self.on_warning)
        if cwd is None:
            where = _getcwd()
        else:
            from roarctl.steps import cannot_enter

            where = os.path.realpath(os.fsencode(cwd))
            why = cannot_enter(where)
            if why:
                raise RoarError(f"cannot enter {os.fsdecode(where)}: {why}")
        environ: Mapping[bytes, bytes] = os.environb
        if env is not None:
            environ = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        exe = find_executable(argv[0], environ.get(b"PATH", os.defpath.encode()), where)
        why = privilege_dropped(os.path.join(where, exe))
        if why:  # warn before it runs: it will run without its privilege
            warn(
                f"{argv[0]} {why}; under roar it runs without that privilege "
                "(tracing sets no_new_privs) and may fail or behave differently"
            )
        argv_b = [os.fsencode(a) for a in argv]
        env_b = [k + b"=" + v for k, v in environ.items()]
        started = time.time()
        early, tree = prerun.early_start(where) if step is None else (False, None)
        if early and tree is not None and _writable_in(tree):
            early = False  # e.g. `>> log` in the tree: the command could change it first
        announced: Announced | None = None
        if not early:
            announced = _announce_first(argv_b, where, env_b, started, kind, step, warn, request)
            env_b = announced.start.env  # with the project's `roarctl env set` variables
        switch = sys.getswitchinterval()
        try:
            return self._trace(
                exe, argv_b, where, env_b, started, kind, early, tree, announced, warn, request
            )
        finally:
            sys.setswitchinterval(switch)

    def _trace(
        self,
        exe: bytes,
        argv: list[bytes],
        cwd: bytes,
        env: list[bytes],
        started: float,
        kind: JobKind,
        early: bool,
        tree: bytes | None,
        announced: Announced | None,
        warn: _Warnings,
        request: str | None = None,
    ) -> RunResult:
        """Start the command under the tracer and fold its events until it ends; then deliver."""
        affinity = os.sched_getaffinity(0) if early else set()
        began = time.monotonic()
        try:
            tracer = trace.Tracer(exe, argv, env, cwd)
        except trace.TraceStartError as exc:
            if announced is not None and announced.client is not None:
                announced.client.close()
            code = 127 if exc.errno == 2 else 126
            name = os.fsdecode(argv[0])
            raise RoarError(f"cannot run {name}: {exc.strerror or exc}", exit_code=code) from None
        # In a git tree, an early command's first change waits until roard has taken the git
        # state: every write is held until then (the window), whatever path it goes through.
        window = early and tree is not None
        if early:
            sys.setswitchinterval(0.0005)  # a held tracee waits at most this for the GIL
            if window:
                tracer.hold_writes(True)
            helper = _Announcer(argv, cwd, env, started, kind, affinity, request)
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
                            warn(f"recording failed: {exc!r}", True)
                    if window and batch[-1].held:
                        _wait_for_snapshot(helper, warn)
                        tracer.hold_writes(False)
                        window = False
            except OSError as exc:  # the tracer itself failed: keep what was seen, as partial
                tracer_ok = False
                warn(f"tracing failed: {exc}", True)
        finally:
            status = tracer.exit_status()
            used = tracer.usage()
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
                return RunResult(
                    "", exit_code, elapsed, "not-recorded", warn.items, interrupted=True
                )
            except Exception as exc:  # roarctl cannot talk to roard at all (a broken install?)
                warn(f"this run is not recorded: {exc!r}", True)
                return RunResult("", exit_code, elapsed, "not-recorded", warn.items)
            for warning in announced.warnings:
                warn(warning)
        usage = None
        if used is not None:
            from roar.model import Usage

            user, system, rss = used
            usage = Usage(
                cpu_seconds=round(user + system, 6),
                user_seconds=user,
                system_seconds=system,
                max_rss_bytes=rss,
                wall_seconds=round(elapsed, 6),
            )
        return self._deliver(
            announced, recorder, status, ended, tracer_ok, stream, exit_code, elapsed, warn, usage
        )

    def _deliver(
        self,
        announced: Announced,
        recorder: Recorder,
        status: int,
        ended: float,
        tracer_ok: bool,
        stream: Stream | None,
        exit_code: int,
        elapsed: float,
        warn: _Warnings,
        usage: Usage | None = None,
    ) -> RunResult:
        """Deliver the record (or spool it) and say where it went."""

        from roar.protocol import RunDone, RunFinish
        from roarctl import deliver

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
            usage=usage,
        )

        def at_risk(text: str) -> None:
            warn(text, True)

        client, progress = announced.client, self.progress
        try:
            done = deliver.deliver(client, finish, recorder.facts(), at_risk, stream, progress)
        except KeyboardInterrupt:
            return RunResult(
                job_id, exit_code, elapsed, "in-background", warn.items, interrupted=True
            )
        if isinstance(done, RunDone):
            return RunResult(
                job_id,
                exit_code,
                elapsed,
                "stored",
                warn.items,
                job=done.job,
                filtered=done.filtered,
            )
        if isinstance(done, deliver.Spooled):
            result = RunResult(job_id, exit_code, elapsed, "spooled", warn.items, spool=done.path)
            result.store_failed = done.store_failed
            return result
        return RunResult(job_id, exit_code, elapsed, "lost", warn.items)


class _Warnings:
    """One run's warnings: kept for its result, and passed on to `on_warning` as they arise."""

    __slots__ = ("items", "on_warning")

    def __init__(self, on_warning: OnWarning | None) -> None:
        self.items: list[str] = []
        self.on_warning = on_warning

    def __call__(self, text: str, at_risk: bool = False) -> None:
        self.items.append(text)
        if self.on_warning is not None:
            self.on_warning(text, at_risk)


def find_executable(name: str, path: bytes, cwd: bytes) -> bytes:
    """PATH lookup as the shell does it, in `path` (a PATH value), a relative name or PATH
    entry taken in `cwd`; returns what to exec from `cwd`. RoarError with exit 126/127 when it
    cannot run."""
    name_b = os.fsencode(name)
    if b"/" in name_b:
        full = os.path.join(cwd, name_b)
        if not os.path.exists(full):
            raise RoarError(f"{name}: no such file or directory", exit_code=127)
        if os.path.isdir(full) or not os.access(full, os.X_OK):
            raise RoarError(f"{name}: permission denied (not an executable file)", exit_code=126)
        return name_b
    for d in path.split(b":"):
        candidate = os.path.join(d or b".", name_b)
        full = os.path.join(cwd, candidate)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return candidate
    raise RoarError(f"{name}: command not found", "check the spelling, or your PATH", exit_code=127)


def _getcwd() -> bytes:
    try:
        return os.getcwdb()
    except FileNotFoundError:
        raise RoarError(
            "the current directory no longer exists", "cd somewhere that does"
        ) from None


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


def _wait_for_snapshot(helper: _Announcer, warn: _Warnings) -> None:
    """Hold the command (stopped at its first write) until roard has taken the git state.
    Ctrl-C lets it go at once, as does a roard that has not answered in 15 s."""
    seen = trace.interrupts()
    deadline = time.monotonic() + 15
    while not helper.wait(0.05):
        if trace.interrupts() != seen:
            return
        if time.monotonic() > deadline:
            warn(
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
        request: str | None = None,
    ) -> None:
        self._args = (argv, cwd, env, started, kind)
        self._request = request
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
        return RunStart(
            argv=argv,
            cwd=cwd,
            env=env,
            started=started,
            kind=kind,
            early=True,
            request=self._request,
        )

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
    warn: _Warnings,
    request: str | None = None,
) -> Announced:
    """Announce the run before its command starts: its answer may inject env vars or refuse."""
    from roar.protocol import RunStart
    from roarctl import deliver

    start = RunStart(
        argv=argv, cwd=cwd, env=env, started=started, kind=kind, step=step, request=request
    )
    announced = deliver.announce(start)
    for warning in announced.warnings:
        warn(warning)
    if announced.inject:  # the project's `roarctl env set` variables
        names = {e.split(b"=", 1)[0] for e in announced.inject}
        env = [e for e in env if e.split(b"=", 1)[0] not in names] + announced.inject
        announced.start = RunStart(
            argv=argv, cwd=cwd, env=env, started=started, kind=kind, step=step, request=request
        )
    return announced


# ------------------------------------------------------------ the CLI's `run` and `build`


def main(
    argv: list[str],
    quiet: bool = False,
    verbose: bool = False,
    kind: JobKind = "run",
    request: str | None = None,
) -> int:
    """`roarctl run [-q] [-v] [--request R-12] CMD...`, `roarctl run @N [--name=value ...]`,
    `roarctl build`: run it, warnings on stderr as they arise, then one line saying what was
    recorded. Returns the command's exit code. A training request (`--request`, else
    $ROAR_REQUEST) is checked with the registry before the command starts."""
    request = request or os.environ.get(REQUEST_ENV) or None
    if request:
        from roarctl.remote import check_request

        request = check_request(request)
    cwd: bytes | None = None
    step: int | None = None
    if argv[0].startswith("@"):  # a recorded step again, in its directory
        from roarctl import steps

        plan = steps.resolve(argv[0], argv[1:], _getcwd())
        if not quiet:
            import shlex

            messages.note(f"re-running {plan.ref}: {shlex.join(plan.argv)}")
        argv, cwd, kind, step = plan.argv, plan.cwd, plan.kind, plan.number

    def on_warning(text: str, at_risk: bool) -> None:
        if at_risk or not quiet:
            messages.warn(text)

    runner = Runner(on_warning, progress=None if quiet else messages.ProgressBar())
    result = runner.run(argv, cwd=cwd, kind=kind, step=step, request=request)
    if not quiet:
        line = outcome(result, verbose)
        if line:
            messages.note(line)
    return result.exit_code


def outcome(result: RunResult, verbose: bool = False) -> str | None:
    """The line `roarctl run` ends with (after `roar: `), if any: the job's summary, or where
    its record went instead (a record lost was a warning already)."""
    if result.record == "stored" and result.job is not None:
        job = result.job
        status = "" if job.status == "complete" else f" · {job.status}"
        step = f" · {job.step}" if job.step else ""
        line = (
            f"job {job.id}{step} · {job.inputs} input{'s' * (job.inputs != 1)} · "
            f"{job.outputs} output{'s' * (job.outputs != 1)} · {_duration(result.elapsed)}{status}"
        )
        return line + f" · {result.filtered} system files filtered" if verbose else line
    if result.record == "spooled" and result.store_failed:
        return (
            f"job {result.job_id} spooled (roard is running but its store failed; roard "
            "stores it once the store can take it, retrying every minute)"
        )
    if result.record == "spooled":
        return (
            f"job {result.job_id} spooled (roard unavailable; it is stored when roard next starts)"
        )
    if result.record == "in-background":
        return "not waiting; roard finishes the record in the background"
    if result.record == "not-recorded" and result.interrupted:
        return "not waiting for roard; this run is not recorded"
    return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
