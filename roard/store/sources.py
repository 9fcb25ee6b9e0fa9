"""The SQL of roard.sources: which job each input links to, and which jobs wrote a content.
The rule itself is written down once, in roard.sources; this module says it in SQL.

Every look-up goes through job_io's index on (artifact, role), which also holds the row's job
and path, so "the writers of this content at this path" is one index range per input. The
writers come first (`w CROSS JOIN jobs`: SQLite keeps that order), never the project's jobs:
a project has thousands of jobs, a content a handful of writers.
"""

from __future__ import annotations

from typing import Any

from roar.model import GitState
from roard.store import Store
from roard.store.jobs import unpack

# A source candidate `w` (a job_io output row, its job `wj`) of the input `r` read by `rj`:
# it started before the reader (ties: the earlier record), so no link points forward in time.
_BEFORE = "(wj.started < rj.started OR (wj.started = rj.started AND wj.seq < rj.seq))"
# `w`'s job read the content it wrote: a copy of it, not its maker.
_COPY = (
    "EXISTS (SELECT 1 FROM job_io c WHERE c.artifact = w.artifact AND c.role = 0 AND c.job = w.job)"
)
# The latest job, started before the reader, that wrote the content at the path it was read at.
_AT_PATH = (
    "(SELECT w.job FROM job_io w CROSS JOIN jobs wj ON wj.seq = w.job"
    " WHERE w.artifact = r.artifact AND w.role = 1 AND w.path = r.path AND " + _BEFORE + ""
    " ORDER BY wj.started DESC, wj.seq DESC LIMIT 1)"
)
# Else: the earliest job of the reader's project, started before it, that wrote the content
# elsewhere without reading it (non-empty content only). roard.sources still checks that the
# path read is not a committed file of the reader's git state.
_ELSEWHERE = (
    "CASE WHEN a.size > 0 THEN (SELECT w.job FROM job_io w CROSS JOIN jobs wj ON wj.seq = w.job"
    " WHERE w.artifact = r.artifact AND w.role = 1 AND w.path != r.path"
    " AND wj.project_id = rj.project_id AND " + _BEFORE + " AND NOT " + _COPY + ""
    " ORDER BY wj.started, wj.seq LIMIT 1) END"
)
# (reader seq, artifact id, hash, path, size, source at the path, candidate elsewhere)
_LINKS = (
    "SELECT r.job, r.artifact, a.hash, p.path, a.size, " + _AT_PATH + ", " + _ELSEWHERE + ""
    " FROM job_io r JOIN jobs rj ON rj.seq = r.job JOIN artifacts a ON a.id = r.artifact"
    " JOIN paths p ON p.id = r.path"
)

LinkRow = tuple[int, int, str, bytes, int, int | None, int | None]


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def inputs(store: Store, seqs: list[int]) -> list[LinkRow]:
    """Every input of these jobs with its candidate sources, by job, then path."""
    if not seqs:
        return []
    return await store.rows(
        _LINKS + f" WHERE r.role = 0 AND r.job IN ({_marks(len(seqs))}) ORDER BY r.job, p.path",
        seqs,
    )


async def reads_of_outputs(store: Store, seqs: list[int]) -> list[LinkRow]:
    """Every input, of any job, of a content these jobs wrote, with its candidate sources, in
    the readers' start order (roard.sources keeps those whose source is one of these jobs)."""
    if not seqs:
        return []
    return await store.rows(
        _LINKS + " WHERE r.role = 0 AND r.artifact IN (SELECT o.artifact FROM job_io o"
        f"  WHERE o.role = 1 AND o.job IN ({_marks(len(seqs))}))"
        " ORDER BY rj.started, rj.seq, p.path",
        seqs,
    )


async def last_writer_at(store: Store, artifact: int, path: bytes) -> int | None:
    """The job that last wrote the content at `path`."""
    found = await store.scalar(
        "SELECT w.job FROM job_io w JOIN jobs wj ON wj.seq = w.job JOIN paths p ON p.id = w.path"
        " WHERE w.artifact = ? AND w.role = 1 AND p.path = ?"
        " ORDER BY wj.started DESC, wj.seq DESC LIMIT 1",
        (artifact, path),
    )
    return None if found is None else int(found)


async def producer(store: Store, artifact: int) -> tuple[int, bytes] | None:
    """The earliest job that wrote the content without reading it, and where it wrote it."""
    rows = await store.rows(
        "SELECT w.job, p.path FROM job_io w JOIN jobs wj ON wj.seq = w.job"
        f" JOIN paths p ON p.id = w.path WHERE w.artifact = ? AND w.role = 1 AND NOT {_COPY}"
        " ORDER BY wj.started, wj.seq, p.path LIMIT 1",
        (artifact,),
    )
    return (rows[0][0], bytes(rows[0][1])) if rows else None


async def artifact_id(store: Store, digest: str) -> int | None:
    found = await store.scalar("SELECT id FROM artifacts WHERE hash = ?", (digest,))
    return None if found is None else int(found)


async def readers(store: Store, artifact: int, path: bytes | None) -> list[tuple[int, str, str]]:
    """The jobs that read the content (at `path`, if given), in start order: (seq, id, command)."""
    at = "" if path is None else " AND r.path = (SELECT id FROM paths WHERE path = ?)"
    rows = await store.rows(
        "SELECT DISTINCT rj.seq, rj.id, rj.command, rj.started FROM job_io r"
        f" JOIN jobs rj ON rj.seq = r.job WHERE r.artifact = ? AND r.role = 0{at}"
        " ORDER BY rj.started, rj.seq",
        (artifact,) if path is None else (artifact, path),
    )
    return [(seq, job_id, command) for seq, job_id, command, _ in rows]


async def names(store: Store, seqs: list[int]) -> dict[int, tuple[str, str]]:
    """seq -> (id, command) of these jobs."""
    if not seqs:
        return {}
    rows = await store.rows(
        f"SELECT seq, id, command FROM jobs WHERE seq IN ({_marks(len(seqs))})", seqs
    )
    return {seq: (job_id, command) for seq, job_id, command in rows}


async def git_states(store: Store, seqs: list[int]) -> dict[int, GitState | None]:
    """The git state each of these jobs started in (None: not in a repository)."""
    rows: list[Any] = await store.rows(
        f"SELECT seq, git FROM jobs WHERE seq IN ({_marks(len(seqs))})", seqs
    )
    return {seq: unpack(git, GitState) for seq, git in rows}
