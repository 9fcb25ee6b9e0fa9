"""The embedded backend: one SQLite file in WAL mode, one connection that writes (every write in
`BEGIN IMMEDIATE`, so several server workers take turns; a lock, so a worker's concurrent
requests take turns on its one connection) and two that read.

Reads run first on the event loop's own thread: a look-up takes tens of microseconds, and
handing it to aiosqlite's thread and back costs more than that, and more again when the loop is
busy and the two threads wait on each other for the GIL (measured: one client's look-up 0.6 ->
0.45 ms). A read still running after QUICK_READ seconds is interrupted there (SQLite's progress
handler) and run again in aiosqlite's thread, so that no read holds the loop, and every other
request, for longer."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from glaas.store.base import USAGE_COLUMNS, Prepared, Store, Written, usage_row
from glaas.store.migrate import apply_sqlite
from roar.errors import StoreError
from roar.registry import Counts, Session, Visibility

_PLACEHOLDER = re.compile(r"\$(\d+)")


def _sql(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA busy_timeout=30000")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: random hash keys touch many pages
    await conn.execute("PRAGMA mmap_size=1073741824")
    await conn.execute("PRAGMA temp_store=MEMORY")
    # checkpoint less often: each checkpoint fsyncs pages scattered over the hash indexes, and
    # a page dirtied again before the next one is written back once (measured: commit time -30%
    # on a 40,000-job load at 16384 pages; at 100000, 40,000 jobs of the bench load through
    # write_batch wrote 2,096 MB instead of 2,594 and took 10.8 s of CPU instead of 11.9). The
    # WAL grows to ~400 MB (4 KiB pages) before a checkpoint.
    await conn.execute("PRAGMA wal_autocheckpoint=100000")
    return conn


class _Tx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._conn.execute(_sql(sql), args) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def execute(self, sql: str, *args: Any) -> int:
        cur = await self._conn.execute(_sql(sql), args)
        return cur.rowcount


QUICK_READ = 0.002  # seconds


class _QuickReader:
    """A read-only connection used on the event loop's thread, for reads that finish at once."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA query_only=ON")
        self._conn.execute("PRAGMA mmap_size=1073741824")
        self._conn.execute(f"PRAGMA cache_size={-64 * 1024}")  # KiB
        self._conn.set_progress_handler(self._check, 1000)  # every 1000 VM steps: ~10 us
        self._deadline = 0.0
        self.stopped = False

    def _check(self) -> int:
        if time.perf_counter() > self._deadline:
            self.stopped = True
            return 1
        return 0

    def fetch(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """The rows, or None if the read took too long (run it elsewhere)."""
        self.stopped = False
        self._deadline = time.perf_counter() + QUICK_READ
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            if self.stopped:
                return None
            raise

    def close(self) -> None:
        self._conn.close()


class SQLiteStore(Store):
    backend = "sqlite"

    def __init__(
        self, url: str, path: Path, writer: aiosqlite.Connection, reader: Any, quick: _QuickReader
    ) -> None:
        self.url = url
        self.path = path
        self._writer = writer
        self._reader = reader
        self._quick = quick
        self._writing = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, path: Path) -> SQLiteStore:
        opened: list[aiosqlite.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            opened.append(await _connect(path))
            await apply_sqlite(opened[0])
            opened.append(await _connect(path))
            await opened[1].execute("PRAGMA query_only=ON")
            quick = _QuickReader(path)
        except BaseException as e:
            for conn in opened:  # its thread would keep the process alive
                await conn.close()
            if isinstance(e, (OSError, sqlite3.Error)):
                raise StoreError(f"cannot open the registry database {path}: {e}") from e
            raise
        return cls(url, path, opened[0], opened[1], quick)

    async def close(self) -> None:
        self._quick.close()
        await self._reader.close()
        await self._writer.close()

    def _any(self, n: int) -> str:
        return f"IN (SELECT value FROM json_each(${n}))"

    def _array(self, values: list[str]) -> Any:
        return msgspec.json.encode(values).decode()

    def _values(self, n: int) -> str:
        return f"json_each(${n}) h"

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        try:
            rows = self._quick.fetch(_sql(sql), args)
            if rows is not None:
                return rows
            async with self._reader.execute(_sql(sql), args) as cur:
                return [tuple(r) for r in await cur.fetchall()]
        except sqlite3.Error as e:
            raise StoreError(f"the registry database failed: {e}") from e

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._writing:
            return await self._execute(sql, args)

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                cur = await self._writer.execute(_sql(sql), args)
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            return cur.rowcount
        except sqlite3.Error as e:
            raise StoreError(f"the registry database failed: {e}") from e

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        async with self._writing:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"the registry database failed: {e}") from e
            try:
                yield _Tx(self._writer)
                await self._writer.execute("COMMIT")
            except BaseException as e:
                await self._writer.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"the registry database failed: {e}") from e
                raise

    async def remember_signature(self, digest: str, expires: float, now: float) -> bool:
        async with self._writing:
            return await self._remember(digest, expires, now)

    async def _remember(self, digest: str, expires: float, now: float) -> bool:
        try:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                cur = await self._writer.execute(
                    "INSERT INTO signatures (digest, expires) VALUES (?, ?) "
                    "ON CONFLICT (digest) DO NOTHING",
                    (digest, expires),
                )
                fresh = cur.rowcount == 1
                await self._writer.execute("DELETE FROM signatures WHERE expires < ?", (now,))
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            return fresh
        except sqlite3.Error as e:
            raise StoreError(f"the registry database failed: {e}") from e

    async def write_batch(
        self,
        owner: int,
        visibility: Visibility,
        team: int | None,
        jobs: list[Prepared],
        sessions: list[Session],
        artifacts: dict[str, int],
    ) -> Written:
        async with self._writing:
            return await self._write_batch(owner, visibility, team, jobs, sessions, artifacts)

    async def _write_batch(
        self,
        owner: int,
        visibility: Visibility,
        team: int | None,
        jobs: list[Prepared],
        sessions: list[Session],
        artifacts: dict[str, int],
    ) -> Written:
        w = self._writer
        now = time.time()
        try:
            await w.execute("BEGIN IMMEDIATE")
            try:
                before = w.total_changes
                await w.executemany(
                    "INSERT INTO sessions (hash, host, started, project) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [(s.hash, s.host, s.started, s.project) for s in sessions],
                )
                new_sessions = w.total_changes - before
                # the batch's hashes already stored, with their size
                async with w.execute(
                    _sql(self._sizes(1)), (self._array(sorted(artifacts)),)
                ) as cur:
                    stored = {r[0]: r[1] for r in await cur.fetchall()}
                sizes = artifacts | stored  # a hash keeps the size it was first stored with
                ids = [p.id for p in jobs]
                async with w.execute(
                    "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
                    (self._array(ids),),
                ) as cur:
                    known = {r[0] for r in await cur.fetchall()}
                fresh = [p for p in jobs if p.id not in known]
                await w.executemany(
                    "INSERT INTO jobs (id, owner_id, visibility, team_id, session, registered, "
                    "command, started, ended, status, kind, exit_code, step, record) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            p.id,
                            owner,
                            visibility,
                            team,
                            p.session,
                            now,
                            p.job.command,
                            p.job.started,
                            p.job.ended,
                            p.job.status,
                            p.job.kind,
                            p.job.exit_code,
                            p.job.step,
                            p.record,
                        )
                        for p in fresh
                    ],
                )
                async with w.execute(
                    "SELECT id, seq FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
                    (self._array([p.id for p in fresh]),),
                ) as cur:
                    seq = {r[0]: r[1] for r in await cur.fetchall()}
                await w.executemany(
                    "INSERT INTO io (job, role, hash, path, size) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [(seq[p.id], r, h, path, sizes[h]) for p in fresh for r, h, path in p.io],
                )
                usage = [usage_row(seq[p.id], p.job) for p in fresh]
                await w.executemany(
                    f"INSERT INTO job_usage ({USAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [u for u in usage if u is not None],
                )
                await w.execute("COMMIT")
            except BaseException:
                await w.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"the registry database failed: {e}") from e
        return Written(
            jobs=Counts(len(fresh), len(jobs) - len(fresh)),
            sessions=Counts(new_sessions, len(sessions) - new_sessions),
            artifacts=Counts(len(artifacts) - len(stored), len(stored)),
        )
