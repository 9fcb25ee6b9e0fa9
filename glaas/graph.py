"""Graphs of jobs and artifacts: lineage up or down from a record, to a depth, and a session's
DAG. Each step is one query per level over the visible jobs only, so a record that was not shared
with the reader is neither shown nor walked through."""

from __future__ import annotations

from glaas.store import Store
from roar.errors import NotFound
from roar.registry import Direction, Edge, Graph, GraphArtifact, JobSummary, Kind

MAX_DEPTH = 50
MAX_JOBS = 1000  # a neighbourhood, never the whole world: the walk stops here (truncated)
INPUT, OUTPUT = 0, 1


class _Builder:
    def __init__(self) -> None:
        self.jobs: set[str] = set()
        self.paths: dict[str, str] = {}
        self.edges: dict[tuple[str, str, int], None] = {}

    def edge(self, job: str, digest: str, role: int, path: str) -> None:
        self.edges[(job, digest, role)] = None
        self.paths.setdefault(digest, path)

    async def graph(self, store: Store, root: str, truncated: bool) -> Graph:
        sizes = await store.sizes(list(self.paths))
        summaries: list[JobSummary] = await store.summaries(sorted(self.jobs))
        return Graph(
            root=root,
            jobs=summaries,
            artifacts=[GraphArtifact(h, sizes.get(h, 0), p) for h, p in sorted(self.paths.items())],
            edges=[
                Edge(j, h, "output" if r == OUTPUT else "input") for j, h, r in sorted(self.edges)
            ],
            truncated=truncated,
        )


async def lineage(
    store: Store,
    kind: Kind,
    root: str,
    direction: Direction,
    depth: int,
    viewer: int,
    max_jobs: int = MAX_JOBS,
) -> Graph:
    """What made `root` (up) or what was made from it (down), `depth` jobs deep, at most
    `max_jobs` jobs (then `truncated`)."""
    g = _Builder()
    # the side of a job we follow: up, a job's inputs (and who wrote them); down, its outputs
    follow, meet = (INPUT, OUTPUT) if direction == "up" else (OUTPUT, INPUT)
    frontier_jobs: set[str] = set()
    frontier: set[str] = set()
    if kind == "job":
        frontier_jobs = {root}
    else:
        entry = await store.artifact(root, viewer)
        if entry is None:
            raise NotFound(f"no artifact {root}")
        g.paths[root] = entry.paths[0]
        frontier = {root}
    seen_hashes = set(frontier)
    truncated = False
    for level in range(depth):
        if level or kind != "job":
            rows = await store.io_of_artifacts(sorted(frontier), meet, viewer, max_jobs * 4)
            truncated = len(rows) == max_jobs * 4
            frontier_jobs = set()
            for job, digest, path in rows:
                g.edge(job, digest, meet, path)
                if job not in g.jobs:
                    frontier_jobs.add(job)
        if len(g.jobs) + len(frontier_jobs) > max_jobs:
            frontier_jobs = set(sorted(frontier_jobs)[: max_jobs - len(g.jobs)])
            truncated = True
        g.jobs |= frontier_jobs
        if not frontier_jobs:
            break
        frontier = set()
        for job, _, digest, path, _ in await store.io_of_jobs(sorted(frontier_jobs), follow):
            g.edge(job, digest, follow, path)
            if digest not in seen_hashes:
                seen_hashes.add(digest)
                frontier.add(digest)
        if truncated or not frontier:
            break
    return await g.graph(store, root, truncated)


async def session_dag(store: Store, session: str, viewer: int) -> Graph:
    jobs = await store.session_jobs(session, viewer)
    if not jobs:
        raise NotFound(f"no session {session}")
    truncated = len(jobs) > MAX_JOBS
    g = _Builder()
    g.jobs = {j.id for j in jobs[:MAX_JOBS]}
    for job, role, digest, path, _ in await store.io_of_jobs(sorted(g.jobs)):
        g.edge(job, digest, role, path)
    return await g.graph(store, session, truncated)
