"""The store's one interface, with the SQL both backends share.

Queries are written once, in PostgreSQL's `$n` placeholders (the SQLite backend rewrites them to
`?n`); what differs is said by two small methods (`_any`, `_array`: "x is one of this list") and
by the bulk insert of a batch, which each backend does its own fastest way.

Every read takes the reader's user id (-1: anonymous) and sees only jobs visible to them: public,
their own, or shared with a team they are in. Artifacts and sessions have no visibility of their
own: they are seen through the jobs that mention them, so what was not shared reads as absent.

An artifact has no table of its own either: it is its `io` rows, each of which carries its size
(migration 0008). The ingest writes a hash's rows with the size first stored for it (a later batch
that sends another size gets the stored one: `write_batch`), so a read takes the size of any of
them. The one exception is a race on PostgreSQL: two batches of different jobs, written at the
same time, that both bring a hash never seen before each count it new, and each store the size
they sent (were the two sizes different, a read would show either).
"""

from __future__ import annotations

import abc
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import msgspec

from glaas.compute import Used
from roar.errors import Invalid, NotFound
from roar.model import Job
from roar.registry import (
    ArtifactEntry,
    Counts,
    JobEntry,
    JobSummary,
    Kind,
    Price,
    Session,
    Visibility,
)

ANONYMOUS = -1
VISIBILITIES: tuple[Visibility, ...] = ("private", "team", "public")


def visible(v: int) -> str:
    """SQL: the job `j` can be read by the user whose id is parameter $v."""
    return (
        f"(j.visibility = 'public' OR j.owner_id = ${v} OR (j.visibility = 'team' AND "
        f"j.team_id IN (SELECT m.team_id FROM members m WHERE m.user_id = ${v})))"
    )


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    teams: dict[str, int] = field(default_factory=dict)  # name -> id
    key: str = ""  # the fingerprint of the key that signed the request
    agent: bool = False  # an agent account: files and claims requests, never approves


@dataclass
class Prepared:
    """One job of a batch, ready for the tables (see glaas.ingest)."""

    id: str
    job: Job
    record: str  # the canonical Job as JSON
    session: str | None
    io: list[tuple[int, str, str]]  # (role, hash, path); role 0 input, 1 output


@dataclass
class Written:
    jobs: Counts
    sessions: Counts
    artifacts: Counts


USAGE_COLUMNS = (
    "job, project, cpu_seconds, gpu_seconds, gpus, gpu_model, max_rss_bytes, wall_seconds"
)


def usage_row(seq: int, job: Job) -> tuple[Any, ...] | None:
    """The job_usage row of a job (None: its record has no usage), in USAGE_COLUMNS' order."""
    u = job.usage
    if u is None:
        return None
    return (
        seq,
        job.project,
        u.cpu_seconds,
        u.gpu_seconds,
        u.gpus,
        u.gpu_model,
        u.max_rss_bytes,
        u.wall_seconds,
    )


_SUMMARY = "j.id, j.command, j.started, j.status, j.kind, j.ended, j.exit_code, j.step, j.session"


def summary(row: tuple[Any, ...]) -> JobSummary:
    return JobSummary(*row[:9])


class Tx(Protocol):
    """A write transaction's statements (glaas.store.sqlite and .postgres each have one)."""

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, *args: Any) -> int: ...


class Store(abc.ABC):
    backend: str
    url: str

    # ------------------------------------------------------------ what a backend provides

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one write statement in its own transaction; rows affected."""

    @abc.abstractmethod
    def _any(self, n: int) -> str:
        """SQL: "is one of the list in parameter $n" (after a column name)."""

    @abc.abstractmethod
    def _array(self, values: list[str]) -> Any: ...

    @abc.abstractmethod
    def _values(self, n: int) -> str:
        """SQL: the list in parameter $n as a table `h` of one column `value` (after FROM)."""

    @abc.abstractmethod
    async def write_batch(
        self,
        owner: int,
        visibility: Visibility,
        team: int | None,
        jobs: list[Prepared],
        sessions: list[Session],
        artifacts: dict[str, int],
    ) -> Written: ...

    @abc.abstractmethod
    async def remember_signature(self, digest: str, expires: float, now: float) -> bool:
        """Record a signature as used; False if it already was (a replay)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction (`async with store.transaction() as tx`): committed when the
        block ends, rolled back if it raises. SQL as in `fetch` (`$n` placeholders)."""

    async def fetchone(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    # ------------------------------------------------------------ accounts (glaas admin)

    async def add_user(self, name: str, agent: bool = False) -> None:
        if await self.fetchone("SELECT 1 FROM users WHERE name = $1", name):
            raise Invalid(f"user {name!r} exists")
        await self.execute(
            "INSERT INTO users (name, created, agent) VALUES ($1, $2, $3)",
            name,
            time.time(),
            int(agent),
        )

    async def user_id(self, name: str) -> int:
        row = await self.fetchone("SELECT id FROM users WHERE name = $1 AND disabled = 0", name)
        if row is None:
            raise NotFound(f"no user {name!r}", "see `glaas admin user list`")
        return int(row[0])

    async def add_key(self, user: str, fingerprint: str, public_key: str) -> None:
        uid = await self.user_id(user)
        owner = await self.fetchone(
            "SELECT u.name FROM keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = $1",
            fingerprint,
        )
        if owner is not None:
            raise Invalid(f"key {fingerprint} already belongs to {owner[0]!r}")
        await self.execute(
            "INSERT INTO keys (fingerprint, user_id, public_key, created) VALUES ($1, $2, $3, $4)",
            fingerprint,
            uid,
            public_key,
            time.time(),
        )

    async def remove_key(self, user: str, fingerprint: str) -> None:
        uid = await self.user_id(user)
        n = await self.execute(
            "DELETE FROM keys WHERE fingerprint = $1 AND user_id = $2", fingerprint, uid
        )
        if not n:
            raise NotFound(f"user {user!r} has no key {fingerprint}")

    async def disable_user(self, name: str) -> None:
        """Keys go; records stay (they are others' lineage too) under the same owner."""
        uid = await self.user_id(name)
        await self.execute("DELETE FROM keys WHERE user_id = $1", uid)
        await self.execute("DELETE FROM members WHERE user_id = $1", uid)
        await self.execute("UPDATE users SET disabled = 1 WHERE id = $1", uid)

    async def users(self) -> list[tuple[str, list[str], list[str]]]:
        """(name, key fingerprints, teams) of every active user."""
        rows = await self.fetch("SELECT id, name FROM users WHERE disabled = 0 ORDER BY name")
        keys = await self.fetch("SELECT user_id, fingerprint FROM keys ORDER BY fingerprint")
        teams = await self.fetch(
            "SELECT m.user_id, t.name FROM members m JOIN teams t ON t.id = m.team_id "
            "ORDER BY t.name"
        )
        return [
            (
                name,
                [fp for u, fp in keys if u == uid],
                [t for u, t in teams if u == uid],
            )
            for uid, name in rows
        ]

    async def agents(self) -> set[str]:
        """The names of the active agent accounts (`glaas admin user add --kind agent`)."""
        rows = await self.fetch("SELECT name FROM users WHERE agent = 1 AND disabled = 0")
        return {str(r[0]) for r in rows}

    async def add_team(self, name: str) -> None:
        if await self.fetchone("SELECT 1 FROM teams WHERE name = $1", name):
            raise Invalid(f"team {name!r} exists")
        await self.execute("INSERT INTO teams (name, created) VALUES ($1, $2)", name, time.time())

    async def team_id(self, name: str) -> int:
        row = await self.fetchone("SELECT id FROM teams WHERE name = $1", name)
        if row is None:
            raise NotFound(f"no team {name!r}", "see `glaas admin team list`")
        return int(row[0])

    async def add_member(self, team: str, user: str) -> None:
        tid, uid = await self.team_id(team), await self.user_id(user)
        if await self.fetchone(
            "SELECT 1 FROM members WHERE team_id = $1 AND user_id = $2", tid, uid
        ):
            raise Invalid(f"{user!r} is already in team {team!r}")
        await self.execute("INSERT INTO members (team_id, user_id) VALUES ($1, $2)", tid, uid)

    async def remove_member(self, team: str, user: str) -> None:
        tid, uid = await self.team_id(team), await self.user_id(user)
        n = await self.execute("DELETE FROM members WHERE team_id = $1 AND user_id = $2", tid, uid)
        if not n:
            raise NotFound(f"{user!r} is not in team {team!r}")

    async def teams(self) -> list[tuple[str, list[str]]]:
        rows = await self.fetch("SELECT id, name FROM teams ORDER BY name")
        members = await self.fetch(
            "SELECT m.team_id, u.name FROM members m JOIN users u ON u.id = m.user_id "
            "ORDER BY u.name"
        )
        return [(name, [u for t, u in members if t == tid]) for tid, name in rows]

    async def setting(self, name: str) -> str | None:
        row = await self.fetchone("SELECT value FROM settings WHERE name = $1", name)
        return None if row is None else str(row[0])

    async def set_setting(self, name: str, value: str) -> None:
        await self.execute(
            "INSERT INTO settings (name, value) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            name,
            value,
        )

    async def default_visibility(self) -> Visibility:
        value = await self.setting("default_visibility")
        return value if value in VISIBILITIES else "private"

    async def account(self, fingerprint: str) -> Account | None:
        """The active user a key belongs to, with their teams."""
        row = await self.fetchone(
            "SELECT u.id, u.name, u.agent FROM keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.fingerprint = $1 AND u.disabled = 0",
            fingerprint,
        )
        if row is None:
            return None
        teams = await self.fetch(
            "SELECT t.name, t.id FROM members m JOIN teams t ON t.id = m.team_id "
            "WHERE m.user_id = $1",
            row[0],
        )
        teams_ = {str(n): int(i) for n, i in teams}
        return Account(int(row[0]), str(row[1]), teams_, agent=bool(row[2]))

    # ------------------------------------------------------------ reads, as one viewer

    async def find(self, kind: Kind, lo: str, hi: str, viewer: int, limit: int) -> list[str]:
        """Ids of `kind` in [lo, hi) (a prefix's range) that the viewer can read."""
        if kind == "job":
            sql = f"SELECT j.id FROM jobs j WHERE j.id >= $1 AND j.id < $2 AND {visible(3)}"
        elif kind == "artifact":
            sql = (
                "SELECT DISTINCT io.hash FROM io JOIN jobs j ON j.seq = io.job "
                f"WHERE io.hash >= $1 AND io.hash < $2 AND {visible(3)}"
            )
        else:
            sql = (
                "SELECT s.hash FROM sessions s WHERE s.hash >= $1 AND s.hash < $2 AND EXISTS "
                f"(SELECT 1 FROM jobs j WHERE j.session = s.hash AND {visible(3)})"
            )
        rows = await self.fetch(f"{sql} ORDER BY 1 LIMIT {int(limit)}", lo, hi, viewer)
        return [r[0] for r in rows]

    async def job(self, job_id: str, viewer: int) -> JobEntry | None:
        row = await self.fetchone(
            "SELECT j.record, u.name, j.visibility, j.registered, t.name, j.session "
            "FROM jobs j JOIN users u ON u.id = j.owner_id LEFT JOIN teams t ON t.id = j.team_id "
            f"WHERE j.id = $1 AND {visible(2)}",
            job_id,
            viewer,
        )
        if row is None:
            return None
        job = msgspec.json.decode(row[0], type=Job)
        return JobEntry(job_id, job, row[1], row[2], row[3], row[4], row[5])

    async def jobs(self, ids: list[str], viewer: int) -> list[JobEntry]:
        """The records of these jobs that the viewer can read (the others are left out), in
        start order."""
        rows = await self.fetch(
            "SELECT j.id, j.record, u.name, j.visibility, j.registered, t.name, j.session "
            "FROM jobs j JOIN users u ON u.id = j.owner_id LEFT JOIN teams t ON t.id = j.team_id "
            f"WHERE j.id {self._any(1)} AND {visible(2)} ORDER BY j.started, j.id",
            self._array(ids),
            viewer,
        )
        return [
            JobEntry(r[0], msgspec.json.decode(r[1], type=Job), r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]

    async def artifact(self, digest: str, viewer: int) -> ArtifactEntry | None:
        rows = await self.fetch(
            "SELECT io.size, j.id, io.role, io.path FROM io JOIN jobs j ON j.seq = io.job "
            f"WHERE io.hash = $1 AND {visible(2)} ORDER BY j.started, j.id",
            digest,
            viewer,
        )
        if not rows:
            return None
        paths = list(dict.fromkeys(r[3] for r in rows))
        made = list(dict.fromkeys(r[1] for r in rows if r[2] == 1))
        read = list(dict.fromkeys(r[1] for r in rows if r[2] == 0))
        # the earliest writer that did not read it (a job that did copied it: glaas.graph)
        producer = next((j for j in made if j not in read), None)
        return ArtifactEntry(digest, int(rows[0][0]), paths, made, read, producer)

    async def session(self, digest: str, viewer: int) -> tuple[Session, list[JobSummary]] | None:
        jobs = await self.session_jobs(digest, viewer)
        if not jobs:
            return None
        row = await self.fetchone(
            "SELECT hash, host, started, project FROM sessions WHERE hash = $1", digest
        )
        assert row is not None  # a job refers to it
        return Session(*row), jobs

    async def session_jobs(self, digest: str, viewer: int) -> list[JobSummary]:
        rows = await self.fetch(
            f"SELECT {_SUMMARY} FROM jobs j WHERE j.session = $1 AND {visible(2)} "
            "ORDER BY j.started, j.id",
            digest,
            viewer,
        )
        return [summary(r) for r in rows]

    async def summaries(self, ids: list[str]) -> list[JobSummary]:
        rows = await self.fetch(
            f"SELECT {_SUMMARY} FROM jobs j WHERE j.id {self._any(1)} ORDER BY j.started, j.id",
            self._array(ids),
        )
        return [summary(r) for r in rows]

    async def io_of_artifacts(
        self, hashes: list[str], role: int, viewer: int, limit: int
    ) -> list[tuple[str, str, str]]:
        """(job, hash, path): the visible jobs that read (role 0) or wrote (1) these artifacts."""
        rows = await self.fetch(
            "SELECT j.id, io.hash, io.path FROM io JOIN jobs j ON j.seq = io.job "
            f"WHERE io.hash {self._any(1)} AND io.role = $2 AND {visible(3)} LIMIT {int(limit)}",
            self._array(hashes),
            role,
            viewer,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def io_timed(
        self,
        hashes: list[str],
        role: int,
        viewer: int,
        limit: int,
        until: float | None = None,
        copies: bool = True,
    ) -> list[tuple[str, float, str, str, bool]]:
        """(job, started, hash, path, copy): the visible jobs that read (role 0) or wrote (1)
        these artifacts (`until`: only jobs started then or before), with each job's start;
        `copy` (with `copies`): the job also did the other (a job that read and wrote the same
        content copied it). What glaas.graph links by."""
        copy = (
            "EXISTS (SELECT 1 FROM io c WHERE c.job = io.job AND c.hash = io.hash "
            f"AND c.role = {1 - int(role)})"
            if copies
            else "0"
        )
        rows = await self.fetch(
            f"SELECT j.id, j.started, io.hash, io.path, {copy} FROM io "
            f"JOIN jobs j ON j.seq = io.job WHERE io.hash {self._any(1)} AND io.role = $2 "
            f"AND {visible(3)} AND j.started <= $4 "
            f"ORDER BY j.started, j.id, io.path LIMIT {int(limit)}",
            self._array(hashes),
            role,
            viewer,
            float("inf") if until is None else until,
        )
        return [(r[0], float(r[1]), r[2], r[3], bool(r[4])) for r in rows]

    async def io_of_jobs(self, ids: list[str], role: int | None = None) -> list[tuple[Any, ...]]:
        """(job, role, hash, path, size) of these jobs' inputs and/or outputs."""
        where = "" if role is None else f" AND io.role = {int(role)}"
        return await self.fetch(
            "SELECT j.id, io.role, io.hash, io.path, io.size FROM jobs j "
            "JOIN io ON io.job = j.seq "
            f"WHERE j.id {self._any(1)}{where} ORDER BY j.id, io.role, io.path",
            self._array(ids),
        )

    async def visible_jobs(self, ids: list[str], viewer: int) -> set[str]:
        rows = await self.fetch(
            f"SELECT j.id FROM jobs j WHERE j.id {self._any(1)} AND {visible(2)}",
            self._array(ids),
            viewer,
        )
        return {r[0] for r in rows}

    def _sizes(self, n: int) -> str:
        """SQL: (hash, size) of each hash in the list in parameter $n that is stored, from one
        io row of each, not all (an artifact read by many jobs has many). The others are left
        out in the database: most of a batch's hashes are new, and a row each cost the server
        more to read than the look-up (a fifth of asyncpg's reading at ingest)."""
        return (
            "SELECT hash, size FROM (SELECT h.value AS hash, "
            "(SELECT io.size FROM io WHERE io.hash = h.value LIMIT 1) AS size "
            f"FROM {self._values(n)}) AS known WHERE size IS NOT NULL"
        )

    async def sizes(self, hashes: list[str]) -> dict[str, int]:
        """The size of each of these artifacts that the registry has (the others are left out)."""
        rows = await self.fetch(self._sizes(1), self._array(hashes))
        return {r[0]: int(r[1]) for r in rows}

    async def known_sessions(self, hashes: list[str]) -> set[str]:
        rows = await self.fetch(
            f"SELECT hash FROM sessions WHERE hash {self._any(1)}", self._array(hashes)
        )
        return {r[0] for r in rows}

    async def recent_jobs(self, viewer: int, limit: int) -> list[JobSummary]:
        """The newest registered jobs the viewer can read (the home page)."""
        rows = await self.fetch(
            f"SELECT {_SUMMARY} FROM jobs j WHERE {visible(1)} ORDER BY j.seq DESC "
            f"LIMIT {int(limit)}",
            viewer,
        )
        return [summary(r) for r in rows]

    # ------------------------------------------------------------ compute accounting

    async def set_price(self, resource: str, per_hour: float) -> None:
        await self.execute(
            "INSERT INTO prices (resource, per_hour, updated) VALUES ($1, $2, $3) "
            "ON CONFLICT (resource) DO UPDATE SET per_hour = excluded.per_hour, "
            "updated = excluded.updated",
            resource,
            per_hour,
            time.time(),
        )

    async def remove_price(self, resource: str) -> None:
        if not await self.execute("DELETE FROM prices WHERE resource = $1", resource):
            raise NotFound(f"no price for {resource!r}", "see `glaas admin price list`")

    async def prices(self) -> list[Price]:
        rows = await self.fetch("SELECT resource, per_hour FROM prices ORDER BY resource")
        return [Price(str(r[0]), float(r[1])) for r in rows]

    async def compute_jobs(self, since: float, until: float, viewer: int) -> list[Used]:
        """The jobs with a usage that started in [since, until) and the viewer can read, each
        with whether a later job (also readable) read one of its outputs."""
        reader = visible(3).replace("j.", "r.")
        rows = await self.fetch(
            "SELECT j.started, u.name, u.agent, g.project, g.cpu_seconds, g.gpu_seconds, "
            "g.gpu_model, CASE "
            "WHEN NOT EXISTS (SELECT 1 FROM io o WHERE o.job = j.seq AND o.role = 1) THEN 0 "
            "WHEN EXISTS (SELECT 1 FROM io o JOIN io i ON i.hash = o.hash AND i.role = 0 "
            "JOIN jobs r ON r.seq = i.job WHERE o.job = j.seq AND o.role = 1 "
            f"AND r.started > j.started AND {reader}) THEN 1 ELSE 2 END, "
            "(SELECT MIN(rr.request_id) FROM request_runs rr WHERE rr.job_id = j.id) "
            "FROM jobs j JOIN job_usage g ON g.job = j.seq JOIN users u ON u.id = j.owner_id "
            f"WHERE j.started >= $1 AND j.started < $2 AND {visible(3)}",
            since,
            until,
            viewer,
        )
        return [
            Used(
                float(r[0]),
                str(r[1]),
                bool(r[2]),
                r[3],
                float(r[4]),
                float(r[5]),
                r[6],
                int(r[7]),
                None if r[8] is None else f"R-{int(r[8])}",
            )
            for r in rows
        ]

    # ------------------------------------------------------------ the web pages' login

    async def add_web_link(self, digest: str, fingerprint: str, expires: float) -> None:
        await self.execute(
            "INSERT INTO web_links (digest, fingerprint, expires) VALUES ($1, $2, $3)",
            digest,
            fingerprint,
            expires,
        )

    async def take_web_link(self, digest: str, now: float) -> str | None:
        """The key fingerprint of a fresh one-time link, which is used up (None: unknown,
        expired, or already used; of two concurrent takers, one wins)."""
        row = await self.fetchone(
            "SELECT fingerprint FROM web_links WHERE digest = $1 AND expires > $2", digest, now
        )
        if row is None:
            return None
        taken = await self.execute(
            "DELETE FROM web_links WHERE digest = $1 AND expires > $2", digest, now
        )
        await self.execute("DELETE FROM web_links WHERE expires <= $1", now)
        return str(row[0]) if taken == 1 else None

    async def add_web_session(self, digest: str, fingerprint: str, now: float, ttl: float) -> None:
        await self.execute("DELETE FROM web_sessions WHERE expires <= $1", now)
        await self.execute(
            "INSERT INTO web_sessions (digest, fingerprint, created, expires) "
            "VALUES ($1, $2, $3, $4)",
            digest,
            fingerprint,
            now,
            now + ttl,
        )

    async def web_session(self, digest: str, now: float) -> tuple[Account, float] | None:
        """The account a session cookie stands for, and when it expires (None: no such
        session, expired, or its key was removed)."""
        row = await self.fetchone(
            "SELECT fingerprint, expires FROM web_sessions WHERE digest = $1 AND expires > $2",
            digest,
            now,
        )
        if row is None:
            return None
        account = await self.account(str(row[0]))
        if account is None:
            return None
        return replace(account, key=str(row[0])), float(row[1])

    async def end_web_session(self, digest: str) -> None:
        await self.execute("DELETE FROM web_sessions WHERE digest = $1", digest)
