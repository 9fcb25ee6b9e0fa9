"""The pages: each a small function of the store and of who is looking (the session cookie's
account, or anonymous). Every read goes through the store's visibility checks, so what is not
yours reads as "not found", exactly as in the API."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, Parameter
from litestar.response import Redirect

from glaas import compute, graph, login, lookup
from glaas.store import ANONYMOUS, Account, Store
from glaas.web import chart, dag, svg
from glaas.web.render import T0, error_page, page, static_files
from roar.errors import Invalid, NotFound
from roar.registry import Graph, Kind

Req = Request[Any, Any, Any]
RECENT = 25
READERS = 100  # jobs listed as an artifact's readers before "and N more"
SOURCES_JOBS = 300  # jobs walked up to find an artifact's unsourced inputs
AROUND_JOBS = 60  # jobs per direction in a record's neighbourhood graph
PATHS = {"artifact": "artifacts", "job": "jobs", "session": "sessions"}
TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}


async def identify(request: Req) -> None:
    """Before each page: who is looking (the session cookie), and the clock for Server-Timing."""
    state = request.scope["state"]
    state[T0] = time.perf_counter()
    if request.url.path.startswith("/static/"):
        return
    store: Store = request.app.state.store
    state["viewer"] = await login.session_account(store, request.cookies.get(login.COOKIE))


def _store(request: Req) -> Store:
    store: Store = request.app.state.store
    return store


def _viewer(request: Req) -> int:
    account: Account | None = request.scope["state"].get("viewer")
    return ANONYMOUS if account is None else account.id


def url_of(kind: Kind, ref: str) -> str:
    return f"/{PATHS[kind]}/{ref}"


async def _resolve(request: Req, kind: Kind, ref: str) -> str | Response[Any]:
    """The full id `ref` names, or the response to give instead (a prefix: a redirect)."""
    ref = lookup.check(ref)
    if len(ref) == 64:
        return ref
    match = await lookup.resolve(_store(request), (kind,), ref, _viewer(request))
    return Redirect(url_of(kind, match.id), status_code=302)


def _expand_href(request: Req, key: str) -> str:
    keys = dag.expand_keys(request.query_params.getall("expand", []))
    query = [("expand", k) for k in dict.fromkeys([*keys, key])]
    return f"{request.url.path}?{urlencode(query)}#graph"


def _href(node: dag.Node) -> str:
    return url_of("job" if node.kind == "job" else "artifact", node.id)


# ---------------------------------------------------------------- home and search


@get("/", include_in_schema=False)
async def home(request: Req) -> Response[bytes]:
    recent = await _store(request).recent_jobs(_viewer(request), RECENT)
    return page(request, "home.html", recent=recent, query="")


@get("/search", include_in_schema=False)
async def search(request: Req, q: FromQuery[str] = "") -> Response[Any]:
    query = q.strip().lower()
    if not query:
        return Redirect("/", status_code=303)
    try:
        ref = lookup.check(query)
    except Invalid as e:
        return error_page(request, 400, e.message, e.hint, query=q[:100])
    kinds: tuple[Kind, ...] = ("artifact", "job", "session")
    found = await lookup.matches(_store(request), kinds, ref, _viewer(request))
    if len(found) == 1:
        return Redirect(url_of(found[0].kind, found[0].id), status_code=303)
    status = 200 if found else 404
    more = len(found) > lookup.MAX_CANDIDATES
    return page(
        request,
        "search.html",
        status,
        query=ref,
        matches=found[: lookup.MAX_CANDIDATES],
        more=more,
    )


# ---------------------------------------------------------------- records


async def _around(request: Req, kind: Kind, ident: str, depth: int) -> tuple[dag.Drawn, bool]:
    store, viewer = _store(request), _viewer(request)
    graphs: list[Graph] = []
    for direction in ("up", "down"):
        graphs.append(
            await graph.lineage(store, kind, ident, direction, depth, viewer, AROUND_JOBS)
        )
    focus = ("a" if kind == "artifact" else "j") + ident
    expanded = dag.expand_keys(request.query_params.getall("expand", []))

    def draw() -> dag.Drawn:
        d = dag.neighbourhood_drawing(
            graphs, focus, _href, lambda key: _expand_href(request, key), expanded
        )
        return dag.Drawn.of(d, svg.render(d, f"Lineage around this {kind}"))

    parts = [request.url.path, focus, *expanded, *(msgspec.json.encode(g).decode() for g in graphs)]
    return dag.cached(parts, draw), any(g.truncated for g in graphs)


def _depth(request: Req) -> int:
    return 2 if request.query_params.get("depth") == "2" else 1


@get("/artifacts/{ref:str}", include_in_schema=False)
async def artifact(request: Req, ref: FromPath[str]) -> Response[Any]:
    digest = await _resolve(request, "artifact", ref)
    if not isinstance(digest, str):
        return digest
    store, viewer = _store(request), _viewer(request)
    entry = await store.artifact(digest, viewer)
    if entry is None:
        raise NotFound(f"no artifact {digest}")
    made = await store.summaries([entry.producer] if entry.producer else [])
    copies = await store.summaries([j for j in entry.made_by if j != entry.producer][:READERS])
    readers = await store.summaries(entry.read_by[:READERS])
    up = await graph.lineage(store, "artifact", digest, "up", graph.MAX_DEPTH, viewer, SOURCES_JOBS)
    # the inputs upstream that no recorded job made (glaas.graph.source: None)
    unsourced = {e.artifact for e in up.edges if e.role == "input" and e.source is None}
    sources = [a for a in up.artifacts if a.hash in unsourced and a.hash != digest]
    partial = up.truncated
    depth = _depth(request)
    drawing, cut = await _around(request, "artifact", digest, depth)
    return page(
        request,
        "artifact.html",
        entry=entry,
        made=made,
        copies=copies,
        readers=readers,
        more_readers=max(0, len(entry.read_by) - READERS),
        sources=sources,
        sources_partial=partial,
        upstream_jobs=len(up.jobs),
        drawing=drawing,
        graph_cut=cut,
        depth=depth,
    )


@get("/jobs/{ref:str}", include_in_schema=False)
async def job(request: Req, ref: FromPath[str]) -> Response[Any]:
    job_id = await _resolve(request, "job", ref)
    if not isinstance(job_id, str):
        return job_id
    store, viewer = _store(request), _viewer(request)
    entry = await store.job(job_id, viewer)
    if entry is None:
        raise NotFound(f"no job {job_id}")
    reads = [(job_id, entry.job.started, io.hash, io.path, io.size) for io in entry.job.inputs]
    found, _ = await graph.sources(store, reads, viewer, len(reads) * 4 + 4)
    makers = {(h, p): src for (_, h, p), src in found.items() if src is not None}
    depth = _depth(request)
    drawing, cut = await _around(request, "job", job_id, depth)
    return page(
        request,
        "job.html",
        entry=entry,
        job=entry.job,
        makers=makers,
        drawing=drawing,
        graph_cut=cut,
        depth=depth,
    )


@get("/sessions/{ref:str}", include_in_schema=False)
async def session(request: Req, ref: FromPath[str]) -> Response[Any]:
    digest = await _resolve(request, "session", ref)
    if not isinstance(digest, str):
        return digest
    store, viewer = _store(request), _viewer(request)
    found = await store.session(digest, viewer)
    if found is None:
        raise NotFound(f"no session {digest}")
    record, jobs = found
    shown = jobs[: graph.MAX_JOBS]
    io = await store.io_of_jobs([j.id for j in shown])
    steps = dag.steps(shown, io)
    expanded = dag.expand_keys(request.query_params.getall("expand", []))

    def draw() -> dag.Drawn:
        d = dag.session_drawing(steps, _href, lambda key: _expand_href(request, key), expanded)
        return dag.Drawn.of(d, svg.render(d, "The session's pipeline"))

    parts = [request.url.path, *expanded, msgspec.json.encode(shown).decode()]
    parts.extend(f"{j}|{role}|{h}|{p}" for j, role, h, p, _ in io)
    drawing = dag.cached(parts, draw)
    return page(
        request,
        "session.html",
        session=record,
        steps=steps,
        jobs=len(jobs),
        truncated=len(jobs) > len(shown),
        drawing=drawing,
    )


# ---------------------------------------------------------------- login


@get("/login/{token:str}", include_in_schema=False)
async def sign_in(request: Req, token: FromPath[str]) -> Response[Any]:
    cookie = await login.open_session(_store(request), token)
    if cookie is None:
        return error_page(
            request,
            400,
            "this sign-in link is unknown, expired or already used",
            "links work once, for 10 minutes: run `roarctl auth web` for a new one",
        )
    response: Response[Any] = Redirect("/", status_code=303)
    response.set_cookie(
        login.COOKIE,
        cookie,
        max_age=login.SESSION_TTL,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.app.state.secure_cookies,
    )
    return response


Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def csrf_checked(request: Req, data: dict[str, str]) -> Response[bytes] | None:
    """Every form that changes state carries the session's CSRF token: None if it does."""
    if request.scope["state"].get("viewer") is None:
        return error_page(request, 403, "you are not signed in")
    if not login.csrf_ok(request.cookies.get(login.COOKIE), data.get("csrf")):
        return error_page(
            request, 403, "this form expired or did not come from this site", "reload the page"
        )
    return None


@post("/logout", include_in_schema=False, status_code=303)
async def sign_out(request: Req, data: Form) -> Response[Any]:
    refused = csrf_checked(request, data)
    if refused is not None:
        return refused
    await login.end_session(_store(request), request.cookies.get(login.COOKIE))
    response: Response[Any] = Redirect("/", status_code=303)
    response.delete_cookie(login.COOKIE, path="/")
    return response


# ---------------------------------------------------------------- compute accounting


@get("/compute", include_in_schema=False)
async def compute_page(
    request: Req, by: FromQuery[str] = "person", since: FromQuery[str] = "30d"
) -> Response[Any]:
    """The compute report (as `roarctl compute report`), with its cost per day as a chart."""
    if by not in ("person", "agent", "project", "request"):
        return error_page(
            request, 400, f"no report by {by[:40]!r}", "by person, agent, project or request"
        )
    try:
        start, until = compute.window(since)
    except Invalid as e:
        return error_page(request, 400, e.message, e.hint)
    store = _store(request)
    jobs = await store.compute_jobs(start, until, _viewer(request))
    found = compute.report(jobs, await store.prices(), by, start, until)  # type: ignore[arg-type]
    return page(
        request,
        "compute.html",
        report=found,
        since=since,
        chart=chart.render(found),
        legend=chart.legend(found),
    )


# ---------------------------------------------------------------- static files


@get("/static/{name:str}", include_in_schema=False)
async def static(
    request: Req, name: Annotated[str, Parameter(pattern=r"^[a-z0-9.-]{1,40}$")]
) -> Response[bytes]:
    found = static_files().get(name)
    if found is None:
        raise NotFound(f"no static file {quote(name)}")
    kind = TYPES.get(name[name.rfind(".") :], "application/octet-stream")
    return Response(found[0], media_type=kind)


ROUTES = [home, search, artifact, job, session, compute_page, sign_in, sign_out, static]
