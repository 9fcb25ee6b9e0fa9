"""The web pages' login, without passwords: a signed request (`roarctl auth web`) gets a one-time
link; opening it trades the link for a session cookie (HttpOnly, SameSite=Lax, with an expiry)
that the pages read to know who is looking; logging out ends the session.

Only SHA-256 digests of tokens are stored, so the database holds nothing a browser could present.
A session names the key that asked for its link: removing that key, or its user, ends it. Forms
that change state carry a CSRF token derived from the session's own secret (HMAC), which a page
of another site cannot read or compute."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from glaas.store import Account, Store
from roar.registry import WebLink

LINK_TTL = 600  # seconds a one-time link stays valid
SESSION_TTL = 12 * 3600  # seconds a browser stays signed in
COOKIE = "glaas_session"
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _valid(token: str | None) -> bool:
    return token is not None and TOKEN.fullmatch(token) is not None


async def new_link(store: Store, account: Account, base_url: str) -> WebLink:
    token = secrets.token_urlsafe(32)
    expires = int(time.time()) + LINK_TTL
    await store.add_web_link(_digest(token), account.key, expires)
    return WebLink(f"{base_url.rstrip('/')}/login/{token}", expires)


async def open_session(store: Store, link_token: str) -> str | None:
    """A new session's cookie value for a fresh link (None: unknown, expired or used)."""
    if not _valid(link_token):
        return None
    now = time.time()
    fingerprint = await store.take_web_link(_digest(link_token), now)
    if fingerprint is None or await store.account(fingerprint) is None:
        return None
    cookie = secrets.token_urlsafe(32)
    await store.add_web_session(_digest(cookie), fingerprint, now, SESSION_TTL)
    return cookie


async def session_account(store: Store, cookie: str | None) -> Account | None:
    """Who a session cookie stands for (None: signed out, expired, or the key is gone)."""
    if not _valid(cookie):
        return None
    assert cookie is not None
    found = await store.web_session(_digest(cookie), time.time())
    return None if found is None else found[0]


async def end_session(store: Store, cookie: str | None) -> None:
    if _valid(cookie):
        assert cookie is not None
        await store.end_web_session(_digest(cookie))


def csrf_token(cookie: str) -> str:
    """The token a signed-in page's forms carry: bound to the session, unguessable without it."""
    return hmac.new(cookie.encode(), b"glaas-csrf-v1", hashlib.sha256).hexdigest()


def csrf_ok(cookie: str | None, sent: str | None) -> bool:
    if not _valid(cookie) or not sent:
        return False
    assert cookie is not None
    return hmac.compare_digest(csrf_token(cookie), sent)
