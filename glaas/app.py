"""The web application: the API and the pages, the store opened for its lifetime, errors as
problem details (as pages outside the API), security headers, and the OpenAPI 3.1 schema (from
the same Structs) at /api/v1/openapi.json."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

import roar
from glaas import problems
from glaas.api import router
from glaas.headers import security_headers
from glaas.requests import DEFAULT_TTL, EXPIRE_EVERY, expire_due
from glaas.store import open_store
from glaas.web.routes import handlers as page_handlers
from glaas.web.routes import router as pages
from glaas.webhooks import Webhooks
from roar.errors import RoarFailure

MAX_BODY = 64 * 1024 * 1024
DB_ENV = "GLAAS_DB"  # how `glaas serve` tells its workers which database to use
URL_ENV = "GLAAS_PUBLIC_URL"  # and where people reach it
TTL_ENV = "GLAAS_APPROVAL_TTL"  # seconds a request's approval stays valid
HOOKS_ENV = "GLAAS_WEBHOOKS"  # webhook URLs, one a line
SECRET_ENV = "GLAAS_WEBHOOK_SECRET"  # the key of their HMAC signature


def create_app(
    db: str | None = None,
    pool_size: int = 10,
    public_url: str | None = None,
    approval_ttl: float = DEFAULT_TTL,
    webhooks: list[str] | None = None,
    webhook_secret: str | None = None,
) -> Litestar:
    """The app; `public_url` is where people reach it (the base of login links; https there
    makes the session cookie Secure), else the URL each request came to. `approval_ttl`:
    seconds a request's approval lasts; `webhooks`: URLs told of each request's changes."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.public_url = public_url.rstrip("/") if public_url else None
        app.state.secure_cookies = bool(public_url and public_url.startswith("https://"))
        app.state.approval_ttl = approval_ttl
        app.state.store = await open_store(db, pool_size)
        app.state.webhooks = Webhooks(app.state.store, list(webhooks or []), webhook_secret)
        gc.freeze()  # what start-up made lives on: full collections need not walk it again
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_sweep(app)), loop.create_task(app.state.webhooks.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await app.state.store.close()

    return Litestar(
        route_handlers=[router, pages()],
        lifespan=[lifespan],
        exception_handlers=page_handlers(problems.HANDLERS),
        before_send=[security_headers],
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="GLaaS: the roar lineage registry",
            version=roar.__version__,
            # Litestar's schema router answers unknown paths under it with an HTML page, so it
            # lives aside; the API serves the schema itself at /api/v1/openapi.json (glaas.api)
            path="/api/v1/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )


async def _sweep(app: Litestar) -> None:
    """Approvals that ran out expire (and their webhooks go) even when nobody looks."""
    while True:
        await asyncio.sleep(EXPIRE_EVERY)
        try:
            await expire_due(app.state.store, app.state.webhooks.send)
        except RoarFailure as e:  # the database is away for a while: the next sweep tries
            logging.getLogger("glaas").warning("expiring approvals failed: %s", e.message)


def from_env() -> Litestar:
    """The app for a uvicorn worker (`glaas serve` sets GLAAS_DB)."""
    env = os.environ
    return create_app(
        env.get(DB_ENV) or None,
        public_url=env.get(URL_ENV) or None,
        approval_ttl=float(env.get(TTL_ENV) or DEFAULT_TTL),
        webhooks=[u for u in env.get(HOOKS_ENV, "").splitlines() if u],
        webhook_secret=env.get(SECRET_ENV) or None,
    )
