"""The per-user SQLite store: schema, migrations, and the one connection every write goes through.

Schema changes are append-only migrations; PRAGMA user_version records how many have run, so an
old database is brought forward on open and a newer one (from a later roar) is refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

MIGRATIONS: list[str] = [
    # 1: projects, jobs, artifacts, paths, what each job read and wrote, the hash cache, blobs.
    # job_io holds only integers so that a run with thousands of files dirties few pages.
    """
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        root BLOB NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,      -- blake3 of body: packages lists, hardware, environments
        body BLOB NOT NULL          -- msgpack
    );
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,    -- what users see: 12 hex digits
        project_id INTEGER REFERENCES projects(id),
        status TEXT NOT NULL,       -- running | complete | interrupted | recovered | partial
        command TEXT NOT NULL,      -- display form, redacted
        argv BLOB NOT NULL,         -- msgpack list[str], redacted
        cwd BLOB NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        exit_code INTEGER,
        signal INTEGER,
        n_inputs INTEGER NOT NULL DEFAULT 0,
        n_outputs INTEGER NOT NULL DEFAULT 0,
        git BLOB,                   -- msgpack GitState
        env_blob TEXT REFERENCES blobs(hash),
        hardware_blob TEXT REFERENCES blobs(hash),
        packages BLOB,              -- msgpack {interpreter: blob hash}
        processes BLOB,             -- msgpack list[ProcView]
        blind_spots BLOB,           -- msgpack list[str]
        filtered BLOB               -- msgpack FilteredSummary
    );
    CREATE INDEX jobs_by_start ON jobs(started);
    CREATE INDEX jobs_by_project ON jobs(project_id, started);
    CREATE INDEX jobs_by_status ON jobs(status);
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,  -- blake3 hex
        size INTEGER NOT NULL,
        first_seen REAL NOT NULL
    );
    CREATE TABLE paths (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE   -- absolute, resolved; bytes because paths need not be UTF-8
    );
    CREATE TABLE job_io (
        job INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
        role INTEGER NOT NULL CHECK (role IN (0, 1)),   -- 0: input, 1: output
        path INTEGER NOT NULL REFERENCES paths(id),
        artifact INTEGER NOT NULL REFERENCES artifacts(id),
        previous TEXT,              -- for an output that replaced a file: the old content's hash
        PRIMARY KEY (job, role, path)
    ) WITHOUT ROWID;
    CREATE INDEX job_io_by_artifact ON job_io(artifact, role);
    CREATE INDEX job_io_by_path ON job_io(path);
    CREATE TABLE hash_cache (
        dev INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (dev, ino)
    ) WITHOUT ROWID;
    """,
    # 2: sessions and steps (@1, @B1), labels, named collections, project env vars.
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        project_id INTEGER REFERENCES projects(id),   -- NULL: runs outside any project
        started REAL NOT NULL
    );
    CREATE INDEX sessions_by_project ON sessions(project_id, id);
    ALTER TABLE jobs ADD COLUMN session_id INTEGER REFERENCES sessions(id);
    ALTER TABLE jobs ADD COLUMN step INTEGER;             -- position in the session's pipeline
    ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';  -- run | build
    ALTER TABLE jobs ADD COLUMN trackers BLOB;            -- msgpack list[TrackerRun]
    CREATE INDEX jobs_by_session ON jobs(session_id, kind, step, started);
    CREATE TABLE labels (
        target TEXT NOT NULL,       -- 'job:<id>' or 'artifact:<hash>'
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (target, key)
    ) WITHOUT ROWID;
    CREATE TABLE collections (
        name TEXT NOT NULL,
        artifact INTEGER NOT NULL REFERENCES artifacts(id),
        path BLOB,
        PRIMARY KEY (name, artifact)
    ) WITHOUT ROWID;
    CREATE TABLE project_env (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        value TEXT NOT NULL,        -- injected into runs; shown redacted everywhere
        PRIMARY KEY (project_id, name)
    ) WITHOUT ROWID;
    """,
    # 3: network peers a job connected to (external sources), msgpack list[str]
    """
    ALTER TABLE jobs ADD COLUMN external BLOB;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The store cannot be opened or used (corrupt, too new, unwritable)."""


class Store:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._write_lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except Exception as exc:  # sqlite3.Error or OSError: same answer for the user
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        store = cls(db, path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            await store._migrate()
        except StoreError:
            await db.close()
            raise
        except Exception as exc:
            await db.close()
            raise StoreError(f"cannot use the store {path}: {exc}") from exc
        path.chmod(0o600)
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _migrate(self) -> None:
        version = await self.scalar("PRAGMA user_version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this roar "
                f"understands ({SCHEMA_VERSION}); upgrade roar"
            )
        for number in range(version, SCHEMA_VERSION):
            async with self.write() as db:
                await db.executescript_in_tx(MIGRATIONS[number])
                await db.execute(f"PRAGMA user_version = {number + 1}")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_Tx]:
        """One write transaction (BEGIN IMMEDIATE); all writes in the daemon go through here."""
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self.db)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            else:
                await self.db.execute("COMMIT")

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        async with self.db.execute(sql, tuple(params)) as cur:
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def recover_running(self) -> int:
        """Runs left `running` by a daemon that died become `interrupted` (one transaction)."""
        async with self.write() as db:
            cur = await db.execute(
                "UPDATE jobs SET status = 'interrupted' WHERE status = 'running'"
            )
            return cur.rowcount

    async def project_id(self, root: bytes) -> int:
        found = await self.scalar("SELECT id FROM projects WHERE root = ?", (root,))
        if found is not None:
            return int(found)
        async with self.write() as db:
            cur = await db.execute(
                "INSERT INTO projects (root, created) VALUES (?, ?) "
                "ON CONFLICT(root) DO UPDATE SET root = excluded.root RETURNING id",
                (root, time.time()),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])


class _Tx:
    """The connection inside a write transaction (only what writers need)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Cursor:
        return await self._db.execute(sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        await self._db.executemany(sql, [tuple(r) for r in rows])

    async def executescript_in_tx(self, script: str) -> None:
        # executescript() would COMMIT first; run the statements one by one inside our transaction.
        for statement in _split_sql(script):
            await self._db.execute(statement)


def _split_sql(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
