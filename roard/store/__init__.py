"""roard's store (SQLite, WAL): every SQL statement roard runs is in this package.

`Store` holds the connections: one writer, through which every write goes (`write()`: one
BEGIN IMMEDIATE transaction at a time), and a reader beside it, which sees the last commit
and never waits for the writer. Every sqlite3 error becomes roar.errors.StoreError here, so
nothing above the store knows it is SQLite.

The modules beside this one own the SQL of one feature each: `schema` (migrations), `jobs`
(projects, blobs, a job's row and files), `queries` (show, log, status, targets), `records`
(a job or artifact whole, as roar.model), `sessions`, `lineage`, `bookkeeping` (env vars,
labels, collections), `hashcache`, and `staging` (a large run's facts in temporary tables on
the writer's connection: roard's alone). Apart from `staging` and the schema, the SQL is plain
enough for a second backend to follow: no `IS ?`, no temporary tables.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from roar.errors import StoreError
from roard.store.schema import MIGRATIONS, SCHEMA_VERSION, statements

__all__ = ["Store", "StoreError", "Tx"]

# Read connections beside the writer. One: with two, taken in turn, the heavier queries (show,
# status, dag) took ~1.5x as long at the median on this 2-core machine (the rest no faster).
READERS = 1


def _failed(exc: sqlite3.Error) -> StoreError:
    err = StoreError(f"the store failed: {exc}")
    err.__cause__ = exc
    return err


class Store:
    def __init__(
        self, path: Path, writer: aiosqlite.Connection, readers: list[aiosqlite.Connection]
    ) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        self._next_reader = itertools.cycle(readers)
        self._write_lock = anyio.Lock()
        self.known_blobs: set[str] = set()  # blob hashes known to be stored (roard.store.jobs)

    @classmethod
    async def open(cls, path: Path, readers: int = READERS) -> Store:
        """Open (creating or migrating) the store at `path`; StoreError if it cannot be used."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private_files(path)
        writer = await _connect(path)
        opened = [writer]
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=NORMAL")
            await writer.execute("PRAGMA foreign_keys=ON")
            await writer.execute("PRAGMA busy_timeout=5000")
            store = cls(path, writer, [])
            await store._migrate()
            for _ in range(readers):
                reader = await _connect(path)
                opened.append(reader)
                await reader.execute("PRAGMA query_only=ON")
                await reader.execute("PRAGMA busy_timeout=5000")
                store._readers.append(reader)
            store._next_reader = itertools.cycle(store._readers or [writer])
        except BaseException as exc:
            for conn in opened:
                with contextlib.suppress(Exception):
                    await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot use the store {path}: {exc}") from exc
            raise
        return store

    async def close(self) -> None:
        for conn in [*self._readers, self._writer]:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()

    async def _migrate(self) -> None:
        version = await self._writer_scalar("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this roar "
                f"understands ({SCHEMA_VERSION}); upgrade roar"
            )
        for number in range(version, SCHEMA_VERSION):
            async with self.write() as tx:
                for statement in statements(MIGRATIONS[number]):
                    await tx.execute(statement)
                await tx.execute(f"PRAGMA user_version = {number + 1}")

    async def _writer_scalar(self, sql: str) -> Any:
        rows = list(await self._writer.execute_fetchall(sql))
        return rows[0][0] if rows else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One write transaction (BEGIN IMMEDIATE); every write in roard goes through here."""
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _failed(exc) from exc
            try:
                yield Tx(self._writer)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")  # may be gone already (disk full)
                raise
            try:
                await self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
                raise _failed(exc) from exc

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """A query's rows, read on a reader: the last committed state."""
        try:
            return list(await next(self._next_reader).execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise _failed(exc) from exc

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self.rows(sql, params)
        return rows[0][0] if rows else None


class Tx:
    """The writer's connection inside a write transaction."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        try:
            cur = await self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _failed(exc) from exc
        return cur.rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        try:
            await self._db.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.Error as exc:
            raise _failed(exc) from exc

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows of a query (or of a statement's RETURNING), as this transaction sees them."""
        try:
            return list(await self._db.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise _failed(exc) from exc

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self.rows(sql, params)
        return rows[0][0] if rows else None


def _private_files(path: Path) -> None:
    """The store's file is 0600 before SQLite opens it: SQLite makes the WAL and shared-memory
    files (`-wal`, `-shm`) with the database file's mode, and those hold argv and paths too.
    A store an older roar left readable is tightened, with its WAL and shared memory."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mode & 0o077:
                    p.chmod(0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from exc


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        return await aiosqlite.connect(path, isolation_level=None)
    except (sqlite3.Error, OSError) as exc:  # same answer for the user
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
