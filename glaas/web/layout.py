"""A layered drawing of a directed graph, left to right, computed on the server (Sugiyama style):

1. cycles broken (content-addressed graphs can have them: a job that rewrites what it read);
2. layers by longest path from the sources; a node with no inputs moves right, next to its
   first reader, so a raw file read late does not stretch an edge across the whole picture;
3. an edge that spans several layers gets a waypoint in each (up to MAX_WAYPOINTS in all);
4. the order within each layer by the barycenter of the neighbours, sweeping right and left;
5. vertical positions: each node as close as it can be to the median of its neighbours, keeping
   the order and the spacing (isotonic regression, pool adjacent violators: linear per layer).

Pure: nodes and edges in, positions and edge routes out. O(V + E) per sweep, a few sweeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

GAP_X = 56  # between columns
GAP_Y = 10  # between nodes of a column
WAYPOINT_W = 12
WAYPOINT_H = 8
MARGIN = 16
SWEEPS = 4
MAX_WAYPOINTS = 20_000  # beyond this, long edges are drawn straight (a huge, odd graph)


@dataclass(frozen=True)
class Box:
    width: float
    height: float


@dataclass
class Layout:
    x: dict[str, float]  # left edge of each node
    y: dict[str, float]  # top edge of each node
    routes: dict[tuple[str, str], list[tuple[float, float]]]  # per edge: source -> target
    width: float
    height: float
    layers: int


def _acyclic(n: int, out: list[list[int]]) -> set[tuple[int, int]]:
    """Edges to reverse so the graph has no cycle (the back edges of a DFS, iteratively)."""
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in range(n):
        if state[root]:
            continue
        stack = [(root, 0)]
        state[root] = 1
        while stack:
            v, i = stack[-1]
            if i < len(out[v]):
                stack[-1] = (v, i + 1)
                w = out[v][i]
                if state[w] == 1:
                    back.add((v, w))
                elif state[w] == 0:
                    state[w] = 1
                    stack.append((w, 0))
            else:
                state[v] = 2
                stack.pop()
    return back


def _layers(n: int, out: list[list[int]], inc: list[list[int]]) -> list[int]:
    indeg = [len(p) for p in inc]
    ready = [v for v in range(n) if indeg[v] == 0]
    layer = [0] * n
    order = []
    while ready:
        v = ready.pop()
        order.append(v)
        for w in out[v]:
            layer[w] = max(layer[w], layer[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    for v in order:  # sources move right, next to their first successor
        if not inc[v] and out[v]:
            layer[v] = max(layer[v], min(layer[w] for w in out[v]) - 1)
    return layer


def _isotonic(desired: list[float], gaps: list[float]) -> list[float]:
    """Positions p, in order, with p[i] - p[i-1] >= gaps[i], closest to `desired` (least
    squares): with q[i] = p[i] - offset[i] it is isotonic regression on q (pool adjacent
    violators)."""
    offset, acc = [], 0.0
    for g in gaps:
        acc += g
        offset.append(acc)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for d, o in zip(desired, offset, strict=True):
        blocks.append([d - o, 1.0, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks[-1]
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, int(c1 + c2)]
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return [q + o for q, o in zip(out, offset, strict=True)]


def _median(values: list[float]) -> float:
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def layout(keys: Sequence[str], boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> Layout:
    """Place nodes (given in a preferred order: it breaks ties) and route `edges`."""
    index = {k: i for i, k in enumerate(keys)}
    n = len(keys)
    pairs = list(dict.fromkeys((index[a], index[b]) for a, b in edges if a != b))
    out: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        out[a].append(b)
    back = _acyclic(n, out)
    dag = [(b, a) if (a, b) in back else (a, b) for a, b in pairs]
    dout: list[list[int]] = [[] for _ in range(n)]
    dinc: list[list[int]] = [[] for _ in range(n)]
    for a, b in dag:
        dout[a].append(b)
        dinc[b].append(a)
    layer = _layers(n, dout, dinc)
    width = [b.width for b in boxes]
    height = [b.height for b in boxes]

    # waypoints: a chain of small nodes through the layers a long edge crosses, for as many
    # long edges as the budget allows (the shortest first); the others are drawn straight
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    chains: dict[tuple[int, int], list[int]] = {}
    budget = min(MAX_WAYPOINTS, 2 * n)
    for a, b in sorted(dag, key=lambda e: layer[e[1]] - layer[e[0]]):
        span = layer[b] - layer[a]
        chain = [a]
        if 1 < span <= budget + 1:
            budget -= span - 1
            for level in range(layer[a] + 1, layer[b]):
                chain.append(len(layer))
                layer.append(level)
                width.append(WAYPOINT_W)
                height.append(WAYPOINT_H)
                preds.append([])
                succs.append([])
        chain.append(b)
        chains[(a, b)] = chain
        for u, v in pairwise(chain):
            succs[u].append(v)
            preds[v].append(u)
    total = len(layer)

    depth = max(layer, default=-1) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]
    for v in range(total):  # input order first, waypoints after
        layers[layer[v]].append(v)
    pos = [0.0] * total
    for members in layers:
        for i, v in enumerate(members):
            pos[v] = float(i)

    def sweep(order: list[int], near: list[list[int]]) -> None:
        for members in (layers[i] for i in order):
            for v in members:
                nv = near[v]
                if nv:
                    pos[v] = sum(pos[u] for u in nv) / len(nv)
            members.sort(key=pos.__getitem__)
            for i, v in enumerate(members):
                pos[v] = float(i)

    sweeps = SWEEPS if total <= 400 else 2  # big graphs: fewer passes (each is O(V + E))
    forward, backward = list(range(1, depth)), list(range(depth - 2, -1, -1))
    for _ in range(sweeps):
        sweep(forward, preds)
        sweep(backward, succs)

    # vertical positions (centres), stacked, then pulled toward their neighbours
    for members in layers:
        y = 0.0
        for v in members:
            pos[v] = y + height[v] / 2
            y += height[v] + GAP_Y

    def place(order: list[int], near: list[list[int]]) -> None:
        for members in (layers[i] for i in order):
            if not members:
                continue
            desired, gaps = [], []
            prev = None
            for v in members:
                nv = near[v]
                desired.append(_median([pos[u] for u in nv]) if nv else pos[v])
                h = height[v]
                gaps.append(0.0 if prev is None else prev / 2 + GAP_Y + h / 2)
                prev = h
            for v, y in zip(members, _isotonic(desired, gaps), strict=True):
                pos[v] = y

    for _ in range(sweeps):
        place(forward, preds)
        place(backward, succs)

    widths = [max((width[v] for v in members), default=0.0) for members in layers]
    left, x = [], float(MARGIN)
    for w in widths:
        left.append(x)
        x += w + GAP_X
    shift = MARGIN - min((pos[v] - height[v] / 2 for v in range(total)), default=0.0)
    xs = [left[layer[v]] + (widths[layer[v]] - width[v]) / 2 for v in range(total)]
    ys = [pos[v] + shift - height[v] / 2 for v in range(total)]
    bottom = max((ys[v] + height[v] for v in range(total)), default=0.0)

    def anchor(v: int, side: str) -> tuple[float, float]:
        cx = xs[v] + (width[v] if side == "out" else 0.0) if v < n else xs[v] + width[v] / 2
        return (round(cx, 1), round(ys[v] + height[v] / 2, 1))

    routes = {}
    for a, b in pairs:
        if (a, b) in back:
            chain = chains[(b, a)][::-1]
            points = [anchor(chain[0], "in"), *(anchor(v, "mid") for v in chain[1:-1])]
            points.append(anchor(chain[-1], "out"))
        else:
            chain = chains[(a, b)]
            points = [anchor(chain[0], "out"), *(anchor(v, "mid") for v in chain[1:-1])]
            points.append(anchor(chain[-1], "in"))
        routes[(keys[a], keys[b])] = points
    return Layout(
        x={k: xs[i] for i, k in enumerate(keys)},
        y={k: ys[i] for i, k in enumerate(keys)},
        routes=routes,
        width=(x - GAP_X + MARGIN) if depth else 2 * MARGIN,
        height=bottom + MARGIN,
        layers=depth,
    )
