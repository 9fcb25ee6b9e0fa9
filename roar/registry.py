"""The registry's wire contract (GLaaS, `/api/v1`), shared by the server (glaas) and its clients
(roard's outbox, roarctl register/auth/show --remote): what is sent, what comes back, and how a
request is signed.

A client sends one `Batch` to `POST /api/v1/ingest`: jobs made canonical by
`roar.canonical.for_registry` (each with its session's hash) and the sessions they belong to. The
server keys each job by `roar.canonical.job_id`, so sending a batch again (a retry, or the same
job from another machine) stores nothing twice; `Ingested` says what was new and what known.

Every write, and every read of records that are not public, carries
`Authorization: SSHSIG t=<unix time>,n=<nonce>,s=<base64 SSHSIG blob>`: an `ssh-keygen -Y sign`
signature in namespace "glaas" over `request_message(...)`: method, path, query, the time, a
random nonce and the body's SHA-256. The server accepts a time within SKEW seconds of its own, and
each signature once. (The nonce matters: ed25519 signatures are deterministic, so without it two
identical requests in the same second, such as a retry, would carry the same signature.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec

from roar.errors import ErrorCode
from roar.model import Job

API = "/api/v1"
NAMESPACE = "glaas"
SKEW = 300  # seconds of clock difference tolerated either way
MIN_PREFIX = 6  # hex digits of the shortest prefix a look-up accepts
MAX_BATCH = 1000  # jobs in one ingest request

Visibility = Literal["private", "team", "public"]
Kind = Literal["artifact", "job", "session"]
Role = Literal["input", "output"]
Direction = Literal["up", "down"]


# ---------------------------------------------------------------- what a client sends


class Session(msgspec.Struct):
    """A session (one pipeline's jobs): its hash is `roar.canonical.session_hash` of the rest."""

    hash: str
    host: str  # the machine it ran on
    started: float
    project: str | None = None  # the project's name (its directory), never its path


class Registration(msgspec.Struct):
    job: Job  # canonical: roar.canonical.for_registry
    session: str | None = None  # the hash of its Session, sent in the same batch or before


class Batch(msgspec.Struct):
    jobs: list[Registration] = []
    sessions: list[Session] = []
    visibility: Visibility | None = None  # None: the server's default
    team: str | None = None  # for "team": which of your teams (needed if you are in several)


# ---------------------------------------------------------------- what comes back


class Counts(msgspec.Struct):
    new: int = 0
    known: int = 0


class Ingested(msgspec.Struct):
    ids: list[str]  # the registry id of each job sent, in order
    jobs: Counts
    sessions: Counts
    artifacts: Counts


class JobSummary(msgspec.Struct):
    id: str
    command: str
    started: float
    status: str
    kind: str = "run"
    ended: float | None = None
    exit_code: int | None = None
    step: int | None = None
    session: str | None = None


class JobEntry(msgspec.Struct):
    """A registered job: the canonical record plus what the registry knows about it."""

    id: str
    job: Job
    owner: str
    visibility: Visibility
    registered: float
    team: str | None = None
    session: str | None = None


class ArtifactEntry(msgspec.Struct):
    hash: str
    size: int
    paths: list[str]  # the names it was seen under, in jobs you can read
    made_by: list[str]  # job ids that wrote it, in start order
    read_by: list[str]  # job ids that read it
    producer: str | None = None  # the one of them that made it (glaas.graph.producer)


class Ancestry(msgspec.Struct):
    """Every job upstream of an artifact, or of a job (with the job), that the reader may see
    (`GET artifacts/{ref}/ancestry`, `GET jobs/{ref}/ancestry`), whole: what `roarctl reproduce`
    plans from when the local store lacks the hash. The walk follows each input to the jobs that
    wrote its content and had ended before the reader started; the build steps (kind "build")
    of those jobs' sessions that ran before their last job come too. The client picks the
    producer of each input (roard.plan)."""

    root: str  # the artifact's hash, or the job's id (one of `jobs`)
    jobs: list[JobEntry]
    truncated: bool = False  # the walk stopped at its job limit: the lineage is incomplete


class SessionEntry(msgspec.Struct):
    session: Session
    jobs: list[JobSummary]


class GraphArtifact(msgspec.Struct):
    hash: str
    size: int
    path: str  # one name it had in this graph


class Edge(msgspec.Struct):
    job: str
    artifact: str
    role: Role
    # an input's source: the job its content came from by the producer rule (glaas.graph;
    # any job, in this graph or not), None when no recorded job made it (or, from a registry
    # older than this field, unknown)
    source: str | None = None


class Graph(msgspec.Struct):
    """Jobs and artifacts joined by input/output edges: a lineage walk or a session's DAG."""

    root: str
    jobs: list[JobSummary]
    artifacts: list[GraphArtifact]
    edges: list[Edge]
    truncated: bool = False  # the walk stopped at its node limit before its depth


class Match(msgspec.Struct):
    kind: Kind
    id: str


class SearchResult(msgspec.Struct):
    query: str
    matches: list[Match]
    truncated: bool = False


class Me(msgspec.Struct):
    user: str
    key: str  # the fingerprint of the key that signed the request
    teams: list[str]
    default_visibility: Visibility


class WebLink(msgspec.Struct):
    """A one-time link that signs a browser in to the registry's web pages (`roarctl auth
    web`): single use, valid until `expires` (unix seconds)."""

    url: str
    expires: int


# ---------------------------------------------------------------- training requests

RequestState = Literal[
    "pending",
    "approved",
    "rejected",
    "withdrawn",
    "expired",
    "claimed",
    "completed",
    "failed",
    "cancelled",
]
Outcome = Literal["completed", "failed", "cancelled"]
RequestVerb = Literal["approve", "reject", "withdraw", "claim", "complete", "comment"]
REQUEST_ID = re.compile(r"(?:R-)?([1-9][0-9]{0,17})", re.IGNORECASE)


class RequestSpec(msgspec.Struct, forbid_unknown_fields=True):
    """What a training request asks for (`roarctl request new --from spec.json` reads this, in
    snake_case). `dataset` and `base_model` are artifact hashes or prefixes; the registry stores
    them resolved to full hashes."""

    dataset: str
    base_model: str
    compute: str  # e.g. "8xH100"
    hours: Annotated[float, msgspec.Meta(ge=0, le=100_000)]
    budget: Annotated[float, msgspec.Meta(ge=0)]
    reviewer: str  # the user who must approve it
    rationale: str = ""


class RequestAction(msgspec.Struct, forbid_unknown_fields=True):
    """The body of approve, reject, withdraw, claim, complete and comment. `spec_hash`: the
    revision the actor saw (an approval of any other revision is refused)."""

    comment: str | None = None
    spec_hash: str | None = None
    outcome: Outcome | None = None  # complete: completed (default), failed or cancelled


class RequestEvent(msgspec.Struct):
    action: str  # filed, revised, approved, rejected, withdrawn, expired, claimed, ...
    state: RequestState  # the request's state after it
    actor: str | None  # None: the registry itself (an approval expired)
    agent: bool  # the actor is an agent account
    at: float
    revision: int
    spec_hash: str
    key: str | None = None  # the fingerprint of the key that signed it
    comment: str | None = None


class LinkedRun(msgspec.Struct):
    """A registered job that named the request; `missing`: the approved dataset or base model
    hashes its inputs lack (a flag)."""

    job: str
    command: str
    owner: str
    started: float
    status: str
    missing: list[str] = []


class RequestEntry(msgspec.Struct):
    id: str
    state: RequestState
    requester: str
    requester_agent: bool
    reviewer: str
    revision: int
    spec_hash: str
    spec: RequestSpec
    created: float
    updated: float
    expires: float | None = None  # while approved: when the approval lapses
    claimed_by: str | None = None
    events: list[RequestEvent] = []
    runs: list[LinkedRun] = []
    # the cost of every run linked to it at the current prices (glaas.compute's rule), and
    # whether that is over the spec's budget
    spent: float = 0.0
    over_budget: bool = False


class RequestList(msgspec.Struct):
    requests: list[RequestEntry]


def request_ref(value: str) -> int | None:
    """The number of a request id (`R-12`, `r-12` or `12`), or None if it is not one."""
    m = REQUEST_ID.fullmatch(value.strip())
    return int(m[1]) if m else None


# ---------------------------------------------------------------- compute accounting

ComputeBy = Literal["person", "agent", "project", "request"]
SINCE = r"^[1-9][0-9]{0,4}[hdw]$"  # 12h, 30d, 8w
_UNIT = {"h": 3600, "d": 86400, "w": 7 * 86400}


def since_seconds(text: str) -> int:
    """A report's window (`--since 30d`: 12h, 30d, 8w) in seconds."""
    if not re.fullmatch(SINCE, text):
        raise ValueError(f"not a duration: {text[:40]!r} (give e.g. 12h, 30d or 8w)")
    return int(text[:-1]) * _UNIT[text[-1]]


class Price(msgspec.Struct):
    resource: str  # cpu | gpu (any GPU without its own price) | gpu:NAME (a model with NAME in it)
    per_hour: float


class ComputeRow(msgspec.Struct):
    """What one person, agent, project or request spent in the window (at the current prices)."""

    key: str
    jobs: int = 0
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    cost: float = 0.0
    read_jobs: int = 0  # jobs whose outputs a later job read ("moved the needle")
    read_cost: float = 0.0
    unread_jobs: int = 0  # jobs whose outputs no job read (yet)
    unread_cost: float = 0.0


class ComputePoint(msgspec.Struct):
    day: str  # YYYY-MM-DD, UTC
    key: str
    cost: float


class ComputeReport(msgspec.Struct):
    by: ComputeBy
    since: float  # the window, unix seconds
    until: float
    rows: list[ComputeRow]  # most expensive first
    total: ComputeRow
    series: list[ComputePoint]  # cost per day and key, for the chart
    prices: list[Price]
    unpriced_gpu_hours: float = 0.0  # GPU hours of models the price table has no price for


class Problem(msgspec.Struct, omit_defaults=True):
    """An error, as RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    code: ErrorCode = "internal"
    hint: str | None = None
    candidates: list[Match] | None = None  # for an ambiguous prefix


# ---------------------------------------------------------------- request signing


def request_message(
    method: str, path: str, query: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    """What a request's signature covers. `path` and `query` are as sent (still %-encoded)."""
    lines = [
        "glaas-request-v1",
        method.upper(),
        path,
        query,
        str(timestamp),
        nonce,
        hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines).encode()


def authorization(
    sign: Callable[[bytes], bytes],
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float | None = None,
) -> str:
    """The Authorization header for a request; `sign` is a roar.sshsig Signer for NAMESPACE."""
    timestamp = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    blob = sign(request_message(method, path, query, timestamp, nonce, body))
    return f"SSHSIG t={timestamp},n={nonce},s={base64.b64encode(blob).decode()}"


_AUTH = re.compile(
    r"SSHSIG t=(?P<t>-?[0-9]{1,12}),n=(?P<n>[0-9a-f]{16,64}),s=(?P<s>[A-Za-z0-9+/=]{1,16384})"
)


def parse_authorization(value: str) -> tuple[int, str, bytes] | None:
    """(timestamp, nonce, SSHSIG blob) from an Authorization header, or None if it is not one."""
    m = _AUTH.fullmatch(value.strip())
    if m is None:
        return None
    try:
        return int(m["t"]), m["n"], base64.b64decode(m["s"], validate=True)
    except binascii.Error:
        return None
