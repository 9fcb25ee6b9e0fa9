"""The team backend: PostgreSQL through an asyncpg pool. A batch goes in as a few
`INSERT ... SELECT` statements from `unnest(arrays)`, in sorted key order so that concurrent
batches from several workers lock rows in the same order and never deadlock, and its io rows,
the bulk of it, by COPY (they belong to jobs this transaction has just inserted, so none can
be there already: glaas.ingest leaves out a path a job lists twice)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from glaas.store.base import USAGE_COLUMNS, Prepared, Store, Written, usage_row
from glaas.store.migrate import apply_postgres
from roar.errors import StoreError
from roar.registry import Counts, Session, Visibility

_IO_COLUMNS = ("job", "role", "hash", "path", "size")
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# Statistics go stale when rows arrive faster than autovacuum looks (a burst of registrations),
# and then the planner scans all jobs for one look-up (measured: 1.7 s instead of 0.2 ms after
# 10^5 jobs). Each process analyzes the lineage tables at start and after this many rows, or
# after half as many again as it wrote before, whichever is more: the statistics stay within a
# factor of 1.5 of the truth, and a long burst analyzes a logarithmic number of times (measured:
# 8% of the time of a 30,000-job load went to ANALYZE at every 100,000 rows).
ANALYZE_EVERY = 100_000
_ANALYZE = "ANALYZE io, jobs, sessions"


class _Tx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._conn.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


class PostgresStore(Store):
    backend = "postgres"

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self._pool = pool
        self._unanalyzed = 0  # io rows this process wrote since it last analyzed
        self._analyzed = 0  # and before

    @classmethod
    async def open(cls, url: str, max_size: int = 10) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, reset=_as_is)
        except _ERRORS as e:
            raise StoreError(f"cannot open the registry database: {_reason(e)}") from e
        try:
            async with pool.acquire() as conn:
                await apply_postgres(conn)
                await conn.execute(_ANALYZE)
        except BaseException as e:
            await pool.close()
            if isinstance(e, _ERRORS):
                raise StoreError(f"cannot open the registry database: {_reason(e)}") from e
            raise
        return cls(url, pool)

    async def close(self) -> None:
        await self._pool.close()

    def _any(self, n: int) -> str:
        return f"= ANY(${n}::text[])"

    def _array(self, values: list[str]) -> Any:
        return values

    def _values(self, n: int) -> str:
        return f"unnest(${n}::text[]) AS h(value)"

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        try:
            rows = await self._pool.fetch(sql, *args)
        except _ERRORS as e:
            raise StoreError(f"the registry database failed: {_reason(e)}") from e
        return [tuple(r) for r in rows]

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            status = await self._pool.execute(sql, *args)
        except _ERRORS as e:
            raise StoreError(f"the registry database failed: {_reason(e)}") from e
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Tx(conn)
        except _ERRORS as e:
            raise StoreError(f"the registry database failed: {_reason(e)}") from e

    async def remember_signature(self, digest: str, expires: float, now: float) -> bool:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    "INSERT INTO signatures (digest, expires) VALUES ($1, $2) "
                    "ON CONFLICT (digest) DO NOTHING",
                    digest,
                    expires,
                )
                await conn.execute("DELETE FROM signatures WHERE expires < $1", now)
        except _ERRORS as e:
            raise StoreError(f"the registry database failed: {_reason(e)}") from e
        return bool(status.endswith(" 1"))

    async def write_batch(
        self,
        owner: int,
        visibility: Visibility,
        team: int | None,
        jobs: list[Prepared],
        sessions: list[Session],
        artifacts: dict[str, int],
    ) -> Written:
        now = time.time()
        sessions = sorted(sessions, key=lambda s: s.hash)
        hashes = sorted(artifacts)
        jobs = sorted(jobs, key=lambda p: p.id)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                new_sessions = await conn.fetch(
                    "INSERT INTO sessions (hash, host, started, project) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) "
                    "ON CONFLICT DO NOTHING RETURNING hash",
                    [s.hash for s in sessions],
                    [s.host for s in sessions],
                    [s.started for s in sessions],
                    [s.project for s in sessions],
                )
                j = [p.job for p in jobs]
                rows = await conn.fetch(
                    "INSERT INTO jobs (id, owner_id, visibility, team_id, session, registered, "
                    "command, started, ended, status, kind, exit_code, step, record) "
                    "SELECT u.id, $1, $2, $3, u.session, $4, u.command, u.started, u.ended, "
                    "u.status, u.kind, u.exit_code, u.step, u.record FROM unnest("
                    "$5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], "
                    "$10::text[], $11::text[], $12::int4[], $13::int4[], $14::text[]) AS "
                    "u(id, session, command, started, ended, status, kind, exit_code, step, "
                    "record) ON CONFLICT DO NOTHING RETURNING id, seq",
                    owner,
                    visibility,
                    team,
                    now,
                    [p.id for p in jobs],
                    [p.session for p in jobs],
                    [x.command for x in j],
                    [x.started for x in j],
                    [x.ended for x in j],
                    [x.status for x in j],
                    [x.kind for x in j],
                    [x.exit_code for x in j],
                    [x.step for x in j],
                    [p.record for p in jobs],
                )
                fresh = {r[0]: r[1] for r in rows}
                # The batch's hashes already stored, with their size: a hash keeps the size it was
                # first stored with. After the jobs: a batch whose jobs another is writing waited
                # there for it to commit, and this statement's snapshot sees its io rows (the same
                # batch twice at once counts its artifacts new once). Two batches of different
                # jobs committed at the same time do not see each other's: see glaas.store.base.
                known = await conn.fetch(self._sizes(1), hashes)
                stored = {r[0]: r[1] for r in known}
                sizes = artifacts | stored
                io = [
                    (fresh[p.id], r, h, path, sizes[h])
                    for p in jobs
                    if p.id in fresh
                    for r, h, path in p.io
                ]
                # COPY, not INSERT ... SELECT from a JSON array: 246 -> ~130 us of the
                # database's CPU a job (12 io rows; a 20,000-job load in one process)
                await conn.copy_records_to_table("io", records=io, columns=_IO_COLUMNS)
                found = [usage_row(fresh[p.id], p.job) for p in jobs if p.id in fresh]
                usage = [u for u in found if u is not None]
                await conn.execute(
                    f"INSERT INTO job_usage ({USAGE_COLUMNS}) "
                    "SELECT * FROM unnest($1::int8[], $2::text[], $3::float8[], $4::float8[], "
                    "$5::int4[], $6::text[], $7::int8[], $8::float8[]) ON CONFLICT DO NOTHING",
                    *([u[i] for u in usage] for i in range(8)),
                )
            self._unanalyzed += len(io)
            if self._unanalyzed >= max(ANALYZE_EVERY, self._analyzed // 2):
                self._analyzed += self._unanalyzed
                self._unanalyzed = 0
                await self._pool.execute(_ANALYZE)
        except _ERRORS as e:
            raise StoreError(f"the registry database failed: {_reason(e)}") from e
        return Written(
            jobs=Counts(len(fresh), len(jobs) - len(fresh)),
            sessions=Counts(len(new_sessions), len(sessions) - len(new_sessions)),
            artifacts=Counts(len(hashes) - len(stored), len(stored)),
        )


async def _as_is(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is, but for an open transaction (asyncpg rolls
    that back). asyncpg's default reset runs a statement at each release (UNLISTEN, RESET ALL,
    ...): a second round trip to the database for every look-up (measured: one client's look-up
    0.92 -> 0.71 ms; 100 clients 2,270 -> 2,890/s). The store changes no session state: no SET,
    LISTEN, cursors or session-level advisory locks."""


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
