"""The pages as the app mounts them: `router()` holds them; `handlers(api_handlers)` answers
errors as a page outside the API and as problem details inside it, so each failure is mapped in
one place per face."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router

from glaas.web import requests
from glaas.web.pages import ROUTES, identify
from glaas.web.render import failure_page
from roar.registry import API


def router() -> Router:
    return Router(path="/", route_handlers=[*ROUTES, *requests.ROUTES], before_request=identify)


def handlers(api: dict[Any, Any]) -> dict[Any, Any]:
    """Exception handlers: the API's (problem details) under /api, a page elsewhere."""

    def pick(key: Any) -> Any:
        def handle(request: Request[Any, Any, Any], exc: Exception) -> Any:
            path = request.url.path
            if path == API or path.startswith(API + "/"):
                return api[key](request, exc)
            return failure_page(request, exc)

        return handle

    return {key: pick(key) for key in api}
