"""Webhooks: each state change of a training request is POSTed to every configured URL
(`glaas serve --webhook URL`, repeatable), as Slack-compatible JSON (`text`, plus the request
itself), signed with HMAC-SHA256 over the body when a secret is set (`--webhook-secret`, header
`X-Glaas-Signature: sha256=<hex>`), and retried with exponential backoff on a connection error or
a non-2xx answer: ATTEMPTS tries, FIRST_DELAY seconds apart at first, doubling each time.

Delivery runs beside the request that made the change (the API answers at once); a server that
stops drops what it had not delivered yet, which it logs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from typing import Any

import msgspec

from glaas.requests import Change

ATTEMPTS = 6  # tries per delivery
FIRST_DELAY = 1.0  # seconds before the first retry; then 2, 4, 8, 16
TIMEOUT = 10.0  # seconds for one try
SIGNATURE = "X-Glaas-Signature"
log = logging.getLogger("glaas")


def text(change: Change) -> str:
    r = change.request
    who = change.actor or "the registry"
    spec = r.spec
    line = (
        f"{r.id} {change.action} by {who}: {spec.compute} for {spec.hours:g} h, "
        f"budget {spec.budget:g}; requested by {r.requester}, reviewer {r.reviewer}; now {r.state}"
    )
    last = r.events[-1] if r.events else None
    if last is not None and last.comment:
        line += f": {last.comment}"
    return line


def body(change: Change) -> bytes:
    request = msgspec.to_builtins(change.request)
    request.pop("events", None)
    payload: dict[str, Any] = {
        "text": text(change),
        "action": change.action,
        "actor": change.actor,
        "request": request,
    }
    return msgspec.json.encode(payload)


def signature(secret: str, content: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


class Webhooks:
    def __init__(
        self,
        urls: list[str],
        secret: str | None = None,
        attempts: int = ATTEMPTS,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self.urls = urls
        self.secret = secret
        self.attempts = attempts
        self.first_delay = first_delay
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, change: Change) -> None:
        if not self.urls:
            return
        content = body(change)
        headers = {
            "Content-Type": "application/json",
            "X-Glaas-Event": f"request.{change.action}",
            "X-Glaas-Delivery": uuid.uuid4().hex,
        }
        if self.secret:
            headers[SIGNATURE] = signature(self.secret, content)
        for url in self.urls:
            task = asyncio.get_running_loop().create_task(self._deliver(url, content, headers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, content: bytes, headers: dict[str, str]) -> None:
        import httpx

        delay = self.first_delay
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            for attempt in range(1, self.attempts + 1):
                try:
                    answer = await http.post(url, content=content, headers=headers)
                    if 200 <= answer.status_code < 300:
                        return
                    why = f"HTTP {answer.status_code}"
                except httpx.HTTPError as e:
                    why = f"{type(e).__name__}: {e}"
                if attempt == self.attempts:
                    log.error("webhook %s failed %d times, given up: %s", url, attempt, why)
                    return
                log.warning("webhook %s failed (%s), retried in %.0f s", url, why, delay)
                await asyncio.sleep(delay)
                delay *= 2

    async def close(self) -> None:
        if self._tasks:
            log.warning("%d webhook deliveries not done at shutdown, dropped", len(self._tasks))
        for task in list(self._tasks):
            task.cancel()
