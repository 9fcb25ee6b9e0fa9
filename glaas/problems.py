"""Every error leaves as RFC 9457 problem details (application/problem+json), mapped here and
nowhere else: roar's failures by their code, Litestar's own HTTP errors (bad query values, a body
that does not decode, unknown routes) by their status, anything else as a logged 500 that says
nothing of its insides."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from roar.errors import ErrorCode, RoarFailure
from roar.registry import Problem

MEDIA_TYPE = "application/problem+json"
STATUS: dict[ErrorCode, int] = {
    "bad-frame": 400,
    "version": 400,
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not-found": 404,
    "ambiguous": 409,
    "conflict": 409,
    "busy": 503,
    "store": 503,
    "internal": 500,
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Ambiguous",
    413: "Request too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Unavailable",
}
_CODES: dict[int, ErrorCode] = {400: "invalid", 401: "unauthorized", 403: "forbidden"}
_CODES |= {404: "not-found", 409: "ambiguous", 503: "store"}
log = logging.getLogger("glaas")


def problem(status: int, detail: str, code: ErrorCode, **extra: Any) -> Response[bytes]:
    body = Problem(
        type=f"https://roar.dev/problems/{code}",
        title="Conflict" if code == "conflict" else TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        **extra,
    )
    headers = {"WWW-Authenticate": 'SSHSIG realm="glaas"'} if status == 401 else None
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def from_failure(_: Request[Any, Any, Any], exc: RoarFailure) -> Response[bytes]:
    extra: dict[str, Any] = {"hint": exc.hint}
    if candidates := getattr(exc, "candidates", None):
        extra["candidates"] = candidates
    status = STATUS.get(exc.code, 500)
    if status >= 500:
        log.error("request failed: %s", exc.message)
    return problem(status, exc.message, exc.code, **extra)


def from_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict) and first.get("message"):
            where = first.get("key") or first.get("source") or ""
            detail = f"{detail}: {where + ': ' if where else ''}{first['message']}"
    if status >= 500:
        log.error("request failed: %s", detail)
        detail = "internal error"
    return problem(
        status, str(detail)[:500], _CODES.get(status, "invalid" if status < 500 else "internal")
    )


def from_anything(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "internal error: see the server's log", "internal")


HANDLERS: dict[Any, Any] = {
    RoarFailure: from_failure,
    HTTPException: from_http,
    Exception: from_anything,
}
HANDLERS |= {404: from_http, 405: from_http}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI description of a route's error responses."""
    return {
        s: ResponseSpec(data_container=Problem, description=TITLES[s], media_type=MEDIA_TYPE)
        for s in statuses
    }
