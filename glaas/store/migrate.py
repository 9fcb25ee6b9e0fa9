"""The migration runner: `glaas/migrations/<backend>/NNNN_name.sql`, applied in order, each in
its own transaction with the row that records it, so a crash leaves a migration applied or not.

A database migrated by a newer glaas (a version we do not have) is refused rather than used."""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from typing import TYPE_CHECKING

from roar.errors import StoreError

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied {})"
_LOCK = 7_202_611  # pg_advisory_xact_lock key: one worker migrates at a time


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration of a backend, in order."""
    folder = resources.files("glaas") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations of {backend} are not numbered 1..n: {versions}")
    return found


def _too_new(current: int, known: int) -> StoreError:
    return StoreError(
        f"the registry database is at schema version {current}; this glaas knows {known}",
        "upgrade glaas",
    )


def _statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise StoreError("a migration ends in an incomplete statement")
    return out


async def apply_sqlite(conn: aiosqlite.Connection) -> int:
    """Migrate inside one BEGIN IMMEDIATE: a second worker waits, then finds nothing to do."""
    from glaas.hook_names import hook_id

    todo = migrations("sqlite")
    # SQLite has no SHA-256: what a migration needs of Python is given to it (0007)
    await conn.create_function("glaas_hook_id", 1, hook_id, deterministic=True)
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_TABLE.format("REAL NOT NULL"))
        async with conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations") as c:
            row = await c.fetchone()
        current = int(row[0]) if row else 0
        if current > len(todo):
            raise _too_new(current, len(todo))
        for version, _, sql in todo[current:]:
            for statement in _statements(sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
                (version, time.time()),
            )
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    return len(todo)


async def apply_postgres(conn: asyncpg.Connection) -> int:
    todo = migrations("postgres")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await conn.execute(_TABLE.format("DOUBLE PRECISION NOT NULL"))
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        if current > len(todo):
            raise _too_new(current, len(todo))
        for version, _, sql in todo[current:]:
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                version,
                time.time(),
            )
    return len(todo)
