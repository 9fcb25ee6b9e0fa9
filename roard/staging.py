"""A large run's facts, kept in the store's temporary tables (on disk) until it finishes.

roarctl streams a run's facts every 20,000 paths (RunFiles). Holding them in roard's memory
until the run ends made the daemon grow by ~500 bytes per path (100 MB for 200,000 paths);
staged here, they cost disk pages instead, and the finish reads them back a chunk at a time:
pass 1 resolves and stats every path, pass 2 merges facts per resolved path in path order and
hands `classify.decide` one path at a time. A small run (one RunFinish, never streamed) is
classified in memory, which is faster. The tables are roard.store.staging's.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from typing import Any

import anyio

from roar.hashing import Key
from roar.protocol import FileFact
from roard.classify import Classified, Merged, Totals, bits_of, decide, resolve
from roard.filters import Filters
from roard.store import Store
from roard.store import staging as tables

CHUNK = 5000  # rows read, resolved and decided at a time
LARGE = 20000  # facts in one message beyond which the finish goes through staging too


async def add(store: Store, job_id: str, facts: list[FileFact]) -> None:
    rows = [(f.path, bits_of(f), f.pre_existed, f.pre_hash, f.pre_size) for f in facts]
    await tables.add_facts(store, job_id, rows)


async def drop(store: Store, job_id: str) -> None:
    await tables.drop(store, job_id)


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
    store: Store, job_id: str, filters: Filters, totals: Totals
) -> AsyncIterator[Classified]:
    """The run's staged facts, decided, a chunk of resolved paths at a time."""
    filters = filters.for_run()
    dirs: dict[bytes, bytes] = {}
    last = 0
    while rows := await tables.facts(store, job_id, last, CHUNK):
        last = rows[-1][0]
        resolved = await anyio.to_thread.run_sync(_resolve_rows, rows, job_id, dirs)
        await tables.add_resolved(store, resolved)
    del dirs
    out = Classified()
    path: bytes | None = None
    m = Merged()
    end: tuple = ()
    after: tuple[bytes, int] = (b"", -1)
    while rows := await tables.resolved(store, job_id, after, CHUNK):
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
