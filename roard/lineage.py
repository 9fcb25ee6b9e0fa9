"""Lineage: the jobs and artifacts upstream (what made it) or downstream (what it made) of a target.

Each step follows roard.sources's rule: upstream, a job's inputs and the job each links to (one
that started before it); downstream, a job's outputs and the jobs whose inputs link to it. So a
walk goes strictly back (or forward) in time and cannot loop; each job is expanded once (shown
again, it is marked truncated). The walk goes level by level with a few queries per level, so a
wide fan-in costs no more queries than a narrow one.
"""

from __future__ import annotations

from roar.errors import NotFound
from roar.protocol import IORecord, LineageNode, show_path
from roard import sources
from roard.store import Store
from roard.store import lineage as rows
from roard.store import sources as source_rows
from roard.store.queries import RecordKind

MAX_DEPTH = 150  # job levels for an unlimited walk (a deeper tree would pass msgspec's
# recursion limit when encoded); deeper levels are marked truncated


async def walk(
    store: Store,
    kind: RecordKind,
    key: str,
    downstream: bool,
    depth: int,
    path: bytes | None = None,
) -> LineageNode:
    """The lineage tree of a job or artifact; depth counts job levels (0: up to MAX_DEPTH, so
    that a file rewritten by a daily job for years still gives an answer). `path`: the path an
    artifact was named by, if it was (where it was written decides which job made it)."""
    depth = min(depth, MAX_DEPTH) if depth else MAX_DEPTH
    seen: set[int] = set()
    frontier: dict[int, LineageNode] = {}
    if kind == "job":
        job = await rows.job(store, key)
        if job is None:
            raise NotFound(f"no job {key}")
        root = LineageNode(kind="job", id=key, label=job[1])
        frontier[job[0]] = root
        seen.add(job[0])
        level = 0
    else:
        art = await rows.artifact(store, key)
        if art is None:
            raise NotFound(f"no artifact {key}")
        root = LineageNode(kind="artifact", id=key, label=show_path(path or art[1] or b""))
        if downstream:
            first = await source_rows.readers(store, art[0], path)
        else:
            made = await sources.maker(store, art[0], path)
            first = []
            if made is not None:
                seq, root.label = made[0], show_path(made[1])
                first = [(seq, *(await source_rows.names(store, [seq]))[seq])]
        for seq, job_id, command in first:
            _attach(root, LineageNode(kind="job", id=job_id, label=command), seq, seen, frontier)
        level = 1
    while frontier:
        jobs, frontier = frontier, {}
        deeper = level < depth  # may the next level of jobs be shown?
        level += 1
        if downstream:
            links = await _down(store, jobs)
        else:
            links = [(jobs[link.reader], link) for link in await sources.inputs(store, list(jobs))]
        others = {k.reader if downstream else k.source for _, k in links}
        names = await source_rows.names(store, sorted(x for x in others if x is not None))
        for parent, link in links:
            node = parent
            if not downstream:
                node = LineageNode(kind="artifact", id=link.hash, label=show_path(link.path))
                parent.children.append(node)
            other = link.reader if downstream else link.source
            if other is None:
                continue
            if not deeper:
                node.truncated = True
                continue
            job_id, command = names[other]
            _attach(node, LineageNode(kind="job", id=job_id, label=command), other, seen, frontier)
    return root


async def _down(
    store: Store, jobs: dict[int, LineageNode]
) -> list[tuple[LineageNode, sources.Link]]:
    """The jobs' outputs as artifact nodes under them, and each consumer's link under the output
    it read (the one at the path it read, when the job wrote that content at several)."""
    outputs: dict[tuple[int, int], list[tuple[bytes, LineageNode]]] = {}
    for seq, aid, digest, path in await rows.files(store, list(jobs), True):
        node = LineageNode(kind="artifact", id=digest, label=show_path(path))
        jobs[seq].children.append(node)
        outputs.setdefault((seq, aid), []).append((path, node))
    found = []
    for link in await sources.consumers(store, list(jobs)):
        assert link.source is not None
        nodes = outputs.get((link.source, link.artifact))
        if nodes:
            at = next((n for p, n in nodes if p == link.path), nodes[0][1])
            found.append((at, link))
    return found


def _attach(
    parent: LineageNode,
    node: LineageNode,
    key: int,
    seen: set[int],
    frontier: dict[int, LineageNode],
) -> None:
    """Hang `node` under `parent`; a job already shown elsewhere is marked truncated instead
    of being walked again, a new one joins the next level's frontier."""
    if key in seen:
        node.truncated = True
    else:
        seen.add(key)
        frontier[key] = node
    parent.children.append(node)


def root_inputs(tree: LineageNode, unsourced: bool) -> list[IORecord]:
    """Leaves of an upstream tree: artifacts no recorded job made (unsourced), and, unless
    `unsourced`, artifacts made by jobs that read nothing themselves (e.g. a download)."""
    found: dict[str, IORecord] = {}
    stack = list(tree.children)  # the target itself is not one of its inputs; iterative: deep
    while stack:  # chains must not hit the recursion limit
        node = stack.pop()
        if node.kind == "artifact":
            if not node.children and not node.truncated:
                found.setdefault(node.id, IORecord(path=node.label, hash=node.id, size=0))
            for job in node.children:
                if not job.children and not job.truncated and not unsourced:
                    found.setdefault(
                        node.id, IORecord(path=node.label, hash=node.id, size=0, producer=job.id)
                    )
        stack.extend(node.children)
    return sorted(found.values(), key=lambda r: r.path)


async def with_sizes(store: Store, records: list[IORecord]) -> list[IORecord]:
    sizes = await rows.sizes(store, [r.hash for r in records])
    for r in records:
        r.size = sizes.get(r.hash, 0)
    return records
