"""One batch in: checked, scrubbed (roar.canonical.scrub: a client that forgot to redact stores
no secret), keyed by canonical id, and written in one transaction. Idempotent: a job, artifact or
session already stored is counted as known and left as it is (its first owner keeps it)."""

from __future__ import annotations

import msgspec

from glaas import requests
from glaas.store import Account, Prepared, Store
from roar.canonical import job_id, scrub
from roar.errors import Invalid
from roar.model import Job
from roar.registry import MAX_BATCH, Batch, Ingested, Visibility, request_ref

_HEX_DIGITS = "0123456789abcdef"
_ENCODER = msgspec.json.Encoder()


def _is_digest(value: str) -> bool:
    # 64 characters, none outside [0-9a-f] (what `strip` leaves): 12 a job, faster than a regex
    return len(value) == 64 and not value.strip(_HEX_DIGITS)


def _digest(value: str, what: str) -> str:
    if not _is_digest(value):
        raise Invalid(f"{what} is not a 64-digit lowercase hex hash: {value[:70]!r}")
    return value


async def _team(
    store: Store, account: Account, visibility: Visibility, team: str | None
) -> int | None:
    if visibility != "team":
        if team is not None:
            raise Invalid(f"a team is named, but the visibility is {visibility!r}")
        return None
    if team is not None:
        if team not in account.teams:
            raise Invalid(f"you are not in team {team!r}", f"your teams: {sorted(account.teams)}")
        return account.teams[team]
    if len(account.teams) == 1:
        return next(iter(account.teams.values()))
    if not account.teams:
        raise Invalid("you are in no team: team visibility shares with none", "ask the admin")
    raise Invalid("you are in several teams: name one", f"your teams: {sorted(account.teams)}")


MAX_USAGE = 1e12  # seconds or bytes: beyond any real job (31,700 years; a terabyte of RSS)


def _check_usage(job: Job, n: int) -> None:
    """A job's usage is priced and summed: negative or absurd numbers would poison the report."""
    u = job.usage
    if u is None:
        return
    numbers = (u.cpu_seconds, u.user_seconds, u.system_seconds, u.wall_seconds, u.gpu_seconds)
    if not all(0 <= x <= MAX_USAGE for x in (*numbers, u.max_rss_bytes / 1024, u.gpus)):
        raise Invalid(f"job {n} of the batch has a usage out of range (negative or too large)")


async def ingest(
    store: Store, account: Account, batch: Batch, notify: requests.Notify | None = None
) -> Ingested:
    """`notify`: told of each request a linked run took over its budget (the webhooks)."""
    if len(batch.jobs) > MAX_BATCH:
        raise Invalid(f"{len(batch.jobs)} jobs in one batch; at most {MAX_BATCH}")
    visibility = batch.visibility or await store.default_visibility()
    team = await _team(store, account, visibility, batch.team)
    sessions = {_digest(s.hash, "a session's hash"): s for s in batch.sessions}
    prepared: dict[str, Prepared] = {}
    artifacts: dict[str, int] = {}
    ids = []
    referred: set[str] = set()
    for n, reg in enumerate(batch.jobs):
        if reg.job.status == "running":
            raise Invalid(f"job {n} of the batch is still running: register finished jobs")
        if reg.job.request is not None and request_ref(reg.job.request) is None:
            raise Invalid(f"job {n} of the batch names no request id: {reg.job.request[:40]!r}")
        job = scrub(reg.job)
        jid = job_id(job)
        if reg.job.id and reg.job.id != jid:
            raise Invalid(
                f"job {n} of the batch says its id is {reg.job.id[:70]!r}, "
                f"but its record's is {jid}",
                "build the payload with roar.canonical.for_registry",
            )
        ids.append(jid)
        if jid in prepared:
            continue
        _check_usage(job, n)
        if reg.session is not None:
            referred.add(_digest(reg.session, "a job's session"))
        io = []
        seen: set[tuple[int, str]] = set()
        for role, items in ((0, job.inputs), (1, job.outputs)):
            for item in items:
                digest = item.hash
                if not _is_digest(digest):  # the message is made only for a bad one
                    _digest(digest, f"the hash of {item.path[:70]!r}")
                if item.size < 0:
                    raise Invalid(f"negative size for {item.path[:70]!r}")
                if (role, item.path) in seen:  # listed twice: the first is kept (the io
                    continue  # table's key), so the stores need not check for it
                seen.add((role, item.path))
                if artifacts.setdefault(digest, item.size) != item.size:
                    raise Invalid(f"artifact {digest} is sent with two sizes")
                io.append((role, digest, item.path))
        job = msgspec.structs.replace(job, id=jid)
        prepared[jid] = Prepared(jid, job, _ENCODER.encode(job).decode(), reg.session, io)
    missing = referred - set(sessions)
    if missing:
        missing -= await store.known_sessions(sorted(missing))
    if missing:
        raise Invalid(
            f"unknown session {sorted(missing)[0]}", "send its Session record in the batch"
        )
    written = await store.write_batch(
        account.id, visibility, team, list(prepared.values()), list(sessions.values()), artifacts
    )
    runs = sorted((p for p in prepared.values() if p.job.request), key=lambda p: p.job.started)
    if runs:
        await requests.link_runs(store, [(p.id, p.job.request or "") for p in runs], notify)
    known = len(ids) - len(prepared)  # the same job twice in one batch
    written.jobs.known += known
    return Ingested(ids, written.jobs, written.sessions, written.artifacts)
