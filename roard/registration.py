"""Registration: roard sends finished jobs to the registry (GLaaS), from an outbox in its store.

One way out for both ways in: with `registry.auto`, a run's finish queues its job in the finish's
own transaction (roard.runs), and `roarctl register` queues the whole upstream of its targets;
`Outbox.drain` sends what is queued, in batches. The background sender (`Outbox.run`, a task of
its own) drains a moment after each finish, so a burst of runs goes as one batch, and a run
never waits for the registry: a registry that is down costs a line in `roarctl status`.

A batch is `roar.canonical.for_registry` of each job (redacted again, paths made relative, no
file contents) with its session, signed with the user's SSH key (roar.keys). What the registry
took leaves the outbox with its registry id, in one transaction; sending a batch again after a
lost answer is harmless (the registry keys a job by its content: nothing is stored twice).
Timeouts, 5xx and refused signatures are retried with backoff (1 s doubling to 2 min); a batch
the registry refuses as invalid (400) is split until the job at fault is found, and that job is
held with the registry's reason until `roarctl register` asks for it again.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import msgspec

from roar import canonical, keys
from roar.config import RegistryConfig
from roar.errors import Invalid, NotFound, RoarFailure, Unauthorized
from roar.model import Job
from roar.protocol import (
    LineageNode,
    OutboxInfo,
    Progress,
    Register,
    Registered,
    RegisteredTarget,
    show_path,
    target_text,
)
from roar.registry import MAX_BATCH, Batch, Ingested, Registration, Session, Visibility
from roar.remote import Registry, timeout, visibility, web_url
from roard import bookkeeping, lineage, queries, sessions
from roard.logs import log
from roard.store import Store, records
from roard.store import outbox as rows

GATHER = 0.5  # seconds after a finish before sending: a burst of runs goes as one batch
MAX_BODY = 8 * 1024 * 1024  # bytes of one batch (the registry takes 64 MiB)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 120.0
IDLE_CHECK = 60.0  # seconds between looks at the outbox when nothing wakes the sender
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)

if TYPE_CHECKING:
    import httpx

SendProgress = Callable[[Progress], Awaitable[None]]


def auto(settings: RegistryConfig) -> bool:
    """Whether finished jobs are queued (roard.runs asks, at each finish)."""
    return settings.auto and bool(settings.url)


def _said(exc: RoarFailure) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


class Outbox:
    """The sender's state beside the store's outbox table: settings, backoff, one HTTP client."""

    def __init__(self, settings: RegistryConfig) -> None:
        self.settings = settings
        self.lock = anyio.Lock()  # one drain at a time: the background's or a register's
        self.failures = 0
        self.retry_at: float | None = None
        self.host = socket.gethostname()
        self.http: httpx.AsyncClient | None = None
        self._wake = anyio.Event()
        self._wake.set()  # look at the outbox once at start: it may hold a previous roard's jobs

    def configure(self, settings: RegistryConfig) -> None:
        """New settings (the config file changed): a failing registry is tried again at once."""
        if settings != self.settings:
            self.settings = settings
            self.failures, self.retry_at = 0, None
            self.wake()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------ the background sender

    async def run(self, store: Store) -> None:
        """Send what is queued whenever something is (a task of its own, until roard stops)."""
        try:
            while True:
                wait = IDLE_CHECK
                if self.retry_at is not None:
                    wait = max(0.0, self.retry_at - time.time())
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = anyio.Event()
                if not self.settings.url:
                    continue
                if self.retry_at is not None and time.time() < self.retry_at:
                    continue  # a finish during backoff: wait for the backoff
                await anyio.sleep(GATHER)
                try:
                    async with self.lock:
                        await self.drain(store, None)
                except RoarFailure:
                    pass  # recorded on the rows and in the backoff by drain
                except Exception:
                    log.exception("registry.sender_failed")
                    self._backoff()
        finally:
            if self.http is not None:
                with anyio.CancelScope(shield=True):
                    await self.http.aclose()

    def _backoff(self) -> None:
        self.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self.failures - 1))
        self.retry_at = time.time() + delay

    # ------------------------------------------------------------ sending

    async def drain(
        self,
        store: Store,
        among: Sequence[int] | None,
        agent: str | None = None,
        progress: SendProgress | None = None,
    ) -> tuple[int, int]:
        """Send the queued jobs (of `among` only, when given) until none is left: (sent, new).
        A failure other than a refused job stops it, is kept on the rows it was sending, and
        backs the background sender off; it is raised."""
        settings = self.settings
        total = len(among) if among is not None else 0
        done = sent = new = 0
        registry: Registry | None = None
        async for due in _due(store, among):
            try:
                if registry is None:
                    signing = await anyio.to_thread.run_sync(keys.signing, settings.key, agent)
                    if signing is None:
                        raise Unauthorized(
                            "cannot register: roar is logged out of the registry "
                            "(registry.key is none)",
                            "roarctl auth login",
                        )
                    registry = Registry(settings.url, signing)
                batches = await self._payloads(store, due, settings)
                for vis, regs, sessions_ in batches:
                    ok, fresh = await self._send(store, registry, regs, sessions_, vis, settings)
                    sent += ok
                    new += fresh
                    done += len(regs)
                    if progress is not None:
                        await progress(Progress(label="registering", done=done, total=total))
            except RoarFailure as exc:
                if self.settings is not settings:
                    # the config changed while this drain ran (`auth logout` removes the key
                    # file a drain begun at login reads): not the registry's answer to the
                    # settings now, so it is neither kept on the rows nor backed off for
                    self.wake()
                    raise
                await self._failed(store, [d.seq for d in due], exc)
                raise
        if sent:
            self.failures, self.retry_at = 0, None
        return sent, new

    async def _failed(self, store: Store, seqs: list[int], exc: RoarFailure) -> None:
        self._backoff()
        log.warning("registry.failed", error=exc.message, jobs=len(seqs), retry_in=self._wait())
        async with store.write() as tx:
            await rows.failed(tx, seqs, _said(exc), time.time(), hold=False)

    def _wait(self) -> float | None:
        return None if self.retry_at is None else round(self.retry_at - time.time(), 1)

    async def _payloads(
        self, store: Store, due: list[rows.Due], settings: RegistryConfig
    ) -> list[tuple[Visibility | None, list[tuple[int, Registration]], list[Session]]]:
        """The jobs as batches: one visibility each, at most MAX_BATCH jobs and MAX_BODY bytes."""
        found: list[tuple[rows.Due, Job]] = []
        gone = []
        for d in due:
            try:
                job = await records.read_job(store, d.job_id)
            except NotFound:  # removed (`roarctl pop`) since it was queued
                gone.append(d.seq)
                continue
            found.append((d, job))
        if gone:
            async with store.write() as tx:
                await rows.forget(tx, gone)
        of_session = await rows.sessions_of(store, [d.seq for d, _ in found]) if found else {}
        home = os.environ.get("HOME")

        def canonical_records() -> list[tuple[rows.Due, Registration, Session | None]]:
            out = []
            for d, job in found:
                session = None
                if d.seq in of_session:
                    sid, started, root = of_session[d.seq]
                    project = None if root is None else show_path(root)
                    session = canonical.session_record(self.host, started, sid, project)
                reg = Registration(
                    canonical.for_registry(job, home=home), session.hash if session else None
                )
                out.append((d, reg, session))
            return out

        made = await anyio.to_thread.run_sync(canonical_records)
        groups: dict[Visibility | None, list[tuple[rows.Due, Registration, Session | None]]] = {}
        for d, reg, session in made:
            vis = visibility(d.visibility or settings.visibility)
            groups.setdefault(vis, []).append((d, reg, session))
        batches: list[tuple[Visibility | None, list[tuple[int, Registration]], list[Session]]] = []
        for vis, members in groups.items():
            regs: list[tuple[int, Registration]] = []
            sess: dict[str, Session] = {}
            size = 0
            for d, reg, session in members:
                grows = len(msgspec.json.encode(reg)) + 200
                if regs and size + grows > MAX_BODY:
                    batches.append((vis, regs, list(sess.values())))
                    regs, sess, size = [], {}, 0
                regs.append((d.seq, reg))
                if session is not None:
                    sess[session.hash] = session
                size += grows
            if regs:
                batches.append((vis, regs, list(sess.values())))
        return batches

    async def _send(
        self,
        store: Store,
        registry: Registry,
        regs: list[tuple[int, Registration]],
        sessions_: list[Session],
        vis: Visibility | None,
        settings: RegistryConfig,
    ) -> tuple[int, int]:
        """One batch: (jobs the registry took, how many were new to it). A batch refused as
        invalid is split until the job at fault is found; that job is held."""
        batch = Batch(
            jobs=[r for _, r in regs],
            sessions=sessions_,
            visibility=vis,
            team=(settings.team or None) if vis == "team" else None,
        )
        body = msgspec.json.encode(batch)
        began = time.monotonic()
        try:
            answer = await self._post(registry, body)
        except Invalid as exc:
            if len(regs) == 1:
                seq = regs[0][0]
                log.warning("registry.refused", job=regs[0][1].job.id, error=exc.message)
                async with store.write() as tx:
                    await rows.failed(tx, [seq], _said(exc), time.time(), hold=True)
                return 0, 0
            half = len(regs) // 2
            a, b = regs[:half], regs[half:]
            took_a, new_a = await self._send(store, registry, a, _of(a, sessions_), vis, settings)
            took_b, new_b = await self._send(store, registry, b, _of(b, sessions_), vis, settings)
            return took_a + took_b, new_a + new_b
        if len(answer.ids) != len(regs):
            raise Invalid(f"the registry answered {len(answer.ids)} ids for {len(regs)} jobs")
        took = [(seq, rid) for (seq, _), rid in zip(regs, answer.ids, strict=True)]
        async with store.write() as tx:
            await rows.sent(tx, registry.url, took, time.time())
        log.info(
            "registry.sent",
            jobs=len(regs),
            new=answer.jobs.new,
            known=answer.jobs.known,
            artifacts=answer.artifacts.new,
            bytes=len(body),
            seconds=round(time.monotonic() - began, 3),
        )
        return len(regs), answer.jobs.new

    async def _post(self, registry: Registry, body: bytes) -> Ingested:
        request = await anyio.to_thread.run_sync(
            lambda: registry.request("POST", "/ingest", body=body)
        )
        import httpx  # here, not at start-up: ~120 ms that a roard without a registry never needs

        if self.http is None:  # one client, its connections kept alive between batches
            self.http = httpx.AsyncClient(timeout=timeout())
        try:
            response = await self.http.send(request)
        except httpx.HTTPError as exc:
            raise registry.unreachable(exc) from None
        return registry.answer(response, Ingested)

    # ------------------------------------------------------------ status

    async def info(self, store: Store) -> OutboxInfo | None:
        summary = await rows.summary(store, self.settings.url)
        if not self.settings.url and not summary.queued and not summary.held:
            return None
        retry = self.retry_at if summary.queued and self.retry_at else None
        return OutboxInfo(
            url=self.settings.url,
            auto=self.settings.auto,
            queued=summary.queued,
            held=summary.held,
            last_success=summary.last_success,
            last_error=summary.last_error,
            last_error_at=summary.last_error_at,
            retry_at=retry,
        )


async def _due(store: Store, among: Sequence[int] | None) -> AsyncIterator[list[rows.Due]]:
    """The queued jobs, a batch at a time (of `among` only, when given)."""
    if among is None:
        while due := await rows.due(store, MAX_BATCH):
            yield due
        return
    for i in range(0, len(among), MAX_BATCH):
        if due := await rows.due(store, MAX_BATCH, among[i : i + MAX_BATCH]):
            yield due


def _of(regs: list[tuple[int, Registration]], sessions_: list[Session]) -> list[Session]:
    """The sessions these jobs belong to."""
    wanted = {r.session for _, r in regs}
    return [s for s in sessions_ if s.hash in wanted]


# ---------------------------------------------------------------- roarctl register


async def register(
    store: Store, outbox: Outbox, req: Register, send: SendProgress | None
) -> Registered:
    """Queue the targets' upstream jobs (those not yet at this registry) and send them now."""
    settings = outbox.settings
    if not settings.url:
        raise Invalid(
            "no registry to register with: registry.url is not set",
            "roarctl config set registry.url https://glaas.example.org",
        )
    if not (req.targets or req.session or req.all):
        raise Invalid("name what to register: TARGET..., --session or --all")
    wanted: dict[str, None] = {}  # job ids, in order
    named: list[tuple[str, str, str, list[str]]] = []  # target, kind, key, its jobs
    for target in map(target_text, req.targets):
        kind, key = await queries.resolve(store, target, req.cwd)
        tree = await lineage.walk(store, kind, key, False, 0)
        upstream = list(dict.fromkeys(_jobs(tree)))
        named.append((target, kind, key, upstream))
        wanted.update(dict.fromkeys(upstream))
    session: int | None = None
    if req.session:
        project_id, _ = await bookkeeping.project_of(store, req.cwd)
        session = await sessions.current(store, project_id)
        wanted.update(dict.fromkeys(await rows.finished(store, session)))
    if req.all:
        wanted.update(dict.fromkeys(await rows.finished(store)))
    seqs = await rows.seqs_of(store, list(wanted))
    before = await rows.registered(store, settings.url, list(seqs.values()))
    fresh = [seq for seq in seqs.values() if seq not in before]
    async with store.write() as tx:
        await rows.queue(tx, fresh, req.visibility, time.time())

    listening = send is not None

    async def progress(p: Progress) -> None:
        nonlocal listening
        if listening and send is not None:
            try:
                await send(p)
            except _GONE:  # the client stopped waiting: the jobs are sent all the same
                listening = False

    try:
        async with outbox.lock:
            sent, new = await outbox.drain(store, fresh, req.agent, progress)
    except RoarFailure as exc:
        left = await rows.pending(store, fresh)
        if left and not isinstance(exc, Invalid):
            exc.hint = (
                f"{left} job(s) stay queued and roard sends them when it can "
                "(`roarctl status` shows the outbox)" + (f"; {exc.hint}" if exc.hint else "")
            )
        raise
    held = await rows.held(store, fresh)
    if held:
        raise Invalid(
            f"the registry refused {len(held)} job(s): {held[0][1]}",
            "they stay in the outbox (held); fix the cause and run `roarctl register` again",
        )
    now_at = await rows.registered(store, settings.url, list(seqs.values()))
    by_job = {job_id: now_at.get(seq) for job_id, seq in seqs.items()}
    targets: list[RegisteredTarget] = []
    skipped: list[str] = []
    for target, what, key, jobs_of in named:
        if what == "job":
            rid = by_job.get(key)
            if rid is None:
                skipped.append(f"{target}: job {key} has not finished")
            else:
                url = web_url(settings.url, "job", rid)
                targets.append(RegisteredTarget(target, "job", rid, url))
        elif not any(by_job.get(j) for j in jobs_of):
            skipped.append(f"{target}: no recorded job made {key[:12]}: nothing to register")
        else:
            url = web_url(settings.url, "artifact", key)
            targets.append(RegisteredTarget(target, "artifact", key, url))
    if session is not None and any(by_job.values()):
        started = await rows.session_started(store, session)
        digest = canonical.session_hash(outbox.host, started, session)
        url = web_url(settings.url, "session", digest)
        targets.append(RegisteredTarget("--session", "session", digest, url))
    return Registered(
        url=settings.url,
        jobs=len(seqs),
        sent=sent,
        new=new,
        targets=targets,
        skipped=skipped,
    )


def _jobs(tree: LineageNode) -> list[str]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if node.kind == "job":
            found.append(node.id)
        stack.extend(node.children)
    return found
