"""Webhooks: each state change of a training request (and its going over budget) is POSTed to
every configured URL (`glaas serve --webhook URL`, repeatable), as Slack-compatible JSON
(`text`, with &, <, > escaped as Slack requires, plus the request itself).

Each POST carries `X-Glaas-Delivery` (a random id of the delivery, the same on each of its
tries) and `X-Glaas-Timestamp` (unix seconds when this try was sent). With a secret
(`--webhook-secret`) it is signed over both and the body, the content Standard Webhooks signs
(`id.timestamp.body`): `X-Glaas-Signature: sha256=<hex HMAC-SHA256(secret, f"{delivery}.
{timestamp}." + body)>`, so a captured delivery replayed later is refused by a receiver that
checks the time (README, "Webhooks", has the receiver's few lines).

Deliveries are rows of the registry's database (`webhook_deliveries`), written when the change
is made, so a server that stops or restarts delivers them when it is back. A row names its hook
by `hook_id` (the URL's scheme and host and a hash of the whole URL), never by the URL, whose
path is a secret for Slack, Discord and most others: the server finds the URL in its own list.
Each worker runs a deliverer that takes due rows (one worker per row: a compare-and-set on
`taken_until`) and POSTs them; a connection error, no whole answer in TIMEOUT seconds, or a
non-2xx answer is tried again after FIRST_DELAY seconds, doubling, ATTEMPTS tries in all; then
it is given up, with its last error kept."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

import msgspec

from glaas.hook_names import ORIGIN, hook_id
from glaas.requests import Change
from glaas.store import Store
from roar.errors import RoarFailure

ATTEMPTS = 6  # tries per delivery
FIRST_DELAY = 1.0  # seconds before the first retry; then 2, 4, 8, 16
TIMEOUT = 10.0  # seconds for one try
TAKE = 60.0  # seconds a worker holds a delivery it is trying
POLL = 5.0  # seconds between looks for due deliveries when nothing wakes the deliverer
BATCH = 20  # deliveries taken at a time
SIGNATURE = "X-Glaas-Signature"
DELIVERY = "X-Glaas-Delivery"
TIMESTAMP = "X-Glaas-Timestamp"
log = logging.getLogger("glaas")


def text(change: Change) -> str:
    r = change.request
    who = change.actor or "the registry"
    spec = r.spec
    if change.action == "over_budget":  # glaas.requests.link_runs, once per request
        marks = [e.comment for e in r.events if e.action == "over_budget" and e.comment]
        said = marks[-1] if marks else f"spent {r.spent:.2f} of budget {spec.budget:g}"
        return slack_escape(
            f"{r.id} went over budget: {said} ({spec.compute} for {spec.hours:g} h); "
            f"requested by {r.requester}, reviewer {r.reviewer}; now {r.state}"
        )
    line = (
        f"{r.id} {change.action} by {who}: {spec.compute} for {spec.hours:g} h, "
        f"budget {spec.budget:g}; requested by {r.requester}, reviewer {r.reviewer}; now {r.state}"
    )
    last = r.events[-1] if r.events else None
    if last is not None and last.comment and last.action == change.action:
        line += f": {last.comment}"
    return slack_escape(line)


def slack_escape(words: str) -> str:
    """Slack's escaping for `text`: what people wrote never becomes a mention (`<!channel>`)
    or a link (`<http://x|label>`)."""
    return words.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body(change: Change) -> bytes:
    request = msgspec.to_builtins(change.request)
    request.pop("events", None)
    request.pop("runs", None)  # read as the actor: their private runs are no one else's
    payload: dict[str, Any] = {
        "text": text(change),
        "action": change.action,
        "actor": change.actor,
        "request": request,
    }
    return msgspec.json.encode(payload)


def signature(secret: str, delivery: str, timestamp: int, content: bytes) -> str:
    signed = f"{delivery}.{timestamp}.".encode() + content
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _scrub(words: str, url: str, hook: str) -> str:
    """`words` without `url`, nor its path and query (the secret part) alone."""
    m = ORIGIN.match(url)
    secret = url[m.end() :] if m else url
    words = words.replace(url, hook)
    return words.replace(secret, "/...") if len(secret) > 1 else words


class Webhooks:
    def __init__(
        self,
        store: Store,
        urls: list[str],
        secret: str | None = None,
        attempts: int = ATTEMPTS,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self.store = store
        self.urls = {hook_id(url): url for url in urls}  # one delivery per hook, even if repeated
        self.secret = secret
        self.attempts = attempts
        self.first_delay = first_delay
        self._wake = asyncio.Event()

    async def send(self, change: Change) -> None:
        """Queue the change for every URL (in the database: it survives a restart)."""
        if not self.urls:
            return
        content = body(change).decode()
        now = time.time()
        async with self.store.transaction() as tx:
            for hook in self.urls:
                await tx.execute(
                    "INSERT INTO webhook_deliveries (hook, delivery, event, body, created, "
                    "next_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    hook,
                    uuid.uuid4().hex,
                    f"request.{change.action}",
                    content,
                    now,
                )
        self._wake.set()

    async def run(self) -> None:
        """The deliverer: until cancelled, POST what is due."""
        import httpx

        if not self.urls:
            return
        # httpx logs each request's whole URL at INFO ("HTTP Request: POST https://hooks.slack
        # .com/services/T../B../<secret>"), which uvicorn's log level lets through
        logging.getLogger("httpx").setLevel(logging.WARNING)
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            while True:
                self._wake.clear()
                try:
                    taken = await self._take()
                except RoarFailure as e:  # the database is away: look again later
                    log.warning("webhooks: cannot read the deliveries: %s", e.message)
                    taken = []
                if taken:
                    await asyncio.gather(*(self._post(http, *row) for row in taken))
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL)
                except TimeoutError:
                    pass

    async def _take(self) -> list[tuple[Any, ...]]:
        now = time.time()
        hooks = ", ".join(f"${i + 2}" for i in range(len(self.urls)))
        due = await self.store.fetch(
            "SELECT id FROM webhook_deliveries WHERE done IS NULL AND next_at <= $1 AND "
            f"(taken_until IS NULL OR taken_until < $1) AND hook IN ({hooks}) "
            f"ORDER BY id LIMIT {BATCH}",
            now,
            *self.urls,
        )
        taken = []
        for (did,) in due:
            async with self.store.transaction() as tx:
                rows = await tx.fetch(
                    "UPDATE webhook_deliveries SET taken_until = $1 WHERE id = $2 AND "
                    "done IS NULL AND (taken_until IS NULL OR taken_until < $3) "
                    "RETURNING id, hook, delivery, event, body, attempts",
                    now + TAKE,
                    did,
                    now,
                )
            taken.extend(rows)
        return taken

    async def _post(
        self,
        http: Any,
        did: int,
        hook: str,
        delivery: str,
        event: str,
        content: str,
        attempts: int,
    ) -> None:
        import httpx

        data = content.encode()
        sent = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Glaas-Event": event,
            DELIVERY: delivery,
            TIMESTAMP: str(sent),
        }
        if self.secret:
            headers[SIGNATURE] = signature(self.secret, delivery, sent, data)
        try:  # one deadline for the whole try: httpx's timeout is per read, so an answer
            # trickled byte by byte would hold this batch (and every delivery after it) forever
            async with asyncio.timeout(TIMEOUT):
                answer = await http.post(self.urls[hook], content=data, headers=headers)
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
        except httpx.HTTPError as e:  # its text may name the URL: said as the hook instead
            error = _scrub(f"{type(e).__name__}: {e}", self.urls[hook], hook)[:300]
        except TimeoutError:
            error = f"no whole answer in {TIMEOUT:g} s"
        tries = attempts + 1
        now = time.time()
        shown = hook  # never the URL: a Slack or Discord hook's URL ends in its secret
        try:
            if error is None:
                await self.store.execute(
                    "UPDATE webhook_deliveries SET done = $1, attempts = $2, taken_until = NULL "
                    "WHERE id = $3",
                    now,
                    tries,
                    did,
                )
            elif tries >= self.attempts:
                log.error("webhook %s failed %d times, given up: %s", shown, tries, error)
                await self.store.execute(
                    "UPDATE webhook_deliveries SET done = $1, attempts = $2, error = $3, "
                    "taken_until = NULL WHERE id = $4",
                    now,
                    tries,
                    f"given up: {error}",
                    did,
                )
            else:
                delay = self.first_delay * 2 ** (tries - 1)
                log.warning("webhook %s failed (%s), tried again in %.0f s", shown, error, delay)
                await self.store.execute(
                    "UPDATE webhook_deliveries SET attempts = $1, error = $2, next_at = $3, "
                    "taken_until = NULL WHERE id = $4",
                    tries,
                    error,
                    now + delay,
                    did,
                )
        except RoarFailure as e:  # kept as taken: tried again once TAKE has passed
            log.warning("webhooks: cannot record a delivery: %s", e.message)
