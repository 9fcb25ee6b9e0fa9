"""One function per request: what roard answers. Errors become Error replies here, in one place."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

import anyio
import msgspec
from anyio.abc import ByteStream

from roar import __version__, project
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
    GetStatus,
    GetStep,
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
    Progress,
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
)
from roard import (
    bookkeeping,
    diff,
    jobs,
    lineage,
    queries,
    sessions,
    staging,
)
from roard.capture import git
from roard.logs import log
from roard.store import StoreError

if TYPE_CHECKING:
    from roard.daemon import Daemon

__all__ = ["Connection", "RunFinish", "disconnected", "finish_run", "handle"]


class Connection:
    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.runs: set[str] = set()  # runs started here and not finished yet
        self._lock = anyio.Lock()

    async def send(self, message: msgspec.Struct) -> None:
        async with self._lock:
            await self.stream.send(frame(message))


async def handle(d: Daemon, conn: Connection, request: Request) -> None:
    try:
        await _dispatch(d, conn, request)
    except sessions.StepNotFound as exc:
        await conn.send(Error(code="not-found", message=str(exc)))
    except queries.Ambiguous as exc:
        await conn.send(Error(code="ambiguous", message=str(exc), hint=exc.hint))
    except queries.NotFound as exc:
        await conn.send(Error(code="not-found", message=str(exc), hint=exc.hint))
    except (StoreError, sqlite3.Error) as exc:
        log.error("store.error", request=type(request).__name__, error=str(exc))
        await conn.send(
            Error(
                code="store", message=f"the store failed: {exc}", hint=f"details in {d.paths.log}"
            )
        )
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
        raise
    except Exception:
        log.exception("request.failed", request=type(request).__name__)
        await conn.send(
            Error(
                code="internal",
                message="roard failed to handle the request",
                hint=f"details in {d.paths.log}",
            )
        )


async def _dispatch(d: Daemon, conn: Connection, request: Request) -> None:
    if not isinstance(request, (Ping, Shutdown, RunStart, RunFiles, RunFinish)):
        await d.spool_done.wait()  # queries see spooled runs; runs themselves never wait
    match request:
        case Ping():
            await conn.send(Ok())
        case Hello():
            await conn.send(Error(code="invalid", message="already greeted"))
        case Shutdown():
            await conn.send(Ok(message="roard stopping"))
            d.stop.set()
        case Init(cwd=cwd):
            root, config, created = await anyio.to_thread.run_sync(project.init, cwd)
            await conn.send(
                InitDone(root=show_path(root), config=show_path(config), created=created)
            )
        case GetStatus():
            await conn.send(await _status(d, request))
        case GetLog(cwd=cwd, limit=limit, all_projects=all_projects):
            await conn.send(LogReply(jobs=await queries.log(d, cwd, limit, all_projects)))
        case Show(target=target, cwd=cwd, verbose=verbose):
            kind, key = await queries.resolve(d, target, cwd)
            if kind == "job":
                await conn.send(ShowJob(detail=await queries.job_detail(d, key, verbose)))
            else:
                await conn.send(ShowArtifact(detail=await queries.artifact_detail(d, key)))
        case RunStart():
            started = await jobs.start(d, request)
            conn.runs.add(started.job_id)
            d.runs[started.job_id] = 0
            await conn.send(started)
        case RunFiles(job_id=job_id, files=files):
            # Also a run started on an earlier connection (roarctl resends its facts after
            # a roard restart): if this one drops, its facts go too.
            conn.runs.add(job_id)
            await staging.add(d, job_id, files)
            d.runs[job_id] = d.runs.get(job_id, 0) + len(files)
        case RunFinish():
            await conn.send(await finish_run(d, request, conn))
            conn.runs.discard(request.job_id)
        case Reset(cwd=cwd):
            project_id, name = await bookkeeping.project_of(d, cwd)
            session = await sessions.new(d, project_id)
            await conn.send(
                SessionInfo(session=session, project=name, message=f"started session {session}")
            )
        case Pop(cwd=cwd, delete_outputs=delete, dry_run=dry_run, job_id=expected):
            session = await sessions.current(d, (await bookkeeping.project_of(d, cwd))[0])
            await conn.send(await sessions.pop(d, session, delete, dry_run, expected))
        case GetStep(cwd=cwd, ref=step_ref):
            await conn.send(await _step(d, cwd, step_ref))
        case GetDag(cwd=cwd):
            session = await sessions.current(d, (await bookkeeping.project_of(d, cwd))[0])
            await conn.send(await sessions.graph(d, session))
        case GetLineage(target=target, cwd=cwd, downstream=down, depth=depth):
            kind, key = await queries.resolve(d, target, cwd)
            tree = await lineage.walk(d, kind, key, down, depth)
            await conn.send(LineageReply(root=tree, downstream=down))
        case GetInputs(target=target, cwd=cwd, unsourced=unsourced):
            kind, key = await queries.resolve(d, target, cwd)
            tree = await lineage.walk(d, kind, key, False, 0)
            found = await lineage.with_sizes(d, lineage.root_inputs(tree, unsourced))
            await conn.send(InputsReply(inputs=found))
        case Diff(a=a, b=b, cwd=cwd):
            await conn.send(await diff.compare(d, a, b, cwd))
        case EnvOp():
            await conn.send(await bookkeeping.env(d, request))
        case LabelOp():
            await conn.send(await bookkeeping.labels(d, request))
        case CollectionOp():
            await conn.send(await bookkeeping.collections(d, request))


async def _step(d: Daemon, cwd: bytes, step_ref: str) -> StepReply:
    session = await sessions.current(d, (await bookkeeping.project_of(d, cwd))[0])
    try:
        job_id = await sessions.resolve_step(d, session, step_ref)
    except sessions.StepNotFound as exc:
        raise queries.NotFound(str(exc), "`roarctl dag` lists the session's steps") from None
    rows = await d.store.rows("SELECT argv, cwd, kind FROM jobs WHERE id = ?", (job_id,))
    argv, job_cwd, kind = rows[0]
    return StepReply(
        ref=step_ref.upper(),
        job_id=job_id,
        argv=msgspec.msgpack.decode(argv, type=list[str]),
        cwd=show_path(job_cwd),
        kind=kind,
        cwd_raw=job_cwd,
    )


async def finish_run(d: Daemon, req: RunFinish, conn: Connection | None) -> msgspec.Struct:
    staged = d.runs.pop(req.job_id, 0) > 0 or len(req.files) > staging.LARGE

    gone = conn is None

    async def progress(p: Progress) -> None:
        # A client that stopped waiting (Ctrl-C) must not cost the record: keep finishing.
        nonlocal gone
        if gone:
            return
        try:
            await conn.send(p)  # type: ignore[union-attr]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            gone = True

    try:
        return await jobs.finish(d, req, req.files, progress, staged)
    finally:
        if staged:
            with anyio.CancelScope(shield=True):
                await staging.drop(d, req.job_id)


async def disconnected(d: Daemon, conn: Connection) -> None:
    """A client that started a run went away without finishing it: keep what was seen."""
    for job_id in conn.runs:
        staged = d.runs.pop(job_id, 0)
        try:  # never let one connection's cleanup take the listener (and roard) down
            with anyio.CancelScope(shield=True):
                if staged:
                    await staging.drop(d, job_id)
                async with d.store.write() as db:
                    await db.execute(
                        "UPDATE jobs SET status = 'interrupted'"
                        " WHERE id = ? AND status = 'running'",
                        (job_id,),
                    )
        except (StoreError, sqlite3.Error) as exc:
            log.error("run.abandon_failed", job=job_id, error=str(exc))
            continue
        log.warning("run.abandoned", job=job_id)


async def _status(d: Daemon, req: GetStatus) -> StatusReply:
    njobs, narts = await queries.counts(d)
    try:
        size = os.stat(d.paths.db).st_size
    except OSError:
        size = 0
    root = project.find_root(req.cwd)
    state = await anyio.to_thread.run_sync(git.git_state, os.fsdecode(req.cwd))
    recent = await queries.log(d, req.cwd, req.limit, all_projects=root is None)
    project_id = await d.store.project_id(root) if root is not None else None
    session = await sessions.current(d, project_id)
    graph = await sessions.graph(d, session)
    stale = [f"{s.ref}: {s.stale_reason}" for s in graph.steps if s.stale_reason]
    current = [s.job.id for s in graph.steps]
    recorded: dict[bytes, str] = (
        dict(
            await d.store.rows(  # raw paths: display forms of non-UTF-8 names do not round-trip
                "SELECT p.path, a.hash FROM jobs j JOIN job_io io ON io.job = j.seq AND io.role = 1"
                " JOIN paths p ON p.id = io.path JOIN artifacts a ON a.id = io.artifact"
                f" WHERE j.id IN ({','.join('?' * len(current))})",
                current,
            )
        )
        if current
        else {}
    )
    now = await jobs.hash_files(d, list(recorded), None)
    modified = [
        f"{show_path(path)}: " + ("missing" if path not in now else "modified outside roar")
        for path, digest in recorded.items()
        if path not in now or now[path][0] != digest
    ]
    return StatusReply(
        daemon=DaemonInfo(
            pid=os.getpid(),
            version=__version__,
            started=d.started,
            socket=str(d.paths.socket),
            store=str(d.paths.db),
            store_bytes=size,
            jobs=njobs,
            artifacts=narts,
            runs=len(d.runs),
        ),
        project=None if root is None else show_path(root),
        git=state,
        recent=recent,
        session=session,
        steps=len(graph.steps),
        stale=stale,
        modified=sorted(modified),
    )
