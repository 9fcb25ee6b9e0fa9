"""A job or an artifact whole, as the versioned record of roar.model: what `show` builds its
view from, and what a registry registers."""

from __future__ import annotations

from roar.errors import NotFound
from roar.model import (
    IO,
    Artifact,
    FilteredSummary,
    GitState,
    Hardware,
    Job,
    Package,
    Process,
    RunContext,
    TrackerRun,
)
from roar.protocol import show_path
from roard.store import Store
from roard.store.jobs import blob, unpack


async def context(store: Store, job_id: str) -> tuple[bytes, list[str], RunContext] | None:
    """A job's cwd (raw), argv and context (None: no such job)."""
    rows = await store.rows(
        "SELECT cwd, argv, git, env_blob, hardware_blob, packages, processes, blind_spots,"
        " filtered, trackers, external FROM jobs WHERE id = ?",
        (job_id,),
    )
    if not rows:
        return None
    cwd, argv, git, env_blob, hw_blob, pkgs, procs, blind, filtered, runs, external = rows[0]
    packages: dict[str, list[Package]] = {}
    for interp, digest in (unpack(pkgs, dict[str, str], {}) or {}).items():
        packages[interp] = await blob(store, digest, list[Package], [])
    ctx = RunContext(
        git=unpack(git, GitState),
        env=await blob(store, env_blob, dict[str, str], {}),
        packages=packages,
        hardware=await blob(store, hw_blob, Hardware, None),
        processes=unpack(procs, list[Process], []),
        blind_spots=unpack(blind, list[str], []),
        trackers=unpack(runs, list[TrackerRun], []),
        external=unpack(external, list[str], []),
        filtered=unpack(filtered, FilteredSummary, FilteredSummary()),
    )
    return bytes(cwd), unpack(argv, list[str], []), ctx


async def read_job(store: Store, job_id: str) -> Job:
    """The whole record of a job: row, inputs and outputs (by path), context."""
    rows = await store.rows(
        "SELECT j.id, j.command, j.started, j.status, j.kind, p.root, j.session_id, j.step,"
        " j.ended, j.exit_code, j.signal FROM jobs j LEFT JOIN projects p ON p.id = j.project_id"
        " WHERE j.id = ?",
        (job_id,),
    )
    found = await context(store, job_id)
    if not rows or found is None:
        raise NotFound(f"no job {job_id}")
    _, command, started, status, kind, root, session, step, ended, exit_code, sig = rows[0]
    cwd, argv, ctx = found
    inputs: list[IO] = []
    outputs: list[IO] = []
    for role, path, digest, size, previous in await store.rows(
        "SELECT io.role, p.path, a.hash, a.size, io.previous FROM jobs j"
        " JOIN job_io io ON io.job = j.seq JOIN paths p ON p.id = io.path"
        " JOIN artifacts a ON a.id = io.artifact WHERE j.id = ? ORDER BY io.role, p.path",
        (job_id,),
    ):
        record = IO(path=show_path(path), hash=digest, size=size, previous=previous or None)
        (outputs if role == 1 else inputs).append(record)
    return Job(
        id=job_id,
        command=command,
        argv=argv,
        cwd=show_path(cwd),
        started=started,
        status=status,
        kind=kind,
        project=None if root is None else show_path(root),
        session=session,
        step=step,
        ended=ended,
        exit_code=exit_code,
        signal=sig,
        inputs=inputs,
        outputs=outputs,
        context=ctx,
    )


async def read_artifact(store: Store, digest: str) -> Artifact:
    """An artifact: its content hash, size, and every path it was seen at (first seen first)."""
    found = await store.rows("SELECT id, size FROM artifacts WHERE hash = ?", (digest,))
    if not found:
        raise NotFound(f"no artifact {digest}")
    artifact_id, size = found[0]
    rows = await store.rows(
        "SELECT p.path FROM job_io io JOIN jobs j ON j.seq = io.job JOIN paths p ON p.id = io.path"
        " WHERE io.artifact = ? ORDER BY j.started",
        (artifact_id,),
    )
    paths = list(dict.fromkeys(show_path(r[0]) for r in rows))
    return Artifact(hash=digest, size=size, paths=paths)
