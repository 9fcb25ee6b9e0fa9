"""The SQLite backend's reads: quick ones on the event loop's thread, long ones moved to
aiosqlite's, with the same answers either way and the loop free meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

from glaas.store import open_store
from glaas.store.sqlite import SQLiteStore

COUNT = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) "


def test_long_reads_leave_the_loop(tmp_path: Path) -> None:
    async def main() -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], bool, int, bool]:
        store = await open_store(f"sqlite://{tmp_path / 'g.db'}")
        assert isinstance(store, SQLiteStore)
        try:
            quick = await store.fetch(f"{COUNT}SELECT count(*), sum(x) FROM c", 100)
            stayed = not store._quick.stopped
            ticks = 0

            async def ticker() -> None:  # runs only while the loop is free
                nonlocal ticks
                while True:
                    await asyncio.sleep(0)
                    ticks += 1

            task = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            # millions of steps: far beyond QUICK_READ, so run again in the thread
            long = await store.fetch(f"{COUNT}SELECT count(*), sum(x) FROM c", 3_000_000)
            task.cancel()
            return quick, long, stayed, ticks, store._quick.stopped
        finally:
            await store.close()

    quick, long, stayed, ticks, moved = asyncio.run(main())
    assert quick == [(100, 5050)]
    assert stayed
    assert long == [(3_000_000, 3_000_000 * 3_000_001 // 2)]
    assert moved
    # the loop ran other tasks while the long read ran in the thread (had it stayed on the loop,
    # the ticker would have had one turn at most)
    assert ticks > 100, ticks
