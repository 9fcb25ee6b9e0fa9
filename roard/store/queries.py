"""What `log`, `show` and `status` read, and the look-ups that turn a target (id, hash, prefix,
path) into a job or an artifact."""

from __future__ import annotations

from typing import Literal

from roar.protocol import ArtifactDetail, IORecord, JobRef, JobRow, show_path
from roard.store import Store
from roard.store.jobs import ROW_SELECT, row_of

RecordKind = Literal["job", "artifact"]  # what a target names


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def log(store: Store, root: bytes | None, limit: int) -> list[JobRow]:
    """The newest jobs of the project at `root` (None: of every project)."""
    if root is None:
        rows = await store.rows(ROW_SELECT + " ORDER BY j.started DESC LIMIT ?", (limit,))
    else:
        rows = await store.rows(
            ROW_SELECT + " WHERE p.root = ? ORDER BY j.started DESC LIMIT ?", (root, limit)
        )
    return [row_of(r) for r in rows]


async def with_prefix(store: Store, prefix: str, limit: int = 5) -> list[tuple[RecordKind, str]]:
    """Jobs and artifacts whose id or hash starts with `prefix`: ('job', id), ('artifact', hash)."""
    lo, hi = prefix, prefix + "\uffff"
    jobs = await store.rows("SELECT id FROM jobs WHERE id >= ? AND id < ? LIMIT ?", (lo, hi, limit))
    arts = await store.rows(
        "SELECT hash FROM artifacts WHERE hash >= ? AND hash < ? LIMIT ?", (lo, hi, limit)
    )
    return [("job", r[0]) for r in jobs] + [("artifact", r[0]) for r in arts]


async def artifact_exists(store: Store, digest: str) -> bool:
    return bool(await store.scalar("SELECT 1 FROM artifacts WHERE hash = ?", (digest,)))


async def last_at_path(store: Store, path: bytes) -> str | None:
    """The hash of the content last recorded at `path` (read or written), if any."""
    found = await store.scalar(
        "SELECT a.hash FROM paths p JOIN job_io io ON io.path = p.id JOIN jobs j ON j.seq = io.job"
        " JOIN artifacts a ON a.id = io.artifact WHERE p.path = ? ORDER BY j.started DESC LIMIT 1",
        (path,),
    )
    return None if found is None else str(found)


async def seq_of(store: Store, job_id: str) -> int:
    return int(await store.scalar("SELECT seq FROM jobs WHERE id = ?", (job_id,)))


async def job_outputs(store: Store, seq: int) -> list[IORecord]:
    """A job's outputs, by path. (Its inputs, each with the job it came from: roard.sources.)"""
    rows = await store.rows(
        "SELECT p.path, a.hash, a.size, io.previous FROM job_io io"
        " JOIN paths p ON p.id = io.path JOIN artifacts a ON a.id = io.artifact"
        " WHERE io.job = ? AND io.role = 1 ORDER BY p.path",
        (seq,),
    )
    return [
        IORecord(path=show_path(path), hash=digest, size=size, previous=previous or None)
        for path, digest, size, previous in rows
    ]


async def artifact_detail(store: Store, digest: str) -> tuple[ArtifactDetail, set[str]] | None:
    """An artifact, the paths it was seen at and the jobs that wrote and read it, in time order
    (`produced_by`: every job that wrote it), and which of the writers are copies: they read
    the content too."""
    found = await store.rows("SELECT id, size FROM artifacts WHERE hash = ?", (digest,))
    if not found:
        return None
    artifact_id, size = found[0]
    rows = await store.rows(
        "SELECT io.role, p.path, j.id, j.command, j.started, io.role = 1 AND EXISTS (SELECT 1"
        "  FROM job_io c WHERE c.artifact = io.artifact AND c.role = 0 AND c.job = io.job)"
        " FROM job_io io JOIN jobs j ON j.seq = io.job JOIN paths p ON p.id = io.path"
        " WHERE io.artifact = ? ORDER BY j.started, j.seq",
        (artifact_id,),
    )
    produced: list[JobRef] = []
    read: list[JobRef] = []
    paths: list[str] = []
    copies: set[str] = set()
    for role, path, job_id, command, started, copy in rows:
        ref = JobRef(id=job_id, command=command, started=started, path=show_path(path))
        (produced if role == 1 else read).append(ref)
        if copy:
            copies.add(job_id)
        if ref.path not in paths:
            paths.append(ref.path)
    detail = ArtifactDetail(hash=digest, size=size, paths=paths, produced_by=produced, read_by=read)
    return detail, copies


async def counts(store: Store) -> tuple[int, int]:
    """Jobs and artifacts in the store."""
    jobs = await store.scalar("SELECT count(*) FROM jobs")
    # Artifact rows are never deleted, so max(id) is their count without scanning an index.
    arts = await store.scalar("SELECT coalesce(max(id), 0) FROM artifacts")
    return int(jobs), int(arts)


async def outputs_of(store: Store, job_ids: list[str]) -> dict[bytes, str]:
    """Raw path -> recorded hash of what these jobs wrote (raw: display forms of non-UTF-8
    names do not round-trip)."""
    if not job_ids:
        return {}
    rows = await store.rows(
        "SELECT p.path, a.hash FROM jobs j JOIN job_io io ON io.job = j.seq AND io.role = 1"
        " JOIN paths p ON p.id = io.path JOIN artifacts a ON a.id = io.artifact"
        f" WHERE j.id IN ({_marks(len(job_ids))})",
        job_ids,
    )
    return {bytes(path): digest for path, digest in rows}
