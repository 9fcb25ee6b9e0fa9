"""Lineage: the jobs and artifacts upstream (what made it) or downstream (what it made) of a target.

The walk goes level by level with one query per level, so a wide fan-in costs no more queries
than a narrow one. An artifact's producer is the most recent job that wrote its content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roar.protocol import IORecord, LineageNode, show_path

if TYPE_CHECKING:
    from roard.daemon import Daemon


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def _artifact_node(d: Daemon, digest: str) -> tuple[int, LineageNode]:
    rows = await d.store.rows(
        "SELECT a.id, (SELECT p.path FROM job_io io JOIN paths p ON p.id = io.path"
        "  JOIN jobs j ON j.seq = io.job WHERE io.artifact = a.id ORDER BY j.started DESC"
        "  LIMIT 1) FROM artifacts a WHERE a.hash = ?",
        (digest,),
    )
    aid, path = rows[0]
    return aid, LineageNode(kind="artifact", id=digest, label=show_path(path or b""))


async def _job_node(d: Daemon, job_id: str) -> tuple[int, LineageNode]:
    rows = await d.store.rows("SELECT seq, command FROM jobs WHERE id = ?", (job_id,))
    seq, command = rows[0]
    return seq, LineageNode(kind="job", id=job_id, label=command)


MAX_DEPTH = 150  # job levels for an unlimited walk (a deeper tree would pass msgspec's
# recursion limit when encoded); deeper levels are marked truncated


async def walk(d: Daemon, kind: str, key: str, downstream: bool, depth: int) -> LineageNode:
    """The lineage tree of a job or artifact; depth counts job levels (0: up to MAX_DEPTH, so
    that a file rewritten by a daily job for years still gives an answer)."""
    depth = min(depth, MAX_DEPTH) if depth else MAX_DEPTH
    if kind == "job":
        seq, root = await _job_node(d, key)
        jobs: dict[int, LineageNode] = {seq: root}
        artifacts: dict[int, LineageNode] = {}
    else:
        aid, root = await _artifact_node(d, key)
        jobs, artifacts = {}, {aid: root}
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
            rows = await _artifact_jobs(d, list(artifacts), downstream)
            for aid, seq, job_id, command in rows:
                node = LineageNode(kind="job", id=job_id, label=command)
                _attach(artifacts[aid], node, seq, seen_jobs, jobs)
            artifacts = {}
        # jobs -> their inputs (upstream) or outputs (downstream)
        if jobs:
            rows = await d.store.rows(
                "SELECT io.job, a.id, a.hash, p.path FROM job_io io"
                " JOIN artifacts a ON a.id = io.artifact JOIN paths p ON p.id = io.path"
                f" WHERE io.role = ? AND io.job IN ({_marks(len(jobs))}) ORDER BY p.path",
                [1 if downstream else 0, *jobs],
            )
            for seq, aid, digest, path in rows:
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


async def _artifact_jobs(d: Daemon, ids: list[int], downstream: bool) -> list[Any]:
    if downstream:  # every job that read it
        return await d.store.rows(
            "SELECT io.artifact, j.seq, j.id, j.command FROM job_io io JOIN jobs j"
            f" ON j.seq = io.job WHERE io.role = 0 AND io.artifact IN ({_marks(len(ids))})"
            " ORDER BY j.started",
            ids,
        )
    rows = await d.store.rows(  # the latest job that wrote it
        "SELECT io.artifact, j.seq, j.id, j.command, j.started FROM job_io io JOIN jobs j"
        f" ON j.seq = io.job WHERE io.role = 1 AND io.artifact IN ({_marks(len(ids))})"
        " ORDER BY j.started DESC",
        ids,
    )
    latest: dict[int, Any] = {}
    for r in rows:
        latest.setdefault(r[0], r[:4])
    return list(latest.values())


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


async def with_sizes(d: Daemon, records: list[IORecord]) -> list[IORecord]:
    if not records:
        return records
    sizes = dict(
        await d.store.rows(
            f"SELECT hash, size FROM artifacts WHERE hash IN ({_marks(len(records))})",
            [r.hash for r in records],
        )
    )
    for r in records:
        r.size = sizes.get(r.hash, 0)
    return records
