"""A job or an artifact whole, as the versioned record of roar.model: what `show` builds its
view from, what a registry registers, and (many at once, `read_jobs`) what `reproduce` plans
from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from roar.errors import NotFound
from roar.model import (
    IO,
    Artifact,
    CondaEnv,
    Container,
    FilteredSummary,
    GitState,
    Hardware,
    Job,
    Package,
    Process,
    RunContext,
    SystemPackages,
    TrackerRun,
    Usage,
)
from roar.protocol import show_path
from roard.store import Store
from roard.store.jobs import unpack

_CHUNK = 500  # ids per IN (...) list


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def _blobs(store: Store, digests: Iterable[str | None]) -> dict[str, bytes]:
    """Blob bodies by hash, each read once."""
    wanted = sorted({d for d in digests if d})
    found: dict[str, bytes] = {}
    for chunk in _chunks(wanted):
        rows = await store.rows(
            f"SELECT hash, body FROM blobs WHERE hash IN ({_marks(len(chunk))})", chunk
        )
        found.update((digest, bytes(body)) for digest, body in rows)
    return found


_ROW = (
    "SELECT j.seq, j.id, j.command, j.argv, j.cwd, j.started, j.status, j.kind, p.root,"
    " j.session_id, j.step, j.ended, j.exit_code, j.signal, j.git, j.env_blob,"
    " j.hardware_blob, j.packages, j.system_blob, j.conda_blob, j.container, j.external,"
    " j.usage{whole}"
    " FROM jobs j LEFT JOIN projects p ON p.id = j.project_id"
)
_WHOLE = ", j.processes, j.blind_spots, j.filtered, j.trackers"


async def read_jobs(store: Store, seqs: list[int], whole: bool = False) -> dict[int, Job]:
    """Jobs by seq, with their inputs and outputs, in a few queries whatever their number.
    Without `whole`, the process tree, blind spots, filtered files and tracker runs are left
    out (a plan needs none of them)."""
    jobs: dict[int, Job] = {}
    rows: list[Any] = []
    select = _ROW.format(whole=_WHOLE if whole else "")
    for chunk in _chunks(seqs):
        rows += await store.rows(f"{select} WHERE j.seq IN ({_marks(len(chunk))})", chunk)
    package_lists = {r[0]: unpack(r[17], dict[str, str], {}) or {} for r in rows}
    bodies = await _blobs(
        store,
        [d for r in rows for d in (r[15], r[16], r[18], r[19])]
        + [d for lists in package_lists.values() for d in lists.values()],
    )

    decoded: dict[tuple[str, Any], Any] = {}

    def blob(digest: str | None, typ: Any, default: Any) -> Any:
        """A blob decoded once, shared by every job that has it (records are not mutated)."""
        if not digest or digest not in bodies:
            return default
        if (digest, typ) not in decoded:
            decoded[(digest, typ)] = unpack(bodies[digest], typ, default)
        return decoded[(digest, typ)]

    for r in rows:
        ctx = RunContext(
            git=unpack(r[14], GitState),
            env=blob(r[15], dict[str, str], {}),
            packages={
                interp: blob(digest, list[Package], [])
                for interp, digest in package_lists[r[0]].items()
            },
            hardware=blob(r[16], Hardware, None),
            external=unpack(r[21], list[str], []),
            system=blob(r[18], SystemPackages, None),
            conda=blob(r[19], CondaEnv, None),
            container=unpack(r[20], Container, None),
        )
        if whole:
            ctx.processes = unpack(r[23], list[Process], [])
            ctx.blind_spots = unpack(r[24], list[str], [])
            ctx.filtered = unpack(r[25], FilteredSummary, FilteredSummary())
            ctx.trackers = unpack(r[26], list[TrackerRun], [])
        jobs[r[0]] = Job(
            id=r[1],
            command=r[2],
            argv=unpack(r[3], list[str], []),
            cwd=show_path(bytes(r[4])),
            started=r[5],
            status=r[6],
            kind=r[7],
            project=None if r[8] is None else show_path(r[8]),
            session=r[9],
            step=r[10],
            ended=r[11],
            exit_code=r[12],
            signal=r[13],
            context=ctx,
            usage=unpack(r[22], Usage, None),
        )
    for chunk in _chunks(list(jobs)):
        for seq, request in await store.rows(
            f"SELECT seq, request FROM jobs WHERE seq IN ({_marks(len(chunk))})"
            " AND request IS NOT NULL",
            chunk,
        ):
            jobs[seq].request = request
    for chunk in _chunks(list(jobs)):
        for seq, role, path, digest, size, previous in await store.rows(
            "SELECT io.job, io.role, p.path, a.hash, a.size, io.previous FROM job_io io"
            " JOIN paths p ON p.id = io.path JOIN artifacts a ON a.id = io.artifact"
            f" WHERE io.job IN ({_marks(len(chunk))}) ORDER BY io.job, io.role, p.path",
            chunk,
        ):
            record = IO(path=show_path(path), hash=digest, size=size, previous=previous or None)
            job = jobs[seq]
            (job.outputs if role == 1 else job.inputs).append(record)
    return jobs


async def context(store: Store, job_id: str) -> tuple[bytes, list[str], RunContext] | None:
    """A job's cwd (raw), argv and context (None: no such job)."""
    rows = await store.rows("SELECT seq, cwd FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        return None
    seq, cwd = rows[0]
    job = (await read_jobs(store, [seq], whole=True))[seq]
    return bytes(cwd), job.argv, job.context


async def read_job(store: Store, job_id: str) -> Job:
    """The whole record of a job: row, inputs and outputs (by path), context."""
    seq = await store.scalar("SELECT seq FROM jobs WHERE id = ?", (job_id,))
    if seq is None:
        raise NotFound(f"no job {job_id}")
    return (await read_jobs(store, [seq], whole=True))[seq]


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
