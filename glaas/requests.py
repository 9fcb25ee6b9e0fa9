"""Training requests: filed by a person or an agent, approved by a person before compute starts.

States: pending -> approved | rejected | withdrawn | expired; approved -> claimed -> completed |
failed | cancelled. Each change is one transaction: a compare-and-set of the request's row (from
the state it was read in, at the revision it was read at) and its event, appended; so of two
claimers one wins, and an approval of a revision that changed meanwhile is refused.

Rules, checked here and nowhere else: nobody approves (or rejects) their own request; only the
named reviewer does; agent accounts never do; an approval binds to the spec's hash (an edit makes
a new revision and puts an approved request back to pending); an approval lapses after
`approval_ttl` seconds unless claimed; the dataset and base model are artifacts the registry has.

Budgets: a request has spent the cost of every run linked to it, at the current prices (the
compute report's rule, glaas.compute.cost). When the registration of a run first takes that over
the spec's budget, the request is marked (once: a compare-and-set) with an `over_budget` event
by the registry, which the webhooks send as `request.over_budget`. A new revision (a new budget)
clears the mark: crossing its budget is told again.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from glaas import compute, lookup
from glaas.store import ANONYMOUS, Account, Store
from glaas.store.base import Tx
from roar.errors import Conflict, Forbidden, Invalid, NotFound, RoarFailure
from roar.redact import redact_text
from roar.registry import (
    LinkedRun,
    Outcome,
    RequestAction,
    RequestEntry,
    RequestEvent,
    RequestSpec,
    RequestState,
    request_ref,
)

DEFAULT_TTL = 14 * 86400  # seconds an approval stays valid unless claimed
MAX_TEXT = 10_000  # characters of a rationale or comment
MAX_LIST = 500  # requests in one list answer
_ENCODER = msgspec.json.Encoder(order="sorted")
EXPIRE_EVERY = 30.0  # seconds between sweeps for approvals that ran out (glaas.app)


@dataclass(frozen=True)
class Change:
    """A state change that happened, for the webhooks (glaas.webhooks)."""

    request: RequestEntry
    action: str
    actor: str | None


Notify = Callable[[Change], Awaitable[None]]


def display(number: int) -> str:
    return f"R-{number}"


def number(ref: str) -> int:
    n = request_ref(ref)
    if n is None:
        raise Invalid(f"not a request id: {ref[:40]!r}", "request ids look like R-12")
    return n


def spec_hash(spec: RequestSpec) -> str:
    return hashlib.sha256(_ENCODER.encode(spec)).hexdigest()


# C0 and C1 controls (tab and newline aside), DEL, and the bidi embeddings, overrides and
# isolates: a terminal escape in `roarctl request show`, or text shown reversed on the pages
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _plain(value: str, what: str, lines: bool = True) -> None:
    found = _CONTROL.search(value) or (None if lines else re.search("[\t\n]", value))
    if found is not None:
        raise Invalid(f"the {what} has a control character (U+{ord(found[0]):04X})")


def _text(value: str | None, what: str) -> str | None:
    """Free text as it is kept: at most MAX_TEXT characters, no control characters, secrets
    redacted (a token pasted into a comment is not stored, nor sent to a webhook)."""
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise Invalid(f"the {what} is {len(value)} characters; at most {MAX_TEXT}")
    _plain(value, what)
    return redact_text(value)


async def _artifact(store: Store, ref: str, what: str, viewer: int) -> str:
    try:
        return (await lookup.resolve(store, ("artifact",), ref, viewer)).id
    except NotFound:
        raise Invalid(
            f"the {what} {ref[:70]!r} is no artifact in this registry",
            "register it first (roarctl register FILE), then give its hash",
        ) from None
    except RoarFailure as e:
        raise Invalid(f"the {what}: {e.message}", e.hint) from None


async def _resolve(store: Store, account: Account, spec: RequestSpec) -> tuple[RequestSpec, int]:
    """The spec with full artifact hashes, and the reviewer's user id."""
    rationale = _text(spec.rationale, "rationale") or ""
    if not spec.compute.strip() or len(spec.compute) > 200:
        raise Invalid("compute must say what the run needs, e.g. 8xH100")
    _plain(spec.compute, "compute field", lines=False)
    if "\x00" in spec.reviewer or len(spec.reviewer) > 200:
        raise Invalid(f"not a user name: {spec.reviewer[:40]!r}")
    dataset = await _artifact(store, spec.dataset, "dataset", account.id)
    base_model = await _artifact(store, spec.base_model, "base model", account.id)
    row = await store.fetchone(
        "SELECT id, agent FROM users WHERE name = $1 AND disabled = 0", spec.reviewer
    )
    if row is None:
        raise Invalid(f"no user {spec.reviewer!r} to review it", "name a reviewer's user name")
    if int(row[0]) == account.id:
        raise Forbidden("nobody approves their own request: name another reviewer")
    if row[1]:
        raise Invalid(f"{spec.reviewer!r} is an agent account: agents never approve")
    resolved = msgspec.structs.replace(
        spec, dataset=dataset, base_model=base_model, rationale=rationale
    )
    return resolved, int(row[0])


async def _event(
    tx: Tx,
    rid: int,
    action: str,
    state: RequestState,
    account: Account | None,
    now: float,
    revision: int,
    digest: str,
    comment: str | None,
) -> None:
    await tx.execute(
        "INSERT INTO request_events (request_id, action, state, actor_id, agent, at, comment, "
        "revision, spec_hash, key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        rid,
        action,
        state,
        None if account is None else account.id,
        int(bool(account and account.agent)),
        now,
        comment,
        revision,
        digest,
        None if account is None else (account.key or None),
    )


async def file(store: Store, account: Account, spec: RequestSpec) -> Change:
    resolved, reviewer = await _resolve(store, account, spec)
    digest = spec_hash(resolved)
    now = time.time()
    async with store.transaction() as tx:
        rows = await tx.fetch(
            "INSERT INTO requests (requester_id, reviewer_id, state, revision, spec_hash, "
            "created, updated) VALUES ($1, $2, 'pending', 1, $3, $4, $4) RETURNING id",
            account.id,
            reviewer,
            digest,
            now,
        )
        rid = int(rows[0][0])
        await tx.execute(
            "INSERT INTO request_revisions (request_id, revision, spec, spec_hash, created) "
            "VALUES ($1, 1, $2, $3, $4)",
            rid,
            _ENCODER.encode(resolved).decode(),
            digest,
            now,
        )
        await _event(tx, rid, "filed", "pending", account, now, 1, digest, None)
    return Change(await _read(store, rid, account.id), "filed", account.name)


async def revise(
    store: Store, account: Account, ref: str, spec: RequestSpec, notify: Notify | None = None
) -> Change:
    """A new revision of the spec: the requester's; an approval is dismissed (back to pending)."""
    current = await get(store, number(ref), account.id, notify)
    rid = number(ref)
    if current.requester != account.name:
        raise Forbidden(f"{current.id} is {current.requester}'s: only they can edit it")
    if current.state not in ("pending", "approved"):
        raise Conflict(f"{current.id} is {current.state}: only a pending or approved one changes")
    resolved, reviewer = await _resolve(store, account, spec)
    digest = spec_hash(resolved)
    if digest == current.spec_hash:
        raise Invalid(f"{current.id} already has this spec (revision {current.revision})")
    now = time.time()
    revision = current.revision + 1
    async with store.transaction() as tx:
        changed = await tx.execute(
            "UPDATE requests SET state = 'pending', revision = $1, spec_hash = $2, "
            "reviewer_id = $3, updated = $4, expires = NULL, over_budget = NULL, "
            "over_budget_job = NULL WHERE id = $5 AND revision = $6 "
            "AND state IN ('pending', 'approved')",
            revision,
            digest,
            reviewer,
            now,
            rid,
            current.revision,
        )
        if not changed:
            raise Conflict(f"{current.id} changed meanwhile: read it again")
        await tx.execute(
            "INSERT INTO request_revisions (request_id, revision, spec, spec_hash, created) "
            "VALUES ($1, $2, $3, $4, $5)",
            rid,
            revision,
            _ENCODER.encode(resolved).decode(),
            digest,
            now,
        )
        note = "approval dismissed" if current.state == "approved" else None
        await _event(tx, rid, "revised", "pending", account, now, revision, digest, note)
    return Change(await _read(store, rid, account.id), "revised", account.name)


# what each action needs: the states it moves from, and the state it moves to
_MOVES: dict[str, tuple[tuple[RequestState, ...], RequestState | None]] = {
    "approved": (("pending",), "approved"),
    "rejected": (("pending",), "rejected"),
    "withdrawn": (("pending", "approved"), "withdrawn"),
    "claimed": (("approved",), "claimed"),
    "completed": (("claimed",), None),  # the outcome says which
    "commented": ((), None),  # any state: no change
}
ACTIONS = {
    "approve": "approved",
    "reject": "rejected",
    "withdraw": "withdrawn",
    "claim": "claimed",
    "complete": "completed",
    "comment": "commented",
}


def _allowed(action: str, account: Account, entry: RequestEntry, body: RequestAction) -> None:
    """Refuse what this account may not do to this request (403), with the rule's reason."""
    own = entry.requester == account.name
    if action in ("approved", "rejected"):
        verb = "approve" if action == "approved" else "reject"
        if own:
            raise Forbidden(f"nobody approves their own request: {entry.id} is yours")
        if account.agent:
            raise Forbidden(f"agent accounts never {verb} requests ({account.name} is an agent)")
        if entry.reviewer != account.name:
            raise Forbidden(f"{entry.id} is for {entry.reviewer} to review, not {account.name}")
    elif action == "withdrawn" and not own:
        raise Forbidden(f"only the requester ({entry.requester}) withdraws {entry.id}")
    elif action == "completed" and account.name not in (entry.claimed_by, entry.requester):
        raise Forbidden(f"{entry.id} is claimed by {entry.claimed_by}: only they complete it")
    if action == "approved" and body.spec_hash is None:
        raise Invalid("an approval names the spec it approves (spec_hash)")
    if body.spec_hash is not None and body.spec_hash != entry.spec_hash:
        raise Conflict(
            f"{entry.id} changed since you read it: it is at revision {entry.revision} "
            f"(spec {entry.spec_hash[:12]}), you saw {body.spec_hash[:12]}",
            "read it again (roarctl request show) and decide on what it asks now",
        )


async def act(
    store: Store,
    account: Account,
    ref: str,
    action: str,
    body: RequestAction,
    ttl: float,
    notify: Notify | None = None,
) -> Change:
    """`action` (approved, rejected, withdrawn, claimed, completed, commented) by `account`;
    `ttl`: how long an approval lasts; `notify`: told of approvals that expired meanwhile."""
    rid = number(ref)
    comment = _text(body.comment, "comment")
    if action not in _MOVES:
        raise Invalid(f"no action {action!r}")
    entry = await get(store, rid, account.id, notify)
    _allowed(action, account, entry, body)
    sources, target = _MOVES[action]
    if action == "completed":
        outcome: Outcome = body.outcome or "completed"
        target = outcome
        action = outcome  # the event (and webhook) says how it ended: completed, failed, ...
    elif body.outcome is not None:
        raise Invalid("an outcome is given only when completing")
    if sources and entry.state not in sources:
        raise Conflict(
            f"{entry.id} is {entry.state}"
            + (f" by {entry.claimed_by}" if entry.state == "claimed" else "")
            + f": it cannot be {action} (only when {' or '.join(sources)})"
        )
    now = time.time()
    async with store.transaction() as tx:
        if target is None:  # a comment
            state: RequestState = entry.state
        else:
            state = target
            args: list[Any] = [target, now, rid, entry.spec_hash]
            sets = "state = $1, updated = $2"
            if target == "approved":
                args.append(now + ttl)
                sets += f", expires = ${len(args)}"
            elif target == "claimed":
                args.append(account.id)
                sets += f", claimed_by = ${len(args)}"
            marks = ", ".join(f"${len(args) + 1 + i}" for i in range(len(sources)))
            args.extend(sources)
            where = f"id = $3 AND spec_hash = $4 AND state IN ({marks})"
            if target == "claimed":
                where += " AND expires > $2"
            changed = await tx.execute(f"UPDATE requests SET {sets} WHERE {where}", *args)
            if not changed:
                now_state = await tx.fetch("SELECT state FROM requests WHERE id = $1", rid)
                raise Conflict(
                    f"{entry.id} changed meanwhile: it is {now_state[0][0]} now"
                    if now_state
                    else f"{entry.id} changed meanwhile",
                    "read it again (roarctl request show)",
                )
        await _event(tx, rid, action, state, account, now, entry.revision, entry.spec_hash, comment)
    return Change(await _read(store, rid, account.id), action, account.name)


async def expire_due(
    store: Store, notify: Notify | None = None, now: float | None = None
) -> list[int]:
    """Approvals whose time ran out become expired, each with an event by the registry (and a
    call of `notify`: the webhooks). Of several workers sweeping at once, one expires each."""
    now = time.time() if now is None else now
    due = await store.fetch(
        "SELECT id, revision, spec_hash FROM requests WHERE state = 'approved' AND expires <= $1",
        now,
    )
    done = []
    for rid, revision, digest in due:
        async with store.transaction() as tx:
            changed = await tx.execute(
                "UPDATE requests SET state = 'expired', updated = $1 "
                "WHERE id = $2 AND state = 'approved' AND expires <= $1",
                now,
                rid,
            )
            if changed:
                await _event(tx, int(rid), "expired", "expired", None, now, revision, digest, None)
                done.append(int(rid))
    if notify is not None:
        for rid in done:
            await notify(Change(await _read(store, rid, ANONYMOUS), "expired", None))
    return done


_ENTRY = (
    "SELECT r.id, r.state, u.name, u.agent, v.name, r.revision, r.spec_hash, s.spec, r.created, "
    "r.updated, r.expires, c.name FROM requests r JOIN users u ON u.id = r.requester_id "
    "JOIN users v ON v.id = r.reviewer_id LEFT JOIN users c ON c.id = r.claimed_by "
    "JOIN request_revisions s ON s.request_id = r.id AND s.revision = r.revision"
)


def _entry(row: tuple[Any, ...]) -> RequestEntry:
    return RequestEntry(
        id=display(int(row[0])),
        state=row[1],
        requester=row[2],
        requester_agent=bool(row[3]),
        reviewer=row[4],
        revision=int(row[5]),
        spec_hash=row[6],
        spec=msgspec.json.decode(row[7], type=RequestSpec),
        created=float(row[8]),
        updated=float(row[9]),
        expires=None if row[10] is None else float(row[10]),
        claimed_by=row[11],
    )


async def get(
    store: Store, rid: int, viewer: int = ANONYMOUS, notify: Notify | None = None
) -> RequestEntry:
    """One request, whole: its events and the runs linked to it (those the viewer can see);
    an approval that ran out is expired first."""
    await expire_due(store, notify)
    return await _read(store, rid, viewer)


async def _read(store: Store, rid: int, viewer: int) -> RequestEntry:
    row = await store.fetchone(f"{_ENTRY} WHERE r.id = $1", rid)
    if row is None:
        raise NotFound(f"no request {display(rid)}", "see `roarctl request list`")
    entry = _entry(row)
    events = await store.fetch(
        "SELECT e.action, e.state, u.name, e.agent, e.at, e.revision, e.spec_hash, e.key, "
        "e.comment FROM request_events e LEFT JOIN users u ON u.id = e.actor_id "
        "WHERE e.request_id = $1 ORDER BY e.seq",
        rid,
    )
    entry.events = [
        RequestEvent(r[0], r[1], r[2], bool(r[3]), float(r[4]), int(r[5]), r[6], r[7], r[8])
        for r in events
    ]
    entry.runs = await runs(store, rid, entry.spec, viewer)
    await _with_spent(store, [entry])
    return entry


async def spent(store: Store, rids: list[int]) -> dict[int, float]:
    """What each request has spent: the cost of all the runs linked to it (also those a viewer
    cannot read: the budget is the request's, whoever ran them), at the current prices."""
    if not rids:
        return {}
    marks = ", ".join(f"${i + 1}" for i in range(len(rids)))
    rows = await store.fetch(
        "SELECT rr.request_id, g.gpu_model, SUM(g.cpu_seconds), SUM(g.gpu_seconds) "
        "FROM request_runs rr JOIN jobs j ON j.id = rr.job_id JOIN job_usage g ON g.job = j.seq "
        f"WHERE rr.request_id IN ({marks}) GROUP BY rr.request_id, g.gpu_model",
        *rids,
    )
    table = {p.resource: p.per_hour for p in await store.prices()} if rows else {}
    out = dict.fromkeys(rids, 0.0)
    for rid, model, cpu_seconds, gpu_seconds in rows:
        out[int(rid)] += compute.cost(float(cpu_seconds), float(gpu_seconds), model, table)[0]
    return out


async def _with_spent(store: Store, entries: list[RequestEntry]) -> None:
    found = await spent(store, [number(e.id) for e in entries])
    for e in entries:
        e.spent = found[number(e.id)]
        e.over_budget = e.spent > e.spec.budget


async def runs(store: Store, rid: int, spec: RequestSpec, viewer: int) -> list[LinkedRun]:
    from glaas.store.base import visible

    rows = await store.fetch(
        "SELECT j.id, j.command, u.name, j.started, j.status FROM request_runs rr "
        "JOIN jobs j ON j.id = rr.job_id JOIN users u ON u.id = j.owner_id "
        f"WHERE rr.request_id = $1 AND {visible(2)} ORDER BY j.started, j.id",
        rid,
        viewer,
    )
    if not rows:
        return []
    inputs: dict[str, set[str]] = {}
    for job, _role, digest, _path, _size in await store.io_of_jobs([r[0] for r in rows], 0):
        inputs.setdefault(job, set()).add(digest)
    wanted = [spec.dataset, spec.base_model]
    return [
        LinkedRun(
            job=r[0],
            command=r[1],
            owner=r[2],
            started=float(r[3]),
            status=r[4],
            missing=[h for h in wanted if h not in inputs.get(r[0], set())],
        )
        for r in rows
    ]


async def listing(
    store: Store,
    states: list[str],
    mine: Account | None = None,
    limit: int = MAX_LIST,
    notify: Notify | None = None,
) -> list[RequestEntry]:
    await expire_due(store, notify)
    where: list[str] = []
    args: list[Any] = []
    if states:
        marks = ", ".join(f"${i + 1}" for i in range(len(states)))
        where.append(f"r.state IN ({marks})")
        args.extend(states)
    if mine is not None:
        n = len(args) + 1
        where.append(f"(r.requester_id = ${n} OR r.reviewer_id = ${n} OR r.claimed_by = ${n})")
        args.append(mine.id)
    sql = _ENTRY + (" WHERE " + " AND ".join(where) if where else "")
    rows = await store.fetch(f"{sql} ORDER BY r.id DESC LIMIT {int(limit)}", *args)
    found = [_entry(r) for r in rows]
    await _with_spent(store, found)
    return found


async def link_runs(
    store: Store, jobs: list[tuple[str, str]], notify: Notify | None = None
) -> list[int]:
    """Registered jobs that name a request (job id, request ref; in the order they started) are
    linked to it if the request allowed the run (what roarctl checked before it ran, which a
    hand-made batch skips): it was approved, and nobody but the job's owner claimed it.
    Otherwise, as for a ref that names no request, the job is registered but not linked. Then
    each request they took over its budget is marked (and `notify` told). Returns the requests
    marked over budget now."""
    last: dict[int, str] = {}  # request: the latest of its runs in this registration
    for job_id, ref in jobs:
        rid = request_ref(ref)
        if rid is None:
            continue
        allowed = await store.fetchone(
            "SELECT 1 FROM requests r JOIN jobs j ON j.id = $2 WHERE r.id = $1 "
            "AND (r.claimed_by IS NULL OR r.claimed_by = j.owner_id) AND EXISTS "
            "(SELECT 1 FROM request_events e WHERE e.request_id = r.id AND e.action = 'approved')",
            rid,
            job_id,
        )
        if allowed is None:
            continue
        await store.execute(
            "INSERT INTO request_runs (request_id, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            rid,
            job_id,
        )
        last[rid] = job_id
    over = []
    for rid, job_id in last.items():
        if await _over_budget(store, rid, job_id):
            over.append(rid)
            if notify is not None:
                await notify(Change(await _read(store, rid, ANONYMOUS), "over_budget", None))
    return over


async def _over_budget(store: Store, rid: int, job_id: str) -> bool:
    """Mark the request over budget if it is and was not yet (True: marked now). Checked after
    the links are written, so of two registrations at once the later one sees both runs; the
    compare-and-set on `over_budget` lets exactly one of them mark it."""
    row = await store.fetchone(
        "SELECT r.revision, r.spec_hash, s.spec FROM requests r "
        "JOIN request_revisions s ON s.request_id = r.id AND s.revision = r.revision "
        "WHERE r.id = $1 AND r.over_budget IS NULL",
        rid,
    )
    if row is None:  # marked before
        return False
    budget = msgspec.json.decode(row[2], type=RequestSpec).budget
    cost = (await spent(store, [rid]))[rid]
    if cost <= budget:
        return False
    now = time.time()
    note = f"spent {cost:.2f} of budget {budget:g}: run {job_id[:12]} took it over"
    async with store.transaction() as tx:
        # the revision read (an edit meanwhile brought another budget) and its state now
        changed = await tx.fetch(
            "UPDATE requests SET over_budget = $1, over_budget_job = $2 "
            "WHERE id = $3 AND over_budget IS NULL AND revision = $4 RETURNING state",
            now,
            job_id,
            rid,
            int(row[0]),
        )
        if not changed:
            return False
        state = changed[0][0]
        await _event(tx, rid, "over_budget", state, None, now, int(row[0]), row[1], note)
    return True
