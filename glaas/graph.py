"""Graphs of jobs and artifacts: lineage up or down from a record, to a depth, and a session's
DAG. Each step is one query per level over the visible jobs only, so a record that was not shared
with the reader is neither shown nor walked through.

Jobs are linked by roard's producer rule (roard/sources.py), so the registry's lineage is the
one `roarctl lineage` shows locally. The same bytes are often written by several jobs (their
maker, a `cp` of them, a re-run), so an input (job R read content H at path P) is linked to its
`source`: of the jobs that wrote H and started before R (on a tie, the smaller job id), the
latest that wrote H at P; else the earliest that wrote H elsewhere without reading H (a copy
passes content on, it does not make it), and only if H is not empty. The `producer` of a content
(where a walk from a hash starts) is the earliest job that wrote it without reading it. Every
link points back in time, so no walk loops and no DAG shows a step depending on a later one.
Unlike roard, the registry cannot tell whether P was a committed file of R's git state (it holds
no repository), so a job elsewhere may source such a file; and it links across projects (what a
teammate registered is what the registry is for)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from glaas.store import Store
from roar.errors import NotFound
from roar.registry import Direction, Edge, Graph, GraphArtifact, JobSummary, Kind

MAX_DEPTH = 50
MAX_JOBS = 1000  # a neighbourhood, never the whole world: the walk stops here (truncated)
INPUT, OUTPUT = 0, 1


class Timed(NamedTuple):
    """One input or output of a job, with the job's start (glaas.store's `io_timed` row)."""

    job: str
    started: float
    hash: str
    path: str
    copy: bool  # a write by a job that also read the content (a copy of it)


Read = tuple[str, float, str, str, int]  # (reader, its start, hash, path, the content's size)


def source(
    writers: Iterable[Timed], reader: str, started: float, path: str, size: int
) -> str | None:
    """The job a read of content (of `size` bytes) at `path` by `reader` (started at
    `started`) links to, among `writers` of that content (None: no recorded job made it)."""
    me = (started, reader)
    at_path: tuple[float, str] | None = None  # the latest writer at `path` before the reader
    made: tuple[float, str] | None = None  # the earliest elsewhere that did not copy it
    for w in writers:  # one pass: a session page links thousands of inputs
        order = (w.started, w.job)
        if order >= me:
            continue
        if w.path == path:
            if at_path is None or order > at_path:
                at_path = order
        elif not w.copy and size > 0 and (made is None or order < made):
            made = order
    found = at_path or made
    return None if found is None else found[1]


def producer(writers: Iterable[Timed]) -> str | None:
    """The earliest of a content's writers that did not read it (None: only copies)."""
    made = [(w.started, w.job) for w in writers if not w.copy]
    return min(made)[1] if made else None


def by_hash(rows: Iterable[Timed]) -> dict[str, list[Timed]]:
    found: dict[str, list[Timed]] = {}
    for row in rows:
        found.setdefault(row.hash, []).append(row)
    return found


async def _timed(
    store: Store,
    hashes: Iterable[str],
    role: int,
    viewer: int,
    limit: int,
    until: float | None = None,
    copies: bool = True,
) -> tuple[list[Timed], bool]:
    """The visible reads or writes of these contents (by jobs started at `until` or before),
    and whether `limit` cut them."""
    rows = await store.io_timed(sorted(set(hashes)), role, viewer, limit, until, copies)
    return [Timed(*r) for r in rows], len(rows) >= limit


def _link(reads: Iterable[Read], writers: Iterable[Timed]) -> dict[tuple[str, str, str], Timed]:
    """(reader, hash, path) -> the writer each read comes from (`source`), for those that
    come from one."""
    found = by_hash(writers)
    out: dict[tuple[str, str, str], Timed] = {}
    for job, started, digest, path, size in reads:
        candidates = found.get(digest)
        if candidates:
            src = source(candidates, job, started, path, size)
            if src is not None:
                out[(job, digest, path)] = next(w for w in candidates if w.job == src)
    return out


async def _sources(
    store: Store, reads: list[Read], viewer: int, limit: int
) -> tuple[dict[tuple[str, str, str], Timed], bool]:
    if not reads:
        return {}, False
    # a job started after every reader is no one's source (a later copy or re-run)
    until = max(r[1] for r in reads)
    writers, cut = await _timed(store, (r[2] for r in reads), OUTPUT, viewer, limit, until)
    return _link(reads, writers), cut


async def sources(
    store: Store, reads: list[Read], viewer: int, limit: int
) -> tuple[dict[tuple[str, str, str], str | None], bool]:
    """(reader, started, hash, path, size) -> source of each read, and whether the writers
    were cut."""
    found, cut = await _sources(store, reads, viewer, limit)
    out: dict[tuple[str, str, str], str | None] = {(r[0], r[2], r[3]): None for r in reads}
    out.update((key, w.job) for key, w in found.items())
    return out, cut


class _Builder:
    def __init__(self) -> None:
        self.jobs: set[str] = set()
        self.paths: dict[str, str] = {}
        self.edges: dict[tuple[str, str, int], str | None] = {}

    def edge(self, job: str, digest: str, role: int, path: str, src: str | None = None) -> None:
        if src is not None or (job, digest, role) not in self.edges:
            self.edges[(job, digest, role)] = src
        self.paths.setdefault(digest, path)

    async def graph(self, store: Store, root: str, truncated: bool) -> Graph:
        sizes = await store.sizes(list(self.paths))
        summaries: list[JobSummary] = await store.summaries(sorted(self.jobs))
        return Graph(
            root=root,
            jobs=summaries,
            artifacts=[GraphArtifact(h, sizes.get(h, 0), p) for h, p in sorted(self.paths.items())],
            edges=[
                Edge(j, h, "output" if r == OUTPUT else "input", s)
                for (j, h, r), s in sorted(self.edges.items())
                if j in self.jobs
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
    `max_jobs` jobs (then `truncated`). From a hash, up starts at its producer and down at every
    job that read it; from there, each level follows `source` links only."""
    g = _Builder()
    limit = max_jobs * 4
    truncated = False
    frontier: set[str] = set()
    starts: dict[str, float] = {}  # of the jobs met, as their rows came (one query fewer)
    if kind == "job":
        frontier = {root}
    else:
        entry = await store.artifact(root, viewer)
        if entry is None:
            raise NotFound(f"no artifact {root}")
        g.paths[root] = entry.paths[0]
        role = OUTPUT if direction == "up" else INPUT
        rows, truncated = await _timed(store, [root], role, viewer, limit)
        if direction == "up":
            made = producer(rows)
            rows = [r for r in rows if r.job == made][:1]
        frontier = {r.job for r in rows}
        starts.update((r.job, r.started) for r in rows)
        if direction == "down" and rows:
            reads = [(r.job, r.started, r.hash, r.path, entry.size) for r in rows]
            found, cut = await sources(store, reads, viewer, limit)
            truncated |= cut
            for r in rows:
                g.edge(r.job, r.hash, INPUT, r.path, found[(r.job, r.hash, r.path)])
        else:
            for r in rows:
                g.edge(r.job, r.hash, OUTPUT, r.path)
    for level in range(depth):
        frontier -= g.jobs
        if len(g.jobs) + len(frontier) > max_jobs:
            frontier = set(sorted(frontier)[: max_jobs - len(g.jobs)])
            truncated = True
        if not frontier:
            break
        g.jobs |= frontier
        if direction == "up":
            frontier, cut = await _up(store, g, frontier, starts, viewer, limit)
        else:
            frontier, cut = await _down(store, g, frontier, viewer, limit, level + 1 < depth)
        truncated |= cut
        if truncated:
            break
    return await g.graph(store, root, truncated)


async def _up(
    store: Store,
    g: _Builder,
    jobs: set[str],
    starts: dict[str, float],
    viewer: int,
    limit: int,
) -> tuple[set[str], bool]:
    """These jobs' inputs, each with its source (also at the last level: a client tells an
    input made beyond the graph from one no job made); the sources, to walk next."""
    unknown = sorted(jobs - starts.keys())
    if unknown:
        starts.update((s.id, s.started) for s in await store.summaries(unknown))
    reads = [
        (job, starts[job], digest, path, size)
        for job, _, digest, path, size in await store.io_of_jobs(sorted(jobs), INPUT)
    ]
    found, cut = await _sources(store, reads, viewer, limit)
    nxt = set()
    for job, _, digest, path, _ in reads:
        src = found.get((job, digest, path))
        g.edge(job, digest, INPUT, path, None if src is None else src.job)
        if src is not None:
            nxt.add(src.job)
            starts[src.job] = src.started
            g.edge(src.job, digest, OUTPUT, path)  # kept if `src` joins the graph
    return nxt, cut


async def _down(
    store: Store, g: _Builder, jobs: set[str], viewer: int, limit: int, further: bool
) -> tuple[set[str], bool]:
    """These jobs' outputs and the reads whose source is one of them; those readers (to walk
    next, if `further`)."""
    outputs = await store.io_of_jobs(sorted(jobs), OUTPUT)
    for job, _, digest, path, _ in outputs:
        g.edge(job, digest, OUTPUT, path)
    if not further or not outputs:
        return set(), False
    sizes = {r[2]: r[4] for r in outputs}
    rows, cut = await _timed(store, sizes, INPUT, viewer, limit, copies=False)
    if not rows:
        return set(), cut
    # every reader of these contents is here, so a writer that read one is seen to copy it
    read = {(r.job, r.hash) for r in rows}
    reads = [(r.job, r.started, r.hash, r.path, sizes[r.hash]) for r in rows]
    until = max(r.started for r in rows)
    writers, cut_writers = await _timed(
        store, {r.hash for r in rows}, OUTPUT, viewer, limit, until, copies=False
    )
    found = _link(reads, (w._replace(copy=(w.job, w.hash) in read) for w in writers))
    nxt = set()
    for job, _, digest, path, _ in reads:
        src = found.get((job, digest, path))
        if src is not None and src.job in jobs:
            g.edge(job, digest, INPUT, path, src.job)
            nxt.add(job)
    return nxt, cut or cut_writers


async def session_dag(store: Store, session: str, viewer: int) -> Graph:
    """A session's jobs and their files; each input edge names its source among the session's
    jobs (None: it came from outside the session, or from no recorded job)."""
    jobs = await store.session_jobs(session, viewer)
    if not jobs:
        raise NotFound(f"no session {session}")
    truncated = len(jobs) > MAX_JOBS
    g = _Builder()
    shown = jobs[:MAX_JOBS]
    g.jobs = {j.id for j in shown}
    io = await store.io_of_jobs(sorted(g.jobs))
    for job, digest, path, src in session_links(shown, io):
        g.edge(job, digest, INPUT, path, src)
    for job, role, digest, path, _ in io:
        if role == OUTPUT:
            g.edge(job, digest, OUTPUT, path)
    return await g.graph(store, session, truncated)


def session_links(
    jobs: list[JobSummary], io: list[tuple[Any, ...]]
) -> list[tuple[str, str, str, str | None]]:
    """(reader, hash, path, source) of each input of a session's jobs (rows of
    `io_of_jobs`), the source chosen among those jobs by `source` (the session's DAG and its
    page: one pass over the rows for each, as a session can have thousands)."""
    started = {j.id: j.started for j in jobs}
    reads = {(r[0], r[2]) for r in io if r[1] == INPUT}
    writers: dict[str, list[Timed]] = {}
    for job, role, digest, path, _ in io:
        if role == OUTPUT and job in started:
            copy = (job, digest) in reads
            writers.setdefault(digest, []).append(Timed(job, started[job], digest, path, copy))
    out = []
    for job, role, digest, path, size in io:
        if role == INPUT and job in started:
            found = writers.get(digest)
            src = None if found is None else source(found, job, started[job], path, size)
            out.append((job, digest, path, src))
    return out
