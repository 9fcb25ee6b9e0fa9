"""A large run's facts and file rows, kept in temporary tables until it finishes (roard.staging).

Temporary tables belong to one connection: these live on the writer's, so they are read there
too, under the write lock. They are roard's own device for runs too large to hold in memory;
nothing a registry shares is built on them.
"""

from __future__ import annotations

import weakref
from typing import Any

from roard.store import Store, Tx
from roard.store.jobs import IORow

_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS facts_stage (seq INTEGER PRIMARY KEY, job TEXT NOT NULL,"
    " path BLOB NOT NULL, bits INTEGER NOT NULL, pre_existed INTEGER, pre_hash TEXT,"
    " pre_size INTEGER)",
    "CREATE INDEX IF NOT EXISTS temp.facts_stage_job ON facts_stage (job, seq)",
    "CREATE TEMP TABLE IF NOT EXISTS resolved_stage (job TEXT NOT NULL, path BLOB NOT NULL,"
    " seq INTEGER NOT NULL, bits INTEGER NOT NULL, pre_existed INTEGER, pre_hash TEXT,"
    " pre_size INTEGER, mode INTEGER, dev INTEGER, ino INTEGER, size INTEGER,"
    " mtime_ns INTEGER, ctime_ns INTEGER)",
    "CREATE INDEX IF NOT EXISTS temp.resolved_stage_order ON resolved_stage (job, path, seq)",
    "CREATE TEMP TABLE IF NOT EXISTS io_stage"
    " (job TEXT, role INTEGER, path BLOB, hash TEXT, size INTEGER, previous TEXT)",
)
_ready: weakref.WeakSet[Store] = weakref.WeakSet()  # stores whose writer has the tables

FactRow = tuple[bytes, int, bool | None, str | None, int | None]  # path, bits, pre_*


async def _ensure(store: Store) -> None:
    if store not in _ready:
        async with store.write() as tx:
            for sql in _SCHEMA:
                await tx.execute(sql)
        _ready.add(store)


async def add_facts(store: Store, job_id: str, facts: list[FactRow]) -> None:
    await _ensure(store)
    async with store.write() as tx:
        await tx.executemany(
            "INSERT INTO facts_stage (job, path, bits, pre_existed, pre_hash, pre_size)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(job_id, *f) for f in facts],
        )


async def drop(store: Store, job_id: str) -> None:
    """Everything staged for the job."""
    if store in _ready:
        async with store.write() as tx:
            await tx.execute("DELETE FROM facts_stage WHERE job = ?", (job_id,))
            await tx.execute("DELETE FROM resolved_stage WHERE job = ?", (job_id,))
            await tx.execute("DELETE FROM io_stage WHERE job = ?", (job_id,))


async def facts(store: Store, job_id: str, after: int, limit: int) -> list[Any]:
    """Staged facts in arrival order: (seq, path, bits, pre_existed, pre_hash, pre_size)."""
    await _ensure(store)
    async with store.write() as tx:
        return await tx.rows(
            "SELECT seq, path, bits, pre_existed, pre_hash, pre_size FROM facts_stage"
            " WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, limit),
        )


async def add_resolved(store: Store, rows: list[tuple[Any, ...]]) -> None:
    """Facts with their resolved path and its end state: (job, path, seq, bits, pre_existed,
    pre_hash, pre_size, mode, dev, ino, size, mtime_ns, ctime_ns)."""
    async with store.write() as tx:
        await tx.executemany(
            "INSERT INTO resolved_stage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )


async def resolved(store: Store, job_id: str, after: tuple[bytes, int], limit: int) -> list[Any]:
    """Resolved facts in (path, seq) order, after `after`: (path, seq, bits, pre_existed,
    pre_hash, pre_size, mode, dev, ino, size, mtime_ns, ctime_ns)."""
    async with store.write() as tx:
        return await tx.rows(
            "SELECT path, seq, bits, pre_existed, pre_hash, pre_size, mode, dev, ino, size,"
            " mtime_ns, ctime_ns FROM resolved_stage WHERE job = ? AND (path, seq) > (?, ?)"
            " ORDER BY path, seq LIMIT ?",
            (job_id, *after, limit),
        )


async def clear_io(store: Store, job_id: str) -> None:
    """File rows a failed earlier attempt to finish this job may have left."""
    await _ensure(store)
    async with store.write() as tx:
        await tx.execute("DELETE FROM io_stage WHERE job = ?", (job_id,))


async def stage_io(tx: Tx, job_id: str, rows: list[IORow]) -> None:
    """A chunk of the job's file rows, kept until `write_io`."""
    await tx.executemany(
        "INSERT INTO io_stage VALUES (?, ?, ?, ?, ?, ?)", [(job_id, *r) for r in rows]
    )


async def write_io(tx: Tx, job_id: str, now: float) -> None:
    """The job's staged file rows into the store, set-based (roard.store.jobs.add_io does the
    same from rows in memory): paths, artifacts, then links."""
    await tx.execute(
        "INSERT INTO paths (path) SELECT DISTINCT path FROM io_stage WHERE job = ?"
        " ON CONFLICT DO NOTHING",
        (job_id,),
    )
    await tx.execute(
        "INSERT INTO artifacts (hash, size, first_seen) SELECT hash, max(size), ? FROM io_stage"
        " WHERE job = ? GROUP BY hash ON CONFLICT DO NOTHING",
        (now, job_id),
    )
    seq = "(SELECT seq FROM jobs WHERE id = ?)"
    await tx.execute(f"DELETE FROM job_io WHERE job = {seq}", (job_id,))
    await tx.execute(
        f"INSERT INTO job_io (job, role, path, artifact, previous) SELECT {seq}, s.role, p.id,"
        " a.id, s.previous FROM io_stage s JOIN paths p ON p.path = s.path"
        " JOIN artifacts a ON a.hash = s.hash WHERE s.job = ?",
        (job_id, job_id),
    )
    await tx.execute("DELETE FROM io_stage WHERE job = ?", (job_id,))
