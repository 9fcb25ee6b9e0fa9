"""The training requests' pages: the queue (what is pending, what it asks for, who must review)
and a request's page (its spec, events, the runs that used it with links to their lineage, and
approve/reject forms for its reviewer). Signed-in only; forms carry the session's CSRF token."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from glaas import requests
from glaas.store import Account, Store
from glaas.web.pages import Form, csrf_checked
from glaas.web.render import error_page, page
from roar.errors import RoarFailure
from roar.registry import RequestAction

Req = Request[Any, Any, Any]
QUEUE = 200  # requests listed on the queue page


def _store(request: Req) -> Store:
    store: Store = request.app.state.store
    return store


def _who(request: Req) -> Account | None:
    account: Account | None = request.scope["state"].get("viewer")
    return account


def _signed_out(request: Req) -> Response[bytes]:
    return error_page(
        request,
        401,
        "sign in to see training requests",
        "run `roarctl auth web` and open the link it prints",
    )


@get("/requests", include_in_schema=False)
async def queue(request: Req) -> Response[Any]:
    who = _who(request)
    if who is None:
        return _signed_out(request)
    notify = request.app.state.webhooks.send
    found = await requests.listing(_store(request), [], limit=QUEUE, notify=notify)
    pending = [r for r in found if r.state == "pending"]
    others = [r for r in found if r.state != "pending"]
    return page(request, "requests.html", pending=pending, others=others)


@get("/requests/{ref:str}", include_in_schema=False)
async def request_page(request: Req, ref: FromPath[str]) -> Response[Any]:
    who = _who(request)
    if who is None:
        return _signed_out(request)
    notify = request.app.state.webhooks.send
    entry = await requests.get(_store(request), requests.number(ref), who.id, notify)
    may_review = (
        entry.state == "pending"
        and entry.reviewer == who.name
        and entry.requester != who.name
        and not who.agent
    )
    return page(request, "request.html", entry=entry, may_review=may_review)


async def _decide(request: Req, ref: str, data: dict[str, str], action: str) -> Response[Any]:
    refused = csrf_checked(request, data)
    if refused is not None:
        return refused
    who = _who(request)
    assert who is not None  # csrf_checked refuses the signed-out
    body = RequestAction(
        comment=(data.get("comment") or "").strip() or None, spec_hash=data.get("spec_hash")
    )
    ttl = request.app.state.approval_ttl
    try:
        notify = request.app.state.webhooks.send
        change = await requests.act(_store(request), who, ref, action, body, ttl, notify)
    except RoarFailure as e:
        from glaas.problems import STATUS

        return error_page(request, STATUS.get(e.code, 400), e.message, e.hint)
    await request.app.state.webhooks.send(change)
    return Redirect(f"/requests/{change.request.id}", status_code=303)


@post("/requests/{ref:str}/approve", include_in_schema=False, status_code=303)
async def approve(request: Req, ref: FromPath[str], data: Form) -> Response[Any]:
    return await _decide(request, ref, data, "approved")


@post("/requests/{ref:str}/reject", include_in_schema=False, status_code=303)
async def reject(request: Req, ref: FromPath[str], data: Form) -> Response[Any]:
    return await _decide(request, ref, data, "rejected")


ROUTES = [queue, request_page, approve, reject]
