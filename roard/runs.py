"""A run's life in roard, from announce to finish, and its recovery when that life is cut short.

- announce (RunStart): project, git state (dirty files hashed), redacted environment and argv,
  hardware; the job row is inserted `running` (`_insert`: the one place a job row is made).
- stream (RunFiles): a large run's facts, staged on disk until the finish (roard.staging).
- finish (RunFinish): every path the tracer saw is resolved, filtered, classified (input,
  output, temporary), hashed through the cache, and written with the process tree in one
  transaction.
- recover: rows left `running` by a roard that died become `interrupted` at start-up; a run
  whose client went away is `interrupted` too (what was seen is kept); a finish for a run this
  store never saw rebuilds its row from the copy of RunStart it carries (`recovered`); and runs
  the CLI spooled while no roard could take them are finished at start-up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import anyio
import msgspec

from roar import project, redact
from roar.errors import StoreError
from roar.model import FilteredSummary, GitState, JobStatus
from roar.protocol import (
    FileFact,
    FrameError,
    Progress,
    RunDone,
    RunFinish,
    RunStart,
    RunStarted,
    decode_request,
    show_path,
)
from roard import outcome, sessions, staging, usage
from roard.capture import git, hardware, system
from roard.classify import Totals, classify
from roard.filters import Filters
from roard.hashcache import SendProgress, hash_files
from roard.logs import log
from roard.store import Store, hashcache, jobs, outbox, records
from roard.store import bookkeeping as settings
from roard.store import staging as staged_rows
from roard.store.hashcache import CacheRow
from roard.store.jobs import IORow

InFlight = dict[str, int]  # runs announced or streaming, not finished -> facts staged
DIRTY_HASH_LIMIT = 64 * 1024 * 1024  # untracked/modified files larger than this: listed, not hashed
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


# ---------------------------------------------------------------- announce


async def announce(store: Store, in_flight: InFlight, req: RunStart) -> RunStarted:
    job_id = secrets.token_hex(6)
    cwd = os.fsdecode(req.cwd)
    root = project.find_root(req.cwd)
    project_id = await jobs.project_id(store, root) if root is not None else None
    rules = project.load_config(root).hygiene if root is not None else None
    state = await anyio.to_thread.run_sync(git.git_state, cwd)
    warnings: list[str] = []
    if state is not None and not state.clean and rules is not None and rules.committed_code_only:
        names = ", ".join(f.path for f in state.dirty[:5])
        more = "" if len(state.dirty) <= 5 else f" and {len(state.dirty) - 5} more"
        why = f"hygiene.committed_code_only is set and {state.root} has uncommitted changes"
        if req.early:  # the rule was written after roarctl looked: too late to refuse
            warnings.append(f"{why} ({names}{more}); the run had already started")
        else:
            return RunStarted(
                job_id="",
                project=show_path(root) if root else None,
                refuse=f"{why} ({names}{more}): commit them, or turn the rule off with "
                "`roarctl config set hygiene.committed_code_only false`",
            )
    if state is not None:
        state = await _hash_dirty(store, state)
        if not state.clean:
            warnings.append(
                f"uncommitted changes in {len(state.dirty)} file(s) of {state.root} (recorded)"
            )
    project_env = await settings.env(store, project_id)
    inject = [f"{name}={value}".encode() for name, value in project_env.items()]
    if inject and req.early:  # set after roarctl looked: the command runs without them
        warnings.append(
            f"{len(inject)} project env variable(s) were set after the run started: "
            "not in its environment"
        )
        inject = []
    injected = {e.split(b"=", 1)[0] for e in inject}
    env = [e for e in req.env if e.split(b"=", 1)[0] not in injected] + inject
    # what the command receives; `env set` values are secret wherever they appear
    env_blob = await jobs.put_blob(store, redact.redact_env(env, project_env))
    hw_blob = await jobs.put_blob(store, hardware.hardware())
    step = await _insert(
        store,
        job_id,
        req,
        project_id,
        "running",
        req.step,
        state,
        env_blob,
        hw_blob,
        env,
        project_env,
    )
    in_flight[job_id] = 0
    log.info("run.start", job=job_id, project=None if root is None else show_path(root))
    return RunStarted(
        job_id=job_id,
        project=None if root is None else show_path(root),
        warnings=warnings,
        step=sessions.ref(req.kind, step),
        inject=inject,
    )


async def _insert(
    store: Store,
    job_id: str,
    start: RunStart,
    project_id: int | None,
    status: JobStatus,
    wanted_step: int | None,
    git_state: GitState | None,
    env_blob: str,
    hardware_blob: str | None,
    env: list[bytes],
    known: dict[str, str],
) -> int:
    """The job's row, in its session's next step (or `wanted_step`); the step. `env`: what
    the command receives, for its conda environment (the container is this machine's);
    `known`: the project's env vars, secret wherever they appear."""
    argv = redact.redact_argv(start.argv, list(known.values()))
    command = redact.command_display(argv)
    conda_blob = await outcome.conda_blob(store, env)
    async with store.write() as tx:
        session, step = await sessions.place(tx, project_id, start.kind, command, wanted_step)
        await jobs.insert(
            tx,
            job_id=job_id,
            project_id=project_id,
            status=status,
            command=command,
            argv=argv,
            cwd=start.cwd,
            started=start.started,
            kind=start.kind,
            session=session,
            step=step,
            git=git_state,
            env_blob=env_blob,
            hardware_blob=hardware_blob,
            conda_blob=conda_blob,
            container=system.this_container(),
        )
        if start.request:
            await jobs.set_request(tx, job_id, start.request)
    return step


async def _hash_dirty(store: Store, state: GitState) -> GitState:
    paths = [
        os.fsencode(os.path.join(state.root, f.path)) for f in state.dirty if f.status != "deleted"
    ]
    hashed = await hash_files(store, paths, None, limit=DIRTY_HASH_LIMIT)
    dirty = [
        msgspec.structs.replace(
            f, hash=hashed.get(os.fsencode(os.path.join(state.root, f.path)), (None,))[0]
        )
        for f in state.dirty
    ]
    return msgspec.structs.replace(state, dirty=dirty)


# ---------------------------------------------------------------- stream


async def stream(store: Store, in_flight: InFlight, job_id: str, files: list[FileFact]) -> None:
    """Stage a chunk of a run's facts (also of a run announced to an earlier roard)."""
    await staging.add(store, job_id, files)
    in_flight[job_id] = in_flight.get(job_id, 0) + len(files)


# ---------------------------------------------------------------- finish


async def finish(
    store: Store,
    filters: Filters,
    in_flight: InFlight,
    req: RunFinish,
    send: Callable[[Progress], Awaitable[None]] | None,
    register: bool = False,
) -> RunDone:
    """Settle the run and answer with its row; progress goes to `send` while it listens.
    `register`: queue the job for the registry in the same transaction (roard.registration).
    A finished job is never changed: a finish sent again (a retry, a replay) gets the record
    as it stands."""
    staged = in_flight.pop(req.job_id, 0) > 0 or len(req.files) > staging.LARGE
    if await jobs.status(store, req.job_id) in FINISHED:
        if staged:
            with anyio.CancelScope(shield=True):
                await staging.drop(store, req.job_id)
        log.warning("run.finish_again", job=req.job_id)
        return await _done(store, req.job_id)
    listening = send is not None

    async def progress(p: Progress) -> None:
        # A client that stopped waiting (Ctrl-C) must not cost the record: keep finishing.
        nonlocal listening
        if listening and send is not None:
            try:
                await send(p)
            except _GONE:
                listening = False

    try:
        return await _settle(store, filters, req, progress, staged, register)
    finally:
        if staged:
            with anyio.CancelScope(shield=True):
                await staging.drop(store, req.job_id)


async def _settle(
    store: Store,
    filters: Filters,
    req: RunFinish,
    progress: SendProgress,
    staged: bool,
    register: bool,
) -> RunDone:
    """Classify the run's paths, hash through the cache, write the record. `staged`: its facts
    (and req.files, added first) go through roard.staging, a chunk at a time."""
    began = time.monotonic()
    root = project.find_root(req.start.cwd)
    project_id = await jobs.project_id(store, root) if root is not None else None
    known = await settings.env(store, project_id)
    if root is not None:
        own = project.load_config(root).filters
        filters = filters.extended(own.exclude, own.include)
    totals = Totals()
    written: list[bytes] = []  # outputs, for the tracker runs they reveal
    rows: list[IORow] = []  # a small run's, written with the record
    cache: list[CacheRow] = []
    hash_seconds = 0.0
    hashed_count = 0
    if staged:
        if req.files:
            await staging.add(store, req.job_id, req.files)
        await staged_rows.clear_io(store, req.job_id)
        chunks = staging.classified(store, req.job_id, filters, totals)
    else:
        classified = await anyio.to_thread.run_sync(classify, req.files, filters, totals)
        chunks = outcome.single(classified)
    async for c in chunks:
        t = time.monotonic()
        chunk_rows, cache_rows = await outcome.io_rows(store, c, progress)
        hash_seconds += time.monotonic() - t
        hashed_count += len(cache_rows)
        chunk_written = [path for role, path, *_ in chunk_rows if role == 1]
        written += chunk_written
        totals.outputs += len(chunk_written)
        totals.inputs += len(chunk_rows) - len(chunk_written)
        if staged:  # to the staging table now; small runs write theirs with the record
            async with store.write() as tx:
                await staged_rows.stage_io(tx, req.job_id, chunk_rows)
                await hashcache.put(tx, cache_rows)
        else:
            rows += chunk_rows
            cache += cache_rows
    t_hash = time.monotonic()

    pkgs = await outcome.package_lists(store, req.procs)
    system_blob = await outcome.system_blob(store, req.procs, totals.filtered_paths)
    trackers = await outcome.tracker_runs(store, req.job_id, [*written, *totals.filtered_paths])
    t_packages = time.monotonic()
    before = await jobs.status(store, req.job_id)
    if before is None:  # this store never saw the run (roard lost it): rebuild it from the finish
        await _rebuild(store, req, known)
        before = "interrupted"
    status: JobStatus = "complete" if before == "running" else "recovered"
    if not req.tracer_ok:
        status = "partial"
    exit_code, sig = outcome.split_status(req.wait_status)
    filtered = FilteredSummary(
        count=sum(totals.filtered.values()),
        by_rule=totals.filtered,
        paths=[show_path(p) for p in totals.filtered_paths],
    )
    machine = await anyio.to_thread.run_sync(hardware.hardware)  # cached: once per roard
    used = usage.complete(req.usage, req.start.env, machine.gpus)
    now = time.time()
    async with store.write() as tx:
        if staged:
            await staged_rows.write_io(tx, req.job_id, now)
        else:
            await jobs.add_io(tx, req.job_id, rows, now)
            await hashcache.put(tx, cache)
        await jobs.settle(
            tx,
            req.job_id,
            status=status,
            ended=req.ended,
            exit_code=exit_code,
            signal=sig,
            inputs=totals.inputs,
            outputs=totals.outputs,
            packages=pkgs,
            processes=outcome.proc_views(req.procs, list(known.values())),
            blind_spots=sorted(set(req.blind_spots)),
            filtered=filtered,
            trackers=trackers,
            external=sorted(set(req.external)),
            system_blob=system_blob,
        )
        await jobs.set_usage(tx, req.job_id, used)
        if register:
            await outbox.queue_finished(tx, req.job_id, now)
    t_written = time.monotonic()
    log.info(
        "run.finish",
        job=req.job_id,
        status=status,
        inputs=totals.inputs,
        outputs=totals.outputs,
        filtered=filtered.count,
        hashed=hashed_count,
        staged=staged,
        seconds=round(time.monotonic() - began, 3),
        classify=round(t_hash - began - hash_seconds, 3),
        hash=round(hash_seconds, 3),
        packages=round(t_packages - t_hash, 3),
        write=round(t_written - t_packages, 3),
    )
    return await _done(store, req.job_id)


FINISHED: frozenset[JobStatus] = frozenset({"complete", "recovered", "partial"})


async def _done(store: Store, job_id: str) -> RunDone:
    row = await jobs.job_row(store, job_id)
    found = await records.context(store, job_id)
    if row is None or found is None:
        raise StoreError(f"job {job_id} vanished while it was being finished")
    return RunDone(job=row, filtered=found[2].filtered.count)


async def _rebuild(store: Store, req: RunFinish, known: dict[str, str]) -> None:
    """The job row of a run this store never saw start, from the RunStart its finish carries."""
    s = req.start
    root = project.find_root(s.cwd)
    project_id = await jobs.project_id(store, root) if root is not None else None
    env_blob = await jobs.put_blob(store, redact.redact_env(s.env, known))
    await _insert(
        store, req.job_id, s, project_id, "interrupted", None, None, env_blob, None, s.env, known
    )


# ---------------------------------------------------------------- recover


async def recover(store: Store) -> int:
    """At start-up: runs left `running` by a roard that died become `interrupted`."""
    return await jobs.interrupt_running(store)


async def abandon(store: Store, in_flight: InFlight, job_ids: Iterable[str]) -> None:
    """Runs whose client went away without finishing them: keep what was seen, `interrupted`."""
    for job_id in job_ids:
        staged = in_flight.pop(job_id, 0)
        try:  # never let one connection's cleanup take the listener (and roard) down
            with anyio.CancelScope(shield=True):
                if staged:
                    await staging.drop(store, job_id)
                await jobs.interrupt(store, job_id)
        except StoreError as exc:
            log.error("run.abandon_failed", job=job_id, error=str(exc))
            continue
        log.warning("run.abandoned", job=job_id)


STALE_SPOOL_TMP = 600.0  # seconds: a `.tmp` this old is a save that failed (a full disk)


async def ingest_spool(
    store: Store, filters: Filters, in_flight: InFlight, spool: Path, register: bool = False
) -> int:
    """Finish the runs the CLI saved (as RunFinish frames) while no roard (or no store) could
    take them; how many. At the first failure of ours (the store full or failing) the pass
    stops: the rest wait for the next pass (roard.daemon runs one every spool_retry seconds).
    Half-written saves (`.tmp`) left by a CLI that ran out of disk are removed."""
    try:
        entries = sorted(spool.glob("*.msgpack")) if spool.is_dir() else []
        _remove_stale_tmp(spool)
    except OSError as exc:
        log.error("spool.unreadable", spool=str(spool), error=str(exc))
        return 0
    done = 0
    for entry in entries:
        try:
            req = decode_request(entry.read_bytes())
            if not isinstance(req, RunFinish):
                raise FrameError("not a finished run")
            await finish(store, filters, in_flight, req, None, register)
        except (StoreError, OSError) as exc:  # ours, not the file's: retry at the next pass
            log.error("spool.deferred", file=entry.name, error=str(exc))
            return done
        except Exception as exc:
            log.error("spool.bad", file=entry.name, error=str(exc))
            with contextlib.suppress(OSError):
                entry.rename(entry.with_suffix(".bad"))
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
        done += 1
        log.info("spool.ingested", file=entry.name, job=req.job_id)
    return done


def _remove_stale_tmp(spool: Path) -> None:
    if not spool.is_dir():
        return
    for tmp in spool.glob("*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < time.time() - STALE_SPOOL_TMP:
                tmp.unlink()
                log.warning("spool.stale_tmp_removed", file=tmp.name)
