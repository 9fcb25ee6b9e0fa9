"""One function per request: what roard answers. Failures become Error replies here, in one place:
a roar.errors failure carries its own code; anything else is a bug (`internal`)."""

from __future__ import annotations

import os

import anyio
import msgspec
from anyio.abc import ByteStream

from roar import __version__, project
from roar.errors import RoarFailure, StoreError
from roar.protocol import (
    CollectionOp,
    DaemonInfo,
    Diff,
    EnvOp,
    Error,
    GetDag,
    GetInputs,
    GetLineage,
    GetLog,
    GetPlan,
    GetStatus,
    GetStep,
    Hashes,
    HashFiles,
    Hello,
    Init,
    InitDone,
    InputsReply,
    LabelOp,
    LineageReply,
    LogReply,
    Ok,
    Ping,
    Pop,
    Register,
    Request,
    Reset,
    RunFiles,
    RunFinish,
    RunStart,
    SessionInfo,
    Show,
    ShowArtifact,
    ShowJob,
    Shutdown,
    StatusReply,
    StepReply,
    frame,
    show_path,
    target_text,
)
from roard import bookkeeping, diff, lineage, plan, queries, registration, runs, sessions
from roard.capture import git
from roard.hashcache import hash_cached, hash_files
from roard.logs import log
from roard.state import State
from roard.store import Store, jobs
from roard.store import queries as rows
from roard.store import sessions as session_rows

GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


class Connection:
    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.runs: set[str] = set()  # runs started here and not finished yet
        self._lock = anyio.Lock()

    async def send(self, message: msgspec.Struct) -> None:
        async with self._lock:
            await self.stream.send(frame(message))


async def handle(store: Store, state: State, conn: Connection, request: Request) -> None:
    try:
        await _dispatch(store, state, conn, request)
    except RoarFailure as exc:
        hint = exc.hint
        if isinstance(exc, StoreError):
            log.error("store.error", request=type(request).__name__, error=exc.message)
            hint = hint or f"details in {state.paths.log}"
        await conn.send(Error(code=exc.code, message=exc.message, hint=hint))
    except GONE:
        raise
    except Exception:
        log.exception("request.failed", request=type(request).__name__)
        await conn.send(
            Error(
                code="internal",
                message="roard failed to handle the request",
                hint=f"details in {state.paths.log}",
            )
        )


async def _dispatch(store: Store, state: State, conn: Connection, request: Request) -> None:
    if not isinstance(request, (Ping, RunFiles)):
        state.refresh_config()  # a command right after `config set` sees the new value
    if not isinstance(request, (Ping, Shutdown, RunStart, RunFiles, RunFinish)):
        await state.spool_done.wait()  # queries see spooled runs; runs themselves never wait
    match request:
        case Ping():
            await conn.send(Ok())
        case Hello():
            await conn.send(Error(code="invalid", message="already greeted"))
        case Shutdown():
            await conn.send(Ok(message="roard stopping"))
            state.stop_reason = "asked to stop (Shutdown)"
            state.stop.set()
        case Init(cwd=cwd):
            root, config, created = await anyio.to_thread.run_sync(project.init, cwd)
            await conn.send(
                InitDone(root=show_path(root), config=show_path(config), created=created)
            )
        case GetStatus():
            await conn.send(await _status(store, state, request))
        case GetLog(cwd=cwd, limit=limit, all_projects=all_projects):
            await conn.send(LogReply(jobs=await queries.log(store, cwd, limit, all_projects)))
        case Show(target=target, cwd=cwd, verbose=verbose):
            kind, key = await queries.resolve(store, target_text(target), cwd)
            if kind == "job":
                await conn.send(ShowJob(detail=await queries.job_detail(store, key, verbose)))
            else:
                await conn.send(ShowArtifact(detail=await queries.artifact_detail(store, key)))
        case RunStart():
            started = await runs.announce(store, state.runs, request)
            if started.job_id:
                conn.runs.add(started.job_id)
            await conn.send(started)
        case RunFiles(job_id=job_id, files=files):
            # Also a run started on an earlier connection (roarctl resends its facts after
            # a roard restart): if this one drops, its facts go too.
            conn.runs.add(job_id)
            await runs.stream(store, state.runs, job_id, files)
        case RunFinish():
            register = registration.auto(state.config.registry)
            done = await runs.finish(store, state.filters, state.runs, request, conn.send, register)
            if register:
                state.outbox.wake()
            await conn.send(done)
            conn.runs.discard(request.job_id)
        case Reset(cwd=cwd):
            project_id, name = await bookkeeping.project_of(store, cwd)
            session = await sessions.new(store, project_id)
            await conn.send(
                SessionInfo(session=session, project=name, message=f"started session {session}")
            )
        case Pop(cwd=cwd, delete_outputs=delete, dry_run=dry_run, job_id=expected):
            session = await _session(store, cwd)
            await conn.send(await sessions.pop(store, session, delete, dry_run, expected))
        case GetStep(cwd=cwd, ref=step_ref):
            await conn.send(await _step(store, cwd, step_ref))
        case GetDag(cwd=cwd):
            await conn.send(await sessions.graph(store, await _session(store, cwd)))
        case GetLineage(target=target, cwd=cwd, downstream=down, depth=depth):
            kind, key, path = await queries.locate(store, target_text(target), cwd)
            tree = await lineage.walk(store, kind, key, down, depth, path)
            await conn.send(LineageReply(root=tree, downstream=down))
        case GetInputs(target=target, cwd=cwd, unsourced=unsourced):
            kind, key, path = await queries.locate(store, target_text(target), cwd)
            tree = await lineage.walk(store, kind, key, False, 0, path)
            found = await lineage.with_sizes(store, lineage.root_inputs(tree, unsourced))
            await conn.send(InputsReply(inputs=found))
        case Diff(a=a, b=b, cwd=cwd):
            await conn.send(await diff.compare(store, target_text(a), target_text(b), cwd))
        case EnvOp():
            await conn.send(await bookkeeping.env(store, request, state.prerun))
        case LabelOp():
            await conn.send(await bookkeeping.labels(store, request))
        case CollectionOp():
            await conn.send(await bookkeeping.collections(store, request))
        case Register():
            await conn.send(await registration.register(store, state.outbox, request, conn.send))
        case GetPlan():
            await conn.send(await plan.make(store, request))
        case HashFiles(paths=paths):
            hashed = await hash_cached(store, paths)
            await conn.send(Hashes(found=[(p, h, n) for p, (h, n) in hashed.items()]))


async def _session(store: Store, cwd: bytes) -> int:
    """The current session of cwd's project."""
    return await sessions.current(store, (await bookkeeping.project_of(store, cwd))[0])


async def _step(store: Store, cwd: bytes, step_ref: str) -> StepReply:
    job_id = await sessions.resolve_step(store, await _session(store, cwd), step_ref)
    found = await session_rows.command_of(store, job_id)
    assert found is not None
    argv, job_cwd, kind = found
    return StepReply(
        ref=step_ref.upper(),
        job_id=job_id,
        argv=argv,
        cwd=show_path(job_cwd),
        kind=kind,
        cwd_raw=job_cwd,
    )


async def disconnected(store: Store, state: State, conn: Connection) -> None:
    """A client that started a run went away without finishing it: keep what was seen."""
    await runs.abandon(store, state.runs, conn.runs)


async def _status(store: Store, state: State, req: GetStatus) -> StatusReply:
    njobs, narts = await rows.counts(store)
    try:
        size = os.stat(state.paths.db).st_size
    except OSError:
        size = 0
    root = project.find_root(req.cwd)
    git_state = await anyio.to_thread.run_sync(git.git_state, os.fsdecode(req.cwd))
    recent = await queries.log(store, req.cwd, req.limit, all_projects=root is None)
    project_id = await jobs.project_id(store, root) if root is not None else None
    session = await sessions.current(store, project_id)
    graph = await sessions.graph(store, session)
    stale = [f"{s.ref}: {s.stale_reason}" for s in graph.steps if s.stale_reason]
    recorded = await rows.outputs_of(store, [s.job.id for s in graph.steps])
    now = await hash_files(store, list(recorded), None)
    modified = [
        f"{show_path(path)}: " + ("missing" if path not in now else "modified outside roar")
        for path, digest in recorded.items()
        if path not in now or now[path][0] != digest
    ]
    return StatusReply(
        daemon=DaemonInfo(
            pid=os.getpid(),
            version=__version__,
            started=state.started,
            socket=str(state.paths.socket),
            store=str(state.paths.db),
            store_bytes=size,
            jobs=njobs,
            artifacts=narts,
            runs=len(state.runs),
            store_note=state.store_note,
        ),
        project=None if root is None else show_path(root),
        git=git_state,
        recent=recent,
        session=session,
        steps=len(graph.steps),
        stale=stale,
        modified=sorted(modified),
        registry=await state.outbox.info(store),
    )
