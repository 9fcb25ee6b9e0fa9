"""A large run's facts, kept in the store's temporary tables (on disk) until it finishes.

roarctl streams a run's facts every 20,000 paths (RunFiles). Holding them in roard's memory
until the run ends made the daemon grow by ~500 bytes per path (100 MB for 200,000 paths);
staged here, they cost disk pages instead, and the finish reads them back a chunk at a time:
pass 1 resolves and stats every path, pass 2 merges facts per resolved path in path order and
hands `classify.decide` one path at a time. A small run (one RunFinish, never streamed) is
classified in memory, which is faster.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

from roar.hashing import Key
from roar.protocol import FileFact
from roard.classify import Classified, Merged, Totals, bits_of, decide, resolve
from roard.filters import Filters

if TYPE_CHECKING:
    from roard.daemon import Daemon

CHUNK = 5000  # rows read, resolved and decided at a time
LARGE = 20000  # facts in one message beyond which the finish goes through staging too

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
)


async def _ensure(d: Daemon) -> None:
    if not d.staging_ready:
        async with d.store.write() as db:
            for sql in _SCHEMA:
                await db.execute(sql)
        d.staging_ready = True


async def add(d: Daemon, job_id: str, facts: list[FileFact]) -> None:
    await _ensure(d)
    rows = [(job_id, f.path, bits_of(f), f.pre_existed, f.pre_hash, f.pre_size) for f in facts]
    async with d.store.write() as db:
        await db.executemany(
            "INSERT INTO facts_stage (job, path, bits, pre_existed, pre_hash, pre_size)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


async def drop(d: Daemon, job_id: str) -> None:
    if d.staging_ready:
        async with d.store.write() as db:
            await db.execute("DELETE FROM facts_stage WHERE job = ?", (job_id,))
            await db.execute("DELETE FROM resolved_stage WHERE job = ?", (job_id,))


def _resolve_rows(rows: list[Any], job_id: str, dirs: dict[bytes, bytes]) -> list[tuple]:
    out = []
    for seq, path, bits, pre_existed, pre_hash, pre_size in rows:
        real, st = resolve(path, dirs)
        if st is None:
            end: tuple = (None,) * 6
        else:
            end = (st.st_mode, *Key.of(st))
        out.append((job_id, real, seq, bits, pre_existed, pre_hash, pre_size, *end))
    return out


async def classified(
    d: Daemon, job_id: str, filters: Filters, totals: Totals
) -> AsyncIterator[Classified]:
    """The run's staged facts, decided, a chunk of resolved paths at a time."""
    await _ensure(d)
    filters = filters.for_run()
    dirs: dict[bytes, bytes] = {}
    last = 0
    while rows := await d.store.rows(
        "SELECT seq, path, bits, pre_existed, pre_hash, pre_size FROM facts_stage"
        " WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?",
        (job_id, last, CHUNK),
    ):
        last = rows[-1][0]
        resolved = await anyio.to_thread.run_sync(_resolve_rows, rows, job_id, dirs)
        async with d.store.write() as db:
            await db.executemany(
                "INSERT INTO resolved_stage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                resolved,
            )
    del dirs
    out = Classified()
    path: bytes | None = None
    m = Merged()
    end: tuple = ()
    after: tuple[bytes, int] = (b"", -1)
    while rows := await d.store.rows(
        "SELECT path, seq, bits, pre_existed, pre_hash, pre_size, mode, dev, ino, size,"
        " mtime_ns, ctime_ns FROM resolved_stage WHERE job = ? AND (path, seq) > (?, ?)"
        " ORDER BY path, seq LIMIT ?",
        (job_id, *after, CHUNK),
    ):
        after = (rows[-1][0], rows[-1][1])
        for row in rows:
            if row[0] != path:
                if path is not None:
                    _decide(path, m, end, filters, out, totals)
                path, m, end = row[0], Merged(), row[6:]
            m.add(row[2], _bool(row[3]), row[4], row[5])
        if len(out.inputs) + len(out.outputs) + len(out.rdwr) >= CHUNK:
            yield out
            out = Classified()
    if path is not None:
        _decide(path, m, end, filters, out, totals)
    yield out


def _decide(
    path: bytes, m: Merged, end: tuple, filters: Filters, out: Classified, totals: Totals
) -> None:
    mode = end[0]
    key = Key(*end[1:]) if mode is not None and stat.S_ISREG(mode) else None
    decide(path, m, mode, key, filters, out, totals)


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)
