"""Pages out: one Jinja environment on glaas/templates (autoescaped, strict about undefined
names), the filters the templates share, versioned static URLs, and the response of a page or of
an error (the HTML face of glaas.problems: same statuses, same messages)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import time
from importlib import resources
from typing import Any

import jinja2
from litestar import Request, Response
from litestar.exceptions import HTTPException

from glaas import login
from glaas.problems import STATUS, TITLES, log
from glaas.web import links
from roar.errors import RoarFailure
from roar.registry import MIN_PREFIX

STATIC_FILES = ("glaas.css", "glaas.js", "dag.js", "favicon.svg")
T0 = "glaas.t0"  # scope state: when the request reached the page's handler


@functools.cache
def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, version): the URL carries the version, so a cached copy is never
    stale."""
    folder = resources.files("glaas") / "static"
    out = {}
    for name in STATIC_FILES:
        data = (folder / name).read_bytes()
        out[name] = (data, hashlib.sha256(data).hexdigest()[:12])
    return out


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_files()[name][1]}"


def short(value: str | None, n: int = 12) -> str:
    if not value:
        return ""
    return value if len(value) <= n else value[:n] + "…"


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        dt = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return ""


def duration(started: float | None, ended: float | None) -> str:
    if started is None or ended is None:
        return ""
    s = max(0.0, ended - started)
    if s < 60:
        return f"{s:.2f} s"
    m, s = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("glaas", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(short=short, size=size, when=when, iso=iso)
    env.globals.update(
        static=static_url,
        duration=duration,
        commit_url=links.commit_url,
        web_url=links.web_url,
        min_prefix=MIN_PREFIX,
    )
    return env


def page(
    request: Request[Any, Any, Any],
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response[bytes]:
    viewer = request.scope["state"].get("viewer")
    context.setdefault("query", "")
    cookie = request.cookies.get(login.COOKIE) if viewer is not None else None
    html = (
        environment()
        .get_template(template)
        .render(
            viewer=viewer,
            csrf=login.csrf_token(cookie) if cookie else "",
            path=request.url.path,
            **context,
        )
    )
    started = request.scope["state"].get(T0)
    out = dict(headers or {})
    if started is not None:
        out["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return Response(
        html.encode(), status_code=status, media_type="text/html; charset=utf-8", headers=out
    )


def error_page(
    request: Request[Any, Any, Any], status: int, detail: str, hint: str | None = None, **ctx: Any
) -> Response[bytes]:
    return page(
        request,
        "error.html",
        status,
        title=TITLES.get(status, "Error"),
        code=status,
        detail=detail,
        hint=hint,
        **ctx,
    )


def failure_page(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """An exception raised while making a page, as a page (the HTML face of glaas.problems)."""
    if isinstance(exc, RoarFailure):
        status = STATUS.get(exc.code, 500)
        if status >= 500:
            log.error("page failed: %s", exc.message)
        candidates = getattr(exc, "candidates", None)
        if candidates:
            return page(request, "search.html", 409, matches=candidates, more=False)
        return error_page(request, status, exc.message, exc.hint)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            log.error("page failed: %s", exc.detail)
            return error_page(request, status, "internal error: see the server's log")
        detail = "no such page" if status == 404 else str(exc.detail)[:300]
        return error_page(request, status, detail)
    log.exception("unexpected error", exc_info=exc)
    return error_page(request, 500, "internal error: see the server's log")
