"""The queries of a reproduction's plan (roard.plan): the jobs a target needs, walked in one
recursive query, the job that produced each of their inputs, and the build steps of their
sessions.

The producer rule, in one place (`PRODUCER`): an input links only to a job that wrote that
content and had ended before the reading job started (a later re-run, or a later job that
copied the file, is never its producer), preferring one that wrote it at the path it was read
from, then the most recent.
"""

from __future__ import annotations

from typing import Any

from roard.store import Store

# With `io` an input row and `c` the job that read it: the seq of the job that produced it.
# (Two look-ups, not one ORDER BY: SQLite cannot sort a subquery by an outer row's column.)
_WROTE_IT = (
    "SELECT pj.seq FROM job_io o JOIN jobs pj ON pj.seq = o.job"
    " WHERE o.artifact = io.artifact AND o.role = 1 AND o.job != io.job"
    " AND coalesce(pj.ended, pj.started) <= c.started{same}"
    " ORDER BY coalesce(pj.ended, pj.started) DESC, pj.seq DESC LIMIT 1"
)
PRODUCER = "coalesce(({}), ({}))".format(
    _WROTE_IT.format(same=" AND o.path = io.path"), _WROTE_IT.format(same="")
)
_CHUNK = 500


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def job_seq(store: Store, job_id: str) -> int | None:
    found = await store.scalar("SELECT seq FROM jobs WHERE id = ?", (job_id,))
    return None if found is None else int(found)


async def producer_of_artifact(store: Store, digest: str, path: bytes | None) -> int | None:
    """The job that made an artifact: the first that wrote it (at `path`, if one did there);
    later jobs that wrote the same content are re-runs (or reproductions). None: no recorded
    job wrote it."""
    found = await store.scalar(
        "SELECT j.seq FROM artifacts a JOIN job_io io ON io.artifact = a.id AND io.role = 1"
        " JOIN jobs j ON j.seq = io.job JOIN paths p ON p.id = io.path WHERE a.hash = ?"
        " ORDER BY p.path = ? DESC, j.started, j.seq LIMIT 1",
        (digest, path),
    )
    return None if found is None else int(found)


async def ancestors(store: Store, seqs: list[int]) -> list[int]:
    """These jobs and every job they need, transitively, by the producer rule: one query."""
    if not seqs:
        return []
    rows = await store.rows(
        "WITH RECURSIVE need(seq) AS ("
        f" SELECT seq FROM jobs WHERE seq IN ({_marks(len(seqs))})"
        f" UNION SELECT ({PRODUCER}) FROM need n JOIN jobs c ON c.seq = n.seq"
        "  JOIN job_io io ON io.job = c.seq AND io.role = 0"
        ") SELECT seq FROM need WHERE seq IS NOT NULL",
        seqs,
    )
    return [int(r[0]) for r in rows]


async def producers(store: Store, seqs: list[int]) -> list[tuple[int, bytes, int]]:
    """For these jobs' inputs that a recorded job produced: (reader, path, producer) seqs."""
    found: list[tuple[int, bytes, int]] = []
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        rows = await store.rows(
            f"SELECT io.job, p.path, ({PRODUCER}) FROM job_io io JOIN jobs c ON c.seq = io.job"
            " JOIN paths p ON p.id = io.path"
            f" WHERE io.role = 0 AND io.job IN ({_marks(len(chunk))})",
            chunk,
        )
        found += [(r[0], bytes(r[1]), r[2]) for r in rows if r[2] is not None]
    return found


async def builds(store: Store, sessions: list[int]) -> list[tuple[int, int, int, float]]:
    """The build jobs of these sessions: (seq, session, step, started), in start order."""
    if not sessions:
        return []
    return await store.rows(
        "SELECT seq, session_id, step, started FROM jobs WHERE kind = 'build'"
        f" AND session_id IN ({_marks(len(sessions))}) ORDER BY started",
        sessions,
    )


async def session_jobs(store: Store, session: int) -> list[int]:
    """The current job of each step of a session (the newest of the step)."""
    rows = await store.rows(
        "SELECT seq FROM jobs j WHERE session_id = ? AND NOT EXISTS (SELECT 1 FROM jobs n"
        " WHERE n.session_id = j.session_id AND n.kind = j.kind AND n.step = j.step"
        " AND n.started > j.started) ORDER BY started",
        (session,),
    )
    return [int(r[0]) for r in rows]


async def seen_at(store: Store, hashes: list[str]) -> dict[str, list[bytes]]:
    """Every path each artifact was recorded at (read or written), most recent first."""
    found: dict[str, list[bytes]] = {}
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        rows: list[Any] = await store.rows(
            "SELECT a.hash, p.path, max(j.started) AS last FROM artifacts a"
            " JOIN job_io io ON io.artifact = a.id JOIN paths p ON p.id = io.path"
            f" JOIN jobs j ON j.seq = io.job WHERE a.hash IN ({_marks(len(chunk))})"
            " GROUP BY a.hash, p.path ORDER BY last DESC",
            chunk,
        )
        for digest, path, _ in rows:
            found.setdefault(digest, []).append(bytes(path))
    return found


async def project(store: Store, root: bytes) -> int | None:
    """The id of the project at `root`, if there is one (never created here)."""
    found = await store.scalar("SELECT id FROM projects WHERE root = ?", (root,))
    return None if found is None else int(found)
