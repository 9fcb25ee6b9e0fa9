"""The graphs the pages draw: a session's pipeline (steps, their files, superseded and stale
marks) and the neighbourhood of one record (a lineage walk up and down from it).

Big graphs stay readable: a node's leaves (files only it touches, jobs that only touch it) beyond
LEAVES are folded into one "+N more" node that links to the same page with that node expanded.
The layout is computed on the server, and a drawing is kept while it is among the latest
(`cached`, keyed by everything it shows)."""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from glaas import graph
from glaas.web.layout import Box, layout
from roar.registry import Graph, JobSummary

LEAVES = 4  # leaves of one side of a node shown before the rest fold into "+N more"
MAX_EXPAND = 32
JOB_BOX = Box(216, 32)
ARTIFACT_BOX = Box(176, 24)
MORE_BOX = Box(150, 22)
CACHE_SIZE = 32
T = TypeVar("T")
NodeKind = Literal["job", "artifact", "more"]
EXPAND = re.compile(r"[ja][0-9a-f]{16}")


@dataclass
class Node:
    key: str  # "j<id>" or "a<hash>" (or "m..." for a fold)
    kind: NodeKind
    id: str  # job id or artifact hash; for a fold, the key of the node it belongs to
    label: str
    title: str
    marks: list[str] = field(default_factory=list)  # focus, superseded, stale, failed
    count: int = 0  # for a fold: how many it stands for
    href: str = ""
    x: float = 0.0
    y: float = 0.0
    box: Box = ARTIFACT_BOX


@dataclass
class Drawing:
    nodes: list[Node]
    edges: list[tuple[str, str, str]]  # (SVG path, source key, target key)
    width: float
    height: float
    folded: int  # records folded into "+N more" nodes


class Listed(NamedTuple):
    """A node as the list beside a graph shows it."""

    kind: NodeKind
    href: str
    title: str
    label: str
    focus: bool


@dataclass(frozen=True)
class Drawn:
    """A finished drawing, as pages keep it: text and tuples of text only, which Python's
    garbage collector does not walk (thousands of Node objects kept would slow every full
    collection, and so every page)."""

    svg: str
    nodes: tuple[Listed, ...]
    folded: int

    @classmethod
    def of(cls, drawing: Drawing, svg: str) -> Drawn:
        nodes = tuple(
            Listed(n.kind, n.href, n.title, n.label, "focus" in n.marks) for n in drawing.nodes
        )
        return cls(str(svg), nodes, drawing.folded)


@dataclass
class Step:
    """A job of a session as the pipeline view shows it."""

    job: JobSummary
    ref: str  # @3, @B1 (or "" for a job without a step)
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (hash, path)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)  # each input's (glaas.graph.source)
    superseded: bool = False
    stale: str | None = None  # why


def expand_keys(values: Iterable[str]) -> list[str]:
    """The `expand` query values that name a node (others are ignored)."""
    found = [v for v in values if EXPAND.fullmatch(v)]
    return list(dict.fromkeys(found))[:MAX_EXPAND]


def short_key(key: str) -> str:
    return key[:17]


def _step_ref(job: JobSummary) -> str:
    if job.step is None:
        return ""
    return f"@B{job.step}" if job.kind == "build" else f"@{job.step}"


def steps(jobs: list[JobSummary], io: Iterable[tuple[Any, ...]]) -> list[Step]:
    """A session's jobs with their files, superseded jobs (an earlier run of the same step) and
    stale steps: the same rules as `roarctl dag` (roard/sessions.py). A step depends on the
    steps of the jobs its inputs came from (glaas.graph.source: always jobs that started before
    it); it is stale when such a step re-ran since and its current job wrote other bytes where
    that input was written, or when a step it depends on is stale."""
    found = {j.id: Step(j, _step_ref(j)) for j in jobs}  # jobs come in start order
    rows = io if isinstance(io, list) else list(io)
    for job, role, digest, path, _ in rows:
        if role == 1 and job in found:
            found[job].outputs.append((digest, path))
    for job, digest, path, src in graph.session_links(jobs, rows):
        found[job].inputs.append((digest, path))
        found[job].sources.append(src)
    by_step: dict[str, list[Step]] = {}
    for s in found.values():
        if s.ref:
            by_step.setdefault(s.ref, []).append(s)
    current = {ref: group[-1] for ref, group in by_step.items()}
    for group in by_step.values():
        for s in group[:-1]:
            s.superseded = True

    def order(ref: str) -> tuple[bool, int]:  # builds first, then by number
        return not ref.startswith("@B"), int(ref.lstrip("@B"))

    depends: dict[str, list[str]] = {}
    stale: dict[str, str] = {}
    for ref in sorted(current, key=order):
        s = current[ref]
        deps: list[str] = []
        for (digest, _), src in zip(s.inputs, s.sources, strict=True):
            made = found.get(src) if src is not None else None
            if made is None or not made.ref or made.ref == ref:
                continue
            up = made.ref
            if up not in deps:
                deps.append(up)
            if ref not in stale and made is not current[up]:
                where = next((p for h, p in made.outputs if h == digest), None)
                now = next((h for h, p in current[up].outputs if p == where), None)
                if now is not None and now != digest:
                    stale[ref] = f"{up} re-ran and changed {where}"
        depends[ref] = deps
    changed = True
    while changed:  # staleness flows downstream, however the steps are numbered
        changed = False
        for ref in sorted(current, key=order):
            bad = next((d for d in depends[ref] if d in stale), None)
            if ref not in stale and bad is not None:
                stale[ref] = f"upstream {bad} is stale"
                changed = True
    for ref, reason in stale.items():
        current[ref].stale = reason
    return list(found.values())


def _job_node(job: JobSummary, ref: str = "") -> Node:
    ref = ref or _step_ref(job)
    label = f"{ref} {job.command}" if ref else job.command
    marks = ["failed"] if job.exit_code not in (0, None) else []
    return Node("j" + job.id, "job", job.id, label, f"{label}\njob {job.id}", marks, box=JOB_BOX)


def _artifact_node(digest: str, path: str) -> Node:
    parts = path.rstrip("/").split("/")
    label = "/".join(parts[-2:]) if len(parts) > 1 and len(parts[-1]) < 16 else parts[-1]
    return Node("a" + digest, "artifact", digest, label or path, path)


class Builder:
    """Nodes and edges (job -> output, input -> job), then folds, layout and drawing.

    A content is one node per job it came from: the same bytes written by a later job (a `cp`
    of them, a re-run that made them again) are another node, read by the jobs whose inputs
    link to that job (glaas.graph.source), so no edge runs from a later job to an earlier one
    and a copy is never drawn in a loop. The node of a content's maker (its earliest writer
    here that did not read it) and of its reads that no job made is keyed `a<hash>`."""

    def __init__(self, makers: dict[str, str] | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], None] = {}
        self.makers = makers  # hash -> the job whose node of it is `a<hash>` (None: any job)

    def key(self, digest: str, made_by: str | None) -> str:
        if made_by is None or self.makers is None or self.makers.get(digest) == made_by:
            return "a" + digest
        return f"a{digest}.{made_by[:16]}"

    def job(self, job: JobSummary, ref: str = "") -> Node:
        key = "j" + job.id
        if key not in self.nodes:
            self.nodes[key] = _job_node(job, ref)
        return self.nodes[key]

    def artifact(self, digest: str, path: str, made_by: str | None = None) -> Node:
        key = self.key(digest, made_by)
        if key not in self.nodes:
            node = _artifact_node(digest, path)
            node.key = key
            self.nodes[key] = node
        return self.nodes[key]

    def edge(self, job: str, digest: str, output: bool, made_by: str | None = None) -> None:
        """job -> its output, or its input -> job (`made_by`: the job the input came from)."""
        j, a = "j" + job, self.key(digest, job if output else made_by)
        if j in self.nodes and a in self.nodes:
            self.edges[(j, a) if output else (a, j)] = None

    def draw(
        self,
        href: Callable[[Node], str],
        expand_href: Callable[[str], str],
        expanded: Iterable[str] = (),
        focus: str | None = None,
    ) -> Drawing:
        opened = set(expanded)
        nodes, edges, folded = _fold(self.nodes, list(self.edges), opened, focus)
        for node in nodes:
            node.href = expand_href(node.id) if node.kind == "more" else href(node)
        placed = layout([n.key for n in nodes], [n.box for n in nodes], edges)
        for node in nodes:
            node.x, node.y = placed.x[node.key], placed.y[node.key]
        paths = [(_path(placed.routes[(a, b)]), a, b) for a, b in edges if a != b]
        return Drawing(nodes, paths, placed.width, placed.height, folded)


def _fold(
    all_nodes: dict[str, Node],
    edges: list[tuple[str, str]],
    opened: set[str],
    focus: str | None,
) -> tuple[list[Node], list[tuple[str, str]], int]:
    """Fold each node's leaves beyond LEAVES (per side) into one "+N more" node."""
    near: dict[str, list[tuple[str, bool]]] = {k: [] for k in all_nodes}
    for a, b in edges:
        near[a].append((b, True))  # b is downstream of a
        near[b].append((a, False))
    hidden: set[str] = set()
    folds: list[tuple[Node, str, bool]] = []
    for key, node in all_nodes.items():
        if short_key(key) in opened or node.kind == "more":
            continue
        for downstream in (True, False):
            leaves = [
                k
                for k, d in near[key]
                if d == downstream and len(near[k]) == 1 and k != focus and k not in hidden
            ]
            if len(leaves) <= LEAVES:
                continue
            leaves.sort(key=lambda k: all_nodes[k].label)
            rest = leaves[LEAVES - 1 :]
            hidden.update(rest)
            kind = "files" if node.kind == "job" else "jobs"
            side = (
                ("outputs" if node.kind == "job" else "readers")
                if downstream
                else ("inputs" if node.kind == "job" else "writers")
            )
            more = Node(
                f"m{'o' if downstream else 'i'}{key}",
                "more",
                short_key(key),
                f"+{len(rest)} more {side}",
                f"{len(rest)} more {kind}: show them all",
                count=len(rest),
                box=MORE_BOX,
            )
            folds.append((more, key, downstream))
    nodes = [n for k, n in all_nodes.items() if k not in hidden]
    kept = [(a, b) for a, b in edges if a not in hidden and b not in hidden]
    for more, owner, downstream in folds:
        nodes.append(more)
        kept.append((owner, more.key) if downstream else (more.key, owner))
    if focus is not None and focus in all_nodes:
        all_nodes[focus].marks.append("focus")
    return nodes, kept, sum(m.count for m, _, _ in folds)


_CACHE: OrderedDict[str, Any] = OrderedDict()


def cached(parts: Iterable[str], make: Callable[[], T]) -> T:
    """What `make` makes from inputs whose text is `parts`, made once while it is among the
    latest CACHE_SIZE (a drawing depends only on what it shows, so viewers who see different
    records never share an entry)."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    key = h.hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        found: T = _CACHE[key]
        return found
    made = make()
    _CACHE[key] = made
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return made


def _path(points: list[tuple[float, float]]) -> str:
    (x0, y0), rest = points[0], points[1:]
    out = [f"M{x0:g},{y0:g}"]
    for x1, y1 in rest:
        dx = (x1 - x0) / 2
        out.append(f"C{x0 + dx:g},{y0:g} {x1 - dx:g},{y1:g} {x1:g},{y1:g}")
        x0, y0 = x1, y1
    return "".join(out)


def makers(writes: Iterable[tuple[JobSummary, str]], reads: set[tuple[str, str]]) -> dict[str, str]:
    """hash -> the earliest of its writers (job, hash) that did not also read it (job, hash)."""
    found: dict[str, JobSummary] = {}
    for job, digest in writes:
        if (job.id, digest) in reads:
            continue
        best = found.get(digest)
        if best is None or (job.started, job.id) < (best.started, best.id):
            found[digest] = job
    return {digest: job.id for digest, job in found.items()}


def session_drawing(
    steps_: list[Step],
    href: Callable[[Node], str],
    expand_href: Callable[[str], str],
    expanded: Iterable[str],
) -> Drawing:
    reads = {(s.job.id, digest) for s in steps_ for digest, _ in s.inputs}
    b = Builder(makers(((s.job, d) for s in steps_ for d, _ in s.outputs), reads))
    for s in steps_:
        node = b.job(s.job, s.ref)
        if s.superseded:
            node.marks.append("superseded")
        if s.stale:
            node.marks.append("stale")
            node.title += f"\nstale: {s.stale}"
        for (digest, path), src in zip(s.inputs, s.sources, strict=True):
            b.artifact(digest, path, src)
            b.edge(s.job.id, digest, output=False, made_by=src)
        for digest, path in s.outputs:
            b.artifact(digest, path, s.job.id)
            b.edge(s.job.id, digest, output=True)
    return b.draw(href, expand_href, expanded)


def neighbourhood_drawing(
    graphs: list[Graph],
    focus: str,
    href: Callable[[Node], str],
    expand_href: Callable[[str], str],
    expanded: Iterable[str],
) -> Drawing:
    """Lineage walks (up and down from one record) drawn as one graph around `focus`."""
    jobs = {j.id: j for g in graphs for j in g.jobs}
    paths = {a.hash: a.path for g in graphs for a in g.artifacts}
    edges = {(e.job, e.artifact, e.role): e.source for g in graphs for e in g.edges}
    reads = {(j, h) for j, h, role in edges if role == "input"}
    writes = [(jobs[j], h) for j, h, role in edges if role == "output" and j in jobs]
    b = Builder(makers(writes, reads))
    for job in jobs.values():
        b.job(job)
    for (job_id, digest, role), src in sorted(edges.items()):
        output = role == "output"
        b.artifact(digest, paths.get(digest, digest), job_id if output else src)
        b.edge(job_id, digest, output, made_by=src)
    if focus.startswith("a") and focus not in b.nodes and focus[1:] in paths:
        b.artifact(focus[1:], paths[focus[1:]])  # a content no job here made or read
    return b.draw(href, expand_href, expanded, focus)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) or path
