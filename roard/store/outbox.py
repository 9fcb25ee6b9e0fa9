"""The outbox of registration (roard.registration): jobs waiting to be sent to the registry, what
went wrong the last time, and the registry id each job got once sent. Rows are keyed by the
job's seq and go with the job."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from roard.store import Store, Tx


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Due(NamedTuple):
    seq: int
    job_id: str
    visibility: str | None


class Summary(NamedTuple):
    queued: int  # waiting to be sent
    held: int  # refused by the registry: sent again only by `roarctl register`
    last_success: float | None
    last_error: str | None
    last_error_at: float | None


async def queue_finished(tx: Tx, job_id: str, now: float) -> None:
    """A job that just finished, in the finish's own transaction (registry.auto)."""
    await tx.execute(
        "INSERT INTO outbox (job, queued) SELECT seq, ? FROM jobs WHERE id = ?"
        " ON CONFLICT DO NOTHING",
        (now, job_id),
    )


async def queue(tx: Tx, seqs: Iterable[int], visibility: str | None, now: float) -> None:
    """Jobs `roarctl register` asked for: queued again if held, with its visibility if given."""
    await tx.executemany(
        "INSERT INTO outbox (job, queued, visibility) VALUES (?, ?, ?)"
        " ON CONFLICT (job) DO UPDATE SET held = 0,"
        " visibility = coalesce(excluded.visibility, outbox.visibility)",
        [(seq, now, visibility) for seq in seqs],
    )


async def due(store: Store, limit: int, among: Sequence[int] | None = None) -> list[Due]:
    """Queued jobs, oldest first (of `among` only, when given), none held."""
    where, params = "", []
    if among is not None:
        if not among:
            return []
        where, params = f" AND o.job IN ({_marks(len(among))})", list(among)
    rows = await store.rows(
        "SELECT o.job, j.id, o.visibility FROM outbox o JOIN jobs j ON j.seq = o.job"
        f" WHERE o.held = 0{where} ORDER BY o.job LIMIT ?",
        [*params, limit],
    )
    return [Due(*r) for r in rows]


async def sessions_of(
    store: Store, seqs: Sequence[int]
) -> dict[int, tuple[int, float, bytes | None]]:
    """Each job's session: seq -> (session id, its start, its project's root)."""
    rows = await store.rows(
        "SELECT j.seq, s.id, s.started, p.root FROM jobs j JOIN sessions s ON s.id = j.session_id"
        " LEFT JOIN projects p ON p.id = s.project_id"
        f" WHERE j.seq IN ({_marks(len(seqs))})",
        seqs,
    )
    return {
        seq: (sid, started, None if root is None else bytes(root))
        for seq, sid, started, root in rows
    }


async def sent(tx: Tx, registry: str, ids: Sequence[tuple[int, str]], now: float) -> None:
    """Jobs the registry took: their registry ids kept, their rows out of the outbox."""
    await tx.executemany(
        "INSERT INTO registered (job, registry, id, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (job, registry) DO UPDATE SET id = excluded.id, at = excluded.at",
        [(seq, registry, rid, now) for seq, rid in ids],
    )
    await tx.executemany("DELETE FROM outbox WHERE job = ?", [(seq,) for seq, _ in ids])


async def failed(tx: Tx, seqs: Sequence[int], error: str, now: float, hold: bool) -> None:
    """A failed attempt to send these jobs: kept, with the error; `hold`: not retried."""
    await tx.executemany(
        "UPDATE outbox SET attempts = attempts + 1, error = ?, error_at = ?,"
        " held = max(held, ?) WHERE job = ?",
        [(error, now, int(hold), seq) for seq in seqs],
    )


async def forget(tx: Tx, seqs: Sequence[int]) -> None:
    """Rows that cannot be sent at all (the job is still running)."""
    await tx.executemany("DELETE FROM outbox WHERE job = ?", [(seq,) for seq in seqs])


async def registered(store: Store, registry: str, seqs: Sequence[int]) -> dict[int, str]:
    """The registry id of each of these jobs already sent to `registry`."""
    if not seqs:
        return {}
    found: dict[int, str] = {}
    for i in range(0, len(seqs), 900):  # SQLite's limit of bound parameters
        part = seqs[i : i + 900]
        rows = await store.rows(
            f"SELECT job, id FROM registered WHERE registry = ? AND job IN ({_marks(len(part))})",
            [registry, *part],
        )
        found.update((seq, rid) for seq, rid in rows)
    return found


async def seqs_of(store: Store, job_ids: Sequence[str]) -> dict[str, int]:
    """The seq of each of these jobs that has finished (a running job cannot be registered)."""
    found: dict[str, int] = {}
    for i in range(0, len(job_ids), 900):
        part = job_ids[i : i + 900]
        rows = await store.rows(
            f"SELECT id, seq FROM jobs WHERE status != 'running' AND id IN ({_marks(len(part))})",
            part,
        )
        found.update((jid, seq) for jid, seq in rows)
    return found


async def finished(store: Store, session: int | None = None) -> list[str]:
    """Every finished job (of one session), oldest first."""
    if session is None:
        rows = await store.rows("SELECT id FROM jobs WHERE status != 'running' ORDER BY seq")
    else:
        rows = await store.rows(
            "SELECT id FROM jobs WHERE status != 'running' AND session_id = ? ORDER BY seq",
            (session,),
        )
    return [r[0] for r in rows]


async def held(store: Store, seqs: Sequence[int]) -> list[tuple[int, str]]:
    """Which of these jobs the registry refused, with its reason."""
    if not seqs:
        return []
    found: list[tuple[int, str]] = []
    for i in range(0, len(seqs), 900):
        part = seqs[i : i + 900]
        found += await store.rows(
            f"SELECT job, error FROM outbox WHERE held = 1 AND job IN ({_marks(len(part))})",
            part,
        )
    return found


async def pending(store: Store, seqs: Sequence[int]) -> int:
    """How many of these jobs are still queued (not held)."""
    count = 0
    for i in range(0, len(seqs), 900):
        part = seqs[i : i + 900]
        count += await store.scalar(
            f"SELECT count(*) FROM outbox WHERE held = 0 AND job IN ({_marks(len(part))})", part
        )
    return count


async def session_started(store: Store, session: int) -> float:
    return float(await store.scalar("SELECT started FROM sessions WHERE id = ?", (session,)))


async def summary(store: Store, registry: str) -> Summary:
    rows = await store.rows("SELECT coalesce(sum(held = 0), 0), coalesce(sum(held), 0) FROM outbox")
    queued, held = rows[0]
    last_success = await store.scalar(
        "SELECT max(at) FROM registered WHERE registry = ?", (registry,)
    )
    last = await store.rows(
        "SELECT error, error_at FROM outbox WHERE error IS NOT NULL ORDER BY error_at DESC LIMIT 1"
    )
    error, error_at = last[0] if last else (None, None)
    return Summary(queued, held, last_success, error, error_at)
