"""The registry, read from the CLI: what `show`, `lineage` and `dag` print for a hash the local
store does not have (or with --remote), and what `roarctl auth` asks. Requests are signed when
a key is set up (then your own and your teams' records are seen too), else unsigned (public
records only). The registry's records become the views the local commands render
(roar.protocol), so a teammate's artifact reads like one of yours.

Loaded only by those commands: it imports httpx (roarctl run never does).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from roar import keys
from roar.config import UNSIGNED, ConfigError, RegistryConfig
from roar.errors import RoarFailure, Unauthorized
from roar.protocol import (
    ArtifactDetail,
    DagReply,
    DagStep,
    IORecord,
    JobDetail,
    JobRef,
    JobRow,
    LineageNode,
)
from roar.registry import (
    MIN_PREFIX,
    ArtifactEntry,
    Graph,
    JobEntry,
    JobSummary,
    SearchResult,
    SessionEntry,
)
from roar.remote import Registry, timeout, web_url
from roarctl.errors import RoarError

T = TypeVar("T")
MAX_DEPTH = 50  # the registry's deepest lineage walk (glaas.graph.MAX_DEPTH)
_HEX = re.compile(r"^[0-9a-f]+$")


def settings() -> RegistryConfig:
    from roar import config
    from roar.paths import paths

    try:
        return config.load(paths().config).registry
    except ConfigError as exc:
        raise RoarError(str(exc), "fix the file, or `roarctl config set` the value") from None


def configured() -> bool:
    return bool(settings().url)


def looks_like_hash(target: str) -> bool:
    t = target.strip().lower()
    return len(t) >= MIN_PREFIX and len(t) <= 64 and bool(_HEX.match(t))


def failure(exc: RoarFailure) -> RoarError:
    return RoarError(exc.message, exc.hint, code=exc.code)


def signing_for_reads(setting: str) -> keys.Signing | None:
    """The key that signs reads: the configured one; with none configured, the agent's first
    key if there is an agent, else none (unsigned: public records only)."""
    if setting.strip() == UNSIGNED:
        return None
    try:
        return keys.signing(setting)
    except Unauthorized as exc:
        if setting.strip():  # a key file was named: say what is wrong with it
            raise failure(exc) from None
        return None


class Remote:
    """A registry and an HTTP client for it (close it, or use `with`)."""

    def __init__(self, registry: Registry) -> None:
        import httpx

        self.registry = registry
        self.http = httpx.Client(timeout=timeout())

    @classmethod
    def open(cls, signing: keys.Signing | bool | None = True) -> Remote:
        """The configured registry; `signing` True: sign reads as `signing_for_reads` says."""
        cfg = settings()
        if not cfg.url:
            raise RoarError(
                "no registry: registry.url is not set",
                "roarctl config set registry.url https://glaas.example.org",
            )
        key = signing_for_reads(cfg.key) if signing is True else signing or None
        return cls(Registry(cfg.url, key))

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    @property
    def url(self) -> str:
        return self.registry.url

    def call(
        self,
        method: str,
        path: str,
        expect: type[T],
        params: dict[str, Any] | None = None,
        body: bytes = b"",
    ) -> T:
        import httpx

        try:
            request = self.registry.request(method, path, params, body)
            try:
                response = self.http.send(request)
            except httpx.HTTPError as exc:
                raise self.registry.unreachable(exc) from None
            return self.registry.answer(response, expect)
        except RoarFailure as exc:
            raise failure(exc) from None

    def get(self, path: str, expect: type[T], **params: Any) -> T:
        return self.call("GET", path, expect, params or None)

    # ------------------------------------------------------------ look-ups

    def find(self, target: str) -> tuple[str, str]:
        """(kind, id) of the one record a hash or prefix names in the registry."""
        ref = target.strip().lower()
        if not looks_like_hash(ref):
            raise RoarError(
                f"'{target}' is not a hash: the registry is searched by hash or id",
                f"give at least {MIN_PREFIX} hex digits",
            )
        found = self.get("/search", SearchResult, q=ref)
        if not found.matches:
            raise RoarError(
                f"no record {target} in the registry at {self.url}",
                "it is not registered, or not shared with you (`roarctl auth whoami`)",
                code="not-found",
            )
        if len(found.matches) > 1:
            names = ", ".join(f"{m.kind} {m.id[:16]}" for m in found.matches[:8])
            raise RoarError(
                f"'{target}' matches more than one record in the registry: {names}",
                "give more characters of the hash",
                code="ambiguous",
            )
        return found.matches[0].kind, found.matches[0].id

    def artifact(self, digest: str) -> tuple[ArtifactDetail, ArtifactEntry]:
        entry = self.get(f"/artifacts/{digest}", ArtifactEntry)
        up = self.get(f"/lineage/{digest}", Graph, direction="up", depth=1)
        down = self.get(f"/lineage/{digest}", Graph, direction="down", depth=1)
        detail = ArtifactDetail(
            hash=entry.hash,
            size=entry.size,
            paths=entry.paths,
            produced_by=_refs(up, digest, "output"),
            read_by=_refs(down, digest, "input"),
        )
        return detail, entry

    def job(self, job_id: str) -> tuple[JobDetail, JobEntry]:
        entry = self.get(f"/jobs/{job_id}", JobEntry)
        return job_detail(entry), entry

    def session(self, ref: str) -> SessionEntry:
        return self.get(f"/sessions/{ref}", SessionEntry)

    def lineage(self, ref: str, downstream: bool, depth: int) -> LineageNode:
        depth = min(depth, MAX_DEPTH) if depth else MAX_DEPTH
        graph = self.get(
            f"/lineage/{ref}", Graph, direction="down" if downstream else "up", depth=depth
        )
        return tree(graph, downstream)

    def dag(self, ref: str) -> tuple[DagReply, SessionEntry]:
        entry = self.session(ref)
        graph = self.get(f"/sessions/{entry.session.hash}/dag", Graph)
        return dag(graph, entry.session.project), entry

    def page(self, kind: str, ref: str) -> str:
        return web_url(self.url, kind, ref)


def check_request(ref: str) -> str:
    """The id of a training request this user may run for (`run --request`): approved, or
    claimed by them. Asks the registry; anything else refuses the run before it starts."""
    from roar.registry import Me, RequestEntry, request_ref

    n = request_ref(ref)
    if n is None:
        raise RoarError(f"not a request id: {ref!r}", "request ids look like R-12", exit_code=2)
    with Remote.open() as reg:
        entry = reg.call("GET", f"/requests/R-{n}", RequestEntry)
        me = reg.call("GET", "/auth/me", Me)
    if entry.state == "approved" or (entry.state == "claimed" and entry.claimed_by == me.user):
        return entry.id
    by = f" by {entry.claimed_by}" if entry.claimed_by else ""
    raise RoarError(
        f"{entry.id} is {entry.state}{by}: not run (a run is for an approved request, "
        "or one you claimed)",
        f"roarctl request show {entry.id}",
    )


# ---------------------------------------------------------------- registry records as views


def row(s: JobSummary, inputs: int = 0, outputs: int = 0) -> JobRow:
    return JobRow(
        id=s.id,
        command=s.command,
        project=None,
        status=s.status,  # type: ignore[arg-type]
        started=s.started,
        ended=s.ended,
        exit_code=s.exit_code,
        signal=None,
        inputs=inputs,
        outputs=outputs,
        step=_step(s.kind, s.step),
        kind="build" if s.kind == "build" else "run",
    )


def _step(kind: str, step: int | None) -> str | None:
    if step is None:
        return None
    return f"@B{step}" if kind == "build" else f"@{step}"


def job_detail(entry: JobEntry) -> JobDetail:
    job, ctx = entry.job, entry.job.context
    row = JobRow(
        id=entry.id,
        command=job.command,
        project=job.project,
        status=job.status,
        started=job.started,
        ended=job.ended,
        exit_code=job.exit_code,
        signal=job.signal,
        inputs=len(job.inputs),
        outputs=len(job.outputs),
        step=_step(job.kind, job.step),
        kind=job.kind,
    )
    return JobDetail(
        job=row,
        cwd=job.cwd,
        argv=job.argv,
        inputs=[IORecord(i.path, i.hash, i.size, previous=i.previous) for i in job.inputs],
        outputs=[IORecord(o.path, o.hash, o.size, previous=o.previous) for o in job.outputs],
        git=ctx.git,
        env=ctx.env,
        packages=ctx.packages,
        hardware=ctx.hardware,
        processes=ctx.processes,
        blind_spots=ctx.blind_spots,
        filtered=ctx.filtered,
        trackers=ctx.trackers,
        external=ctx.external,
        request=job.request,
        usage=job.usage,
    )


def _refs(graph: Graph, digest: str, role: str) -> list[JobRef]:
    jobs = {j.id: j for j in graph.jobs}
    path = next((a.path for a in graph.artifacts if a.hash == digest), "")
    found = [
        jobs[e.job]
        for e in graph.edges
        if e.artifact == digest and e.role == role and e.job in jobs
    ]
    found.sort(key=lambda j: j.started)
    return [JobRef(j.id, j.command, j.started, path) for j in found]


def tree(graph: Graph, downstream: bool) -> LineageNode:
    """A lineage graph as the tree `roarctl lineage` prints: a node met again is shown once
    more, marked (`...`), and not walked again."""
    jobs = {j.id: j for j in graph.jobs}
    paths = {a.hash: a.path for a in graph.artifacts}
    # upstream: artifact -> the jobs that wrote it -> their inputs; downstream the other way
    to_jobs: dict[str, list[str]] = {}
    to_artifacts: dict[str, list[str]] = {}
    # the job an input came from (a registry's `source`): upstream, the one writer of that
    # input to follow; downstream, the readers of an output that came from its job
    linked: dict[tuple[str, str], str] = {}
    for e in graph.edges:
        if e.role == "input" and e.source is not None:
            linked[(e.job, e.artifact)] = e.source
        if (e.role == "output") != downstream:
            to_jobs.setdefault(e.artifact, []).append(e.job)
        else:
            to_artifacts.setdefault(e.job, []).append(e.artifact)

    def jobs_of(artifact: str, parent: str | None) -> list[str]:
        found = to_jobs.get(artifact, [])
        if parent is None:  # the root
            return found
        if not downstream:
            src = linked.get((parent, artifact))
            return [src] if src in found else []
        return [j for j in found if linked.get((j, artifact)) == parent]

    def node(kind: str, key: str) -> LineageNode:
        if kind == "job":
            label = jobs[key].command if key in jobs else ""
            return LineageNode(kind="job", id=key, label=label)
        return LineageNode(kind="artifact", id=key, label=paths.get(key, ""))

    root_kind = "job" if graph.root in jobs else "artifact"
    root = node(root_kind, graph.root)
    seen: set[tuple[str, ...]] = {(root_kind, graph.root)}
    frontier: list[tuple[LineageNode, str | None]] = [(root, None)]  # (node, its parent job)
    while frontier:
        nxt = []
        for parent, above in frontier:
            if parent.kind == "artifact":
                children = [("job", j) for j in jobs_of(parent.id, above)]
            else:
                children = [("artifact", a) for a in to_artifacts.get(parent.id, [])]
            for kind, key in children:
                child = node(kind, key)
                parent.children.append(child)
                # a content is met again under another job: walked again (it may link
                # elsewhere there); a job met again is shown once more, marked
                if (kind, key) in seen and (kind == "job" or (kind, key, parent.id) in seen):
                    child.truncated = True
                else:
                    seen.add((kind, key))
                    if kind == "artifact":
                        seen.add((kind, key, parent.id))
                    nxt.append((child, parent.id if parent.kind == "job" else None))
        frontier = nxt
    return root


def dag(graph: Graph, project: str | None) -> DagReply:
    """A session's graph as the steps `roarctl dag` prints (the registry keeps no stale marks)."""
    order = sorted(graph.jobs, key=lambda j: (j.step is None, j.step or 0, j.started))
    ref = {j.id: _step(j.kind, j.step) or j.id[:12] for j in order}
    came = {(e.job, e.artifact): e.source for e in graph.edges if e.role == "input"}
    sizes = {a.hash: (a.path, a.size) for a in graph.artifacts}
    steps = []
    for j in order:
        ins = [e.artifact for e in graph.edges if e.job == j.id and e.role == "input"]
        outs = [e.artifact for e in graph.edges if e.job == j.id and e.role == "output"]
        up = [came[(j.id, a)] for a in ins]  # the job each input came from (glaas.graph)
        deps = dict.fromkeys(ref[u] for u in up if u is not None and u != j.id and u in ref)
        steps.append(
            DagStep(
                ref=ref[j.id],
                job=row(j, len(ins), len(outs)),
                depends_on=list(deps),
                inputs=[IORecord(sizes[a][0], a, sizes[a][1]) for a in ins if a in sizes],
                outputs=[IORecord(sizes[a][0], a, sizes[a][1]) for a in outs if a in sizes],
            )
        )
    return DagReply(session=None, project=project, steps=steps)
