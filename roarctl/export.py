"""Lineage in other tools' formats: W3C PROV-JSON, OpenLineage run events, Graphviz dot, Mermaid.

Environment values never appear (they are redacted in the store anyway); commands are the
redacted display forms.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from roar.protocol import DagReply, JobDetail, LineageNode

PRODUCER = "https://pypi.org/project/roar/"
OL_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
_NS = uuid.UUID("6f1c2a52-1d3b-4c55-9e0e-8a0b7f4d2c11")  # namespace for job id -> run UUID


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _q(text: str) -> str:
    return json.dumps(text)


def _edges(root: LineageNode) -> Iterator[tuple[LineageNode, LineageNode]]:
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.children:
            yield node, child
            stack.append(child)


def job_ids(root: LineageNode) -> list[str]:
    ids = [root.id] if root.kind == "job" else []
    for _, child in _edges(root):
        if child.kind == "job" and child.id not in ids:
            ids.append(child.id)
    return ids


def render(fmt: str, root: LineageNode, jobs: dict[str, JobDetail]) -> str:
    if fmt == "prov-json":
        return json.dumps(prov(root, jobs), indent=2) + "\n"
    if fmt == "openlineage":
        return "".join(json.dumps(e) + "\n" for e in openlineage(jobs))
    if fmt == "dot":
        return lineage_dot(root)
    return lineage_mermaid(root)


def prov(root: LineageNode, jobs: dict[str, JobDetail]) -> dict:
    """W3C PROV-JSON: artifacts are entities, jobs activities; used and wasGeneratedBy."""
    doc: dict[str, dict] = {
        "prefix": {"roar": "urn:roar:", "artifact": "urn:roar:artifact:", "job": "urn:roar:job:"},
        "entity": {},
        "activity": {},
        "used": {},
        "wasGeneratedBy": {},
    }
    for job_id, d in jobs.items():
        doc["activity"][f"job:{job_id}"] = {
            "prov:label": d.job.command,
            "prov:startTime": _iso(d.job.started),
            "prov:endTime": _iso(d.job.ended),
            "roar:exitCode": d.job.exit_code,
            "roar:commit": d.git.commit if d.git else None,
        }
        for role, records in (("used", d.inputs), ("wasGeneratedBy", d.outputs)):
            for r in records:
                doc["entity"].setdefault(
                    f"artifact:{r.hash}",
                    {"prov:label": r.path, "roar:blake3": r.hash, "roar:size": r.size},
                )
                key = f"_:{role}{len(doc[role]) + 1}"
                if role == "used":
                    doc[role][key] = {
                        "prov:activity": f"job:{job_id}",
                        "prov:entity": f"artifact:{r.hash}",
                    }
                else:
                    doc[role][key] = {
                        "prov:entity": f"artifact:{r.hash}",
                        "prov:activity": f"job:{job_id}",
                    }
    if root.kind == "artifact":
        doc["entity"].setdefault(
            f"artifact:{root.id}", {"prov:label": root.label, "roar:blake3": root.id}
        )
    return doc


def openlineage(jobs: dict[str, JobDetail]) -> list[dict]:
    """OpenLineage START and COMPLETE/FAIL run events per job, oldest first."""
    events = []
    for job_id, d in sorted(jobs.items(), key=lambda kv: kv[1].job.started):
        namespace = f"roar://{d.job.project or 'no-project'}"
        run = {
            "runId": str(uuid.uuid5(_NS, job_id)),
            "facets": {
                "roar": {
                    "_producer": PRODUCER,
                    "_schemaURL": OL_SCHEMA,
                    "jobId": job_id,
                    "commit": d.git.commit if d.git else None,
                    "exitCode": d.job.exit_code,
                }
            },
        }
        job = {"namespace": namespace, "name": d.job.step or d.job.command}

        def datasets(records: list) -> list[dict]:
            return [
                {
                    "namespace": "file",
                    "name": r.path,
                    "facets": {
                        "roar_blake3": {
                            "_producer": PRODUCER,
                            "_schemaURL": OL_SCHEMA,
                            "hash": r.hash,
                            "size": r.size,
                        }
                    },
                }
                for r in records
            ]

        base = {
            "producer": PRODUCER,
            "schemaURL": OL_SCHEMA,
            "run": run,
            "job": job,
            "inputs": datasets(d.inputs),
        }
        events.append({**base, "eventType": "START", "eventTime": _iso(d.job.started)})
        ok = d.job.exit_code == 0
        events.append(
            {
                **base,
                "eventType": "COMPLETE" if ok else "FAIL",
                "eventTime": _iso(d.job.ended or d.job.started),
                "outputs": datasets(d.outputs),
            }
        )
    return events


def _label(node: LineageNode) -> str:
    if node.kind == "job":
        return f"job {node.id}\n{node.label[:60]}"
    return f"{node.label.rsplit('/', 1)[-1]}\n{node.id[:12]}"


def lineage_dot(root: LineageNode) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;"]
    nodes = {root.id: root}
    edges = []
    for parent, child in _edges(root):
        nodes.setdefault(child.id, child)
        edges.append((child.id, parent.id))  # upstream tree: data flows child -> parent
    for node in nodes.values():
        shape = "box" if node.kind == "job" else "note"
        lines.append(f"  {_q(node.id)} [label={_q(_label(node))}, shape={shape}];")
    for a, b in dict.fromkeys(edges):
        lines.append(f"  {_q(a)} -> {_q(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def lineage_mermaid(root: LineageNode) -> str:
    ids: dict[str, str] = {}

    def nid(node: LineageNode) -> str:
        if node.id not in ids:
            ids[node.id] = f"n{len(ids)}"
        return ids[node.id]

    lines = ["graph LR"]
    seen = set()
    for node in [root, *(c for _, c in _edges(root))]:
        if node.id in seen:
            continue
        seen.add(node.id)
        text = _label(node).replace("\n", "<br/>").replace('"', "'")
        shape = f'["{text}"]' if node.kind == "job" else f'(["{text}"])'
        lines.append(f"  {nid(node)}{shape}")
    for child, parent in dict.fromkeys((c.id, p.id) for p, c in _edges(root)):
        lines.append(f"  {ids[child]} --> {ids[parent]}")
    return "\n".join(lines) + "\n"


def dag_dot(d: DagReply) -> str:
    lines = ["digraph pipeline {", "  rankdir=LR;"]
    for s in d.steps:
        style = ', style=filled, fillcolor="#ffe0a0"' if s.stale_reason else ""
        label = f"{s.ref}\n{s.job.command[:60]}" + ("\n(stale)" if s.stale_reason else "")
        lines.append(f"  {_q(s.ref)} [label={_q(label)}, shape=box{style}];")
    for s in d.steps:
        for dep in s.depends_on:
            lines.append(f"  {_q(dep)} -> {_q(s.ref)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dag_mermaid(d: DagReply) -> str:
    def nid(ref: str) -> str:
        return "s" + ref.lstrip("@")

    lines = ["graph LR"]
    for s in d.steps:
        text = f"{s.ref} {s.job.command[:60]}".replace('"', "'")
        lines.append(f'  {nid(s.ref)}["{text}"]' + (":::stale" if s.stale_reason else ""))
    for s in d.steps:
        for dep in s.depends_on:
            lines.append(f"  {nid(dep)} --> {nid(s.ref)}")
    if any(s.stale_reason for s in d.steps):
        lines.append("  classDef stale fill:#ffe0a0")
    return "\n".join(lines) + "\n"
