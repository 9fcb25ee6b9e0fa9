"""The routes of /api/v1: each a small function of the store and of who is asking.

Reads work unsigned (public records only) or signed (also your own and your teams'); `ingest`
and `auth/me` must be signed. A record the reader may not see answers 404, as if absent."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.dto import AbstractDTO, DTOFieldDefinition
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Reference, Schema
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.typing import FieldDefinition

from glaas import ancestry, auth, compute, graph, ingest, login, lookup, requests
from glaas.problems import responses
from glaas.store import ANONYMOUS, Account, Store
from roar.errors import NotFound
from roar.registry import (
    API,
    SINCE,
    Ancestry,
    ArtifactEntry,
    Batch,
    ComputeBy,
    ComputeReport,
    Direction,
    Graph,
    Ingested,
    JobEntry,
    Me,
    RequestAction,
    RequestEntry,
    RequestList,
    RequestSpec,
    RequestState,
    RequestVerb,
    SearchResult,
    SessionEntry,
    WebLink,
)

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

HEX = "^[0-9a-f]{6,64}$"
Ref = Annotated[
    str, Parameter(pattern=HEX, description="a full hash or id, or a unique prefix (>= 6 hex)")
]
Depth = Annotated[int, Parameter(ge=1, le=graph.MAX_DEPTH, description="jobs deep")]
READ = responses(400, 401, 404, 409, 503)
Store_ = NamedDependency[Store]
Account_ = NamedDependency[Account | None]


async def provide_store(state: State) -> Store:
    store: Store = state.store
    return store


async def account_of(request: Request[Any, Any, Any]) -> Account | None:
    """Who signed the request (None: unsigned), checked once per request."""
    state = request.scope["state"]
    if "account" not in state:
        header = request.headers.get("authorization")
        if header is None:  # unsigned: anonymous, and its body is not read for nothing
            state["account"] = None
            return None
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        state["account"] = await auth.authenticate(
            request.app.state.store,
            request.method,
            raw_path.decode("latin-1").split("?", 1)[0],
            scope.get("query_string", b"").decode("latin-1"),
            header,
            await request.body(),
        )
    account: Account | None = state["account"]
    return account


async def provide_account(store: Store_, request: Request[Any, Any, Any]) -> Account | None:
    """`store` only orders the two dependencies: resolved one after the other, as Litestar does
    a lone dependency, instead of together in a task group (two tasks per request: measured
    ~15% of a look-up's CPU)."""
    return await account_of(request)


async def signed(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: the request must be signed (checked before its body is parsed)."""
    assert isinstance(connection, Request)
    auth.required(await account_of(connection))


def _viewer(account: Account | None) -> int:
    return ANONYMOUS if account is None else account.id


@get("/artifacts/{ref:str}", responses=READ, summary="An artifact by BLAKE3 hash or prefix")
async def artifact(ref: Ref, store: Store_, account: Account_) -> ArtifactEntry:
    viewer = _viewer(account)
    digest = await lookup.full_id(store, "artifact", ref, viewer)
    entry = await store.artifact(digest, viewer)
    if entry is None:  # removed from view between the two reads
        raise NotFound(f"no artifact {ref}")
    return entry


@get(
    "/artifacts/{ref:str}/ancestry",
    responses=READ,
    summary="Every job upstream of an artifact, whole (what roarctl reproduce plans from)",
)
async def artifact_ancestry(ref: Ref, store: Store_, account: Account_) -> Ancestry:
    viewer = _viewer(account)
    digest = await lookup.full_id(store, "artifact", ref, viewer)
    return await ancestry.ancestry(store, "artifact", digest, viewer)


@get("/jobs/{ref:str}", responses=READ, summary="A job by registry id or prefix")
async def job(ref: Ref, store: Store_, account: Account_) -> JobEntry:
    viewer = _viewer(account)
    job_id = await lookup.full_id(store, "job", ref, viewer)
    entry = await store.job(job_id, viewer)
    if entry is None:
        raise NotFound(f"no job {ref}")
    return entry


@get(
    "/jobs/{ref:str}/ancestry",
    responses=READ,
    summary="A job and every job upstream of it, whole (what roarctl reproduce plans from)",
)
async def job_ancestry(ref: Ref, store: Store_, account: Account_) -> Ancestry:
    viewer = _viewer(account)
    job_id = await lookup.full_id(store, "job", ref, viewer)
    return await ancestry.ancestry(store, "job", job_id, viewer)


@get("/sessions/{ref:str}", responses=READ, summary="A session and its jobs")
async def session(ref: Ref, store: Store_, account: Account_) -> SessionEntry:
    match = await lookup.resolve(store, ("session",), ref, _viewer(account))
    found = await store.session(match.id, _viewer(account))
    if found is None:
        raise NotFound(f"no session {ref}")
    return SessionEntry(*found)


@get("/sessions/{ref:str}/dag", responses=READ, summary="A session's jobs and their files")
async def session_dag(ref: Ref, store: Store_, account: Account_) -> Graph:
    match = await lookup.resolve(store, ("session",), ref, _viewer(account))
    return await graph.session_dag(store, match.id, _viewer(account))


@get("/lineage/{ref:str}", responses=READ, summary="Lineage of an artifact or job, up or down")
async def lineage(
    ref: Ref,
    store: Store_,
    account: Account_,
    direction: Annotated[Direction, Parameter(description="up: what made it")] = "up",
    depth: Depth = 3,
) -> Graph:
    viewer = _viewer(account)
    match = await lookup.resolve(store, ("artifact", "job"), ref, viewer)
    return await graph.lineage(store, match.kind, match.id, direction, depth, viewer)


@get("/search", responses=responses(400, 401, 503), summary="Artifacts, jobs, sessions by prefix")
async def search(
    q: Annotated[str, Parameter(pattern=HEX, description="a hash or id prefix (>= 6 hex)")],
    store: Store_,
    account: Account_,
) -> SearchResult:
    ref = lookup.check(q)
    found = await lookup.matches(store, ("artifact", "job", "session"), ref, _viewer(account))
    limit = lookup.MAX_CANDIDATES
    return SearchResult(ref, found[:limit], len(found) > limit)


@get("/auth/me", guards=[signed], responses=responses(401, 503), summary="Who signed this")
async def me(store: Store_, account: Account_, request: Request[Any, Any, Any]) -> Me:
    who = auth.required(account)
    return Me(who.name, who.key, sorted(who.teams), await store.default_visibility())


@post(
    "/auth/web-link",
    guards=[signed],
    status_code=200,
    responses=responses(401, 503),
    summary="A one-time link that signs a browser in to the web pages (roarctl auth web)",
)
async def web_link(store: Store_, account: Account_, request: Request[Any, Any, Any]) -> WebLink:
    base = request.app.state.public_url or str(request.base_url)
    return await login.new_link(store, auth.required(account), base)


class BatchBody(AbstractDTO[Batch]):
    """The ingest body, decoded straight from its bytes into a Batch: Litestar would decode it
    to dicts and lists, then convert those (measured: 21 ms for a 500-job batch, 12 ms so)."""

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        return None

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        return schema_creator.for_field_definition(field_definition)

    def decode_bytes(self, value: bytes) -> Batch:
        try:
            return _BATCH.decode(value)
        except msgspec.DecodeError as e:  # ValidationError is one
            raise ValidationException(f"the batch is not valid: {e}") from None


_BATCH = msgspec.json.Decoder(Batch)


@post(
    "/ingest",
    guards=[signed],
    dto=BatchBody,
    return_dto=None,
    status_code=200,
    responses=responses(400, 401, 413, 503),
    summary="Register a batch of jobs and sessions (idempotent)",
)
async def ingest_batch(
    data: JSONBody[Batch], store: Store_, account: Account_, request: Request[Any, Any, Any]
) -> Ingested:
    notify = request.app.state.webhooks.send  # a run that takes a request over its budget
    return await ingest.ingest(store, auth.required(account), data, notify)


# ---------------------------------------------------------------- training requests

REQ = responses(400, 401, 403, 404, 409, 503)
RequestRef = Annotated[str, Parameter(pattern=r"^[Rr]?-?[0-9]{1,18}$", description="R-12, or 12")]
StateList = Annotated[
    list[RequestState] | None,
    QueryParameter(name="state", description="only these states (repeatable)"),
]


async def _changed(request: Request[Any, Any, Any], change: requests.Change) -> RequestEntry:
    await request.app.state.webhooks.send(change)
    return change.request


@post("/requests", guards=[signed], status_code=201, responses=REQ, summary="File a request")
async def request_new(
    data: JSONBody[RequestSpec], store: Store_, account: Account_, request: Request[Any, Any, Any]
) -> RequestEntry:
    return await _changed(request, await requests.file(store, auth.required(account), data))


@get("/requests", guards=[signed], responses=REQ, summary="Requests, newest first")
async def request_list(
    store: Store_,
    account: Account_,
    request: Request[Any, Any, Any],
    states: StateList = None,
    mine: Annotated[bool, Parameter(description="only yours: filed, to review, claimed")] = False,
) -> RequestList:
    who = auth.required(account)
    notify = request.app.state.webhooks.send
    found = await requests.listing(store, list(states or []), who if mine else None, notify=notify)
    return RequestList(found)


@get("/requests/{ref:str}", guards=[signed], responses=REQ, summary="A request, its events, runs")
async def request_show(
    ref: RequestRef, store: Store_, account: Account_, request: Request[Any, Any, Any]
) -> RequestEntry:
    who = auth.required(account)
    notify = request.app.state.webhooks.send
    return await requests.get(store, requests.number(ref), who.id, notify)


@post(
    "/requests/{ref:str}/revisions",
    guards=[signed],
    status_code=200,
    responses=REQ,
    summary="Edit a request: a new revision of its spec (an approval is dismissed)",
)
async def request_revise(
    ref: RequestRef,
    data: JSONBody[RequestSpec],
    store: Store_,
    account: Account_,
    request: Request[Any, Any, Any],
) -> RequestEntry:
    notify = request.app.state.webhooks.send
    change = await requests.revise(store, auth.required(account), ref, data, notify)
    return await _changed(request, change)


@post(
    "/requests/{ref:str}/{action:str}",
    guards=[signed],
    status_code=200,
    responses=REQ,
    summary="approve, reject, withdraw, claim, complete or comment",
)
async def request_act(
    ref: RequestRef,
    action: Annotated[RequestVerb, Parameter(description="what to do")],
    data: JSONBody[RequestAction],
    store: Store_,
    account: Account_,
    request: Request[Any, Any, Any],
) -> RequestEntry:
    ttl = request.app.state.approval_ttl
    done = requests.ACTIONS[action]
    notify = request.app.state.webhooks.send
    change = await requests.act(store, auth.required(account), ref, done, data, ttl, notify)
    return await _changed(request, change)


@get("/compute", responses=responses(400, 401, 503), summary="Where the compute went, and cost")
async def compute_report(
    store: Store_,
    account: Account_,
    by: Annotated[
        ComputeBy, Parameter(description="rows: one per person, agent, project or request")
    ] = ("person"),
    since: Annotated[str, Parameter(pattern=SINCE, description="the window: 12h, 30d, 8w")] = "30d",
) -> ComputeReport:
    start, until = compute.window(since)
    jobs = await store.compute_jobs(start, until, _viewer(account))
    return compute.report(jobs, await store.prices(), by, start, until)


@get("/health", summary="Liveness", responses=responses(503))
async def health(store: Store_) -> dict[str, str]:
    await store.fetch("SELECT 1")
    return {"status": "ok"}


@get("/openapi.json", include_in_schema=False, media_type="application/vnd.oai.openapi+json")
async def openapi(request: Request[Any, Any, Any]) -> bytes:
    return msgspec.json.encode(request.app.openapi_schema.to_schema())


router = Router(
    path=API,
    route_handlers=[
        artifact,
        artifact_ancestry,
        job,
        job_ancestry,
        session,
        session_dag,
        lineage,
        search,
        me,
        web_link,
        ingest_batch,
        request_new,
        request_list,
        request_show,
        request_revise,
        request_act,
        compute_report,
        health,
        openapi,
    ],
    dependencies={"store": Provide(provide_store), "account": Provide(provide_account)},
)
