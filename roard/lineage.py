"""Lineage: the jobs and artifacts upstream (what made it) or downstream (what it made) of a target.

The walk goes level by level with one query per level, so a wide fan-in costs no more queries
than a narrow one. An artifact's producer is the most recent job that wrote its content.
"""

from __future__ import annotations

from typing import Any

from roar.errors import NotFound
from roar.protocol import IORecord, LineageNode, show_path
from roard.store import Store
from roard.store import lineage as rows
from roard.store.queries import RecordKind

MAX_DEPTH = 150  # job levels for an unlimited walk (a deeper tree would pass msgspec's
# recursion limit when encoded); deeper levels are marked truncated


async def walk(
    store: Store, kind: RecordKind, key: str, downstream: bool, depth: int
) -> LineageNode:
    """The lineage tree of a job or artifact; depth counts job levels (0: up to MAX_DEPTH, so
    that a file rewritten by a daily job for years still gives an answer)."""
    depth = min(depth, MAX_DEPTH) if depth else MAX_DEPTH
    if kind == "job":
        job = await rows.job(store, key)
        if job is None:
            raise NotFound(f"no job {key}")
        root = LineageNode(kind="job", id=key, label=job[1])
        jobs: dict[int, LineageNode] = {job[0]: root}
        artifacts: dict[int, LineageNode] = {}
    else:
        art = await rows.artifact(store, key)
        if art is None:
            raise NotFound(f"no artifact {key}")
        root = LineageNode(kind="artifact", id=key, label=show_path(art[1] or b""))
        jobs, artifacts = {}, {art[0]: root}
    seen_jobs: set[int] = set(jobs)
    seen_artifacts: set[int] = set(artifacts)
    level = 0
    while jobs or artifacts:
        # artifacts -> the jobs that made them (upstream) or read them (downstream)
        if artifacts:
            if depth and level >= depth:
                for node in artifacts.values():
                    node.truncated = True
                break
            level += 1
            jobs_of = rows.readers if downstream else rows.producers
            for aid, seq, job_id, command in await jobs_of(store, list(artifacts)):
                node = LineageNode(kind="job", id=job_id, label=command)
                _attach(artifacts[aid], node, seq, seen_jobs, jobs)
            artifacts = {}
        # jobs -> their inputs (upstream) or outputs (downstream)
        if jobs:
            for seq, aid, digest, path in await rows.files(store, list(jobs), downstream):
                node = LineageNode(kind="artifact", id=digest, label=show_path(path))
                _attach(jobs[seq], node, aid, seen_artifacts, artifacts)
            jobs = {}
    return root


def _attach(
    parent: LineageNode, node: LineageNode, key: int, seen: set[int], frontier: dict[int, Any]
) -> None:
    """Hang `node` under `parent`; a node already shown elsewhere is marked truncated instead
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
