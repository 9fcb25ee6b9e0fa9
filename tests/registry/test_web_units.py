"""The web pages' pure parts: the graph layout (no overlaps, edges left to right, cycles and
long edges handled, the same answer twice), the session view's marks (the rules of `roarctl
dag`), the folding of big nodes, and which values may become links."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from glaas.web import dag, links
from glaas.web.layout import GAP_Y, Box, layout
from roar.registry import JobSummary


def _random_dag(n: int, seed: int) -> tuple[list[str], list[Box], list[tuple[str, str]]]:
    rng = random.Random(seed)
    keys, boxes, edges = [], [], []
    made: list[str] = []
    for i in range(n):
        job = f"j{i}"
        keys.append(job)
        boxes.append(Box(200, 30))
        for src in rng.sample(made, min(len(made), rng.randint(0, 3))):
            edges.append((src, job))
        for k in range(rng.randint(1, 3)):
            out = f"a{i}.{k}"
            keys.append(out)
            boxes.append(Box(160, 24))
            edges.append((job, out))
            made.append(out)
    return keys, boxes, edges


def test_a_layout_never_overlaps_and_runs_left_to_right() -> None:
    keys, boxes, edges = _random_dag(300, 1)
    placed = layout(keys, boxes, edges)
    size = dict(zip(keys, boxes, strict=True))
    columns: dict[float, list[str]] = {}
    for k in keys:
        centre = placed.x[k] + size[k].width / 2
        columns.setdefault(round(centre, 3), []).append(k)
    for members in columns.values():
        members.sort(key=lambda k: placed.y[k])
        for a, b in pairwise(members):
            assert placed.y[b] >= placed.y[a] + size[a].height + GAP_Y - 1e-6, (a, b)
    for a, b in edges:
        assert placed.x[a] + size[a].width < placed.x[b], (a, b)
        route = placed.routes[(a, b)]
        assert route[0][0] == pytest.approx(placed.x[a] + size[a].width, abs=0.1)
        assert route[-1][0] == pytest.approx(placed.x[b], abs=0.1)
        assert [p[0] for p in route] == sorted(p[0] for p in route)  # never doubles back
    for k in keys:
        assert 0 <= placed.x[k] <= placed.width and 0 <= placed.y[k] <= placed.height
    assert layout(keys, boxes, edges) == placed  # deterministic


def test_cycles_self_loops_and_empty_graphs_are_laid_out() -> None:
    box = Box(100, 20)
    # content-addressed graphs can loop: a job that writes back the content it read
    placed = layout(["a", "j", "b"], [box] * 3, [("a", "j"), ("j", "a"), ("j", "b"), ("b", "b")])
    assert set(placed.routes) == {("a", "j"), ("j", "a"), ("j", "b")}
    assert placed.x["a"] < placed.x["j"] < placed.x["b"]
    back = placed.routes[("j", "a")]
    assert back[0][0] > back[-1][0]  # drawn from j back to a
    empty = layout([], [], [])
    assert (empty.x, empty.routes, empty.layers) == ({}, {}, 0)
    assert layout(["x"], [box], []).layers == 1


def test_a_raw_input_sits_next_to_its_first_reader() -> None:
    keys = ["raw", "j1", "a1", "j2", "a2", "j3"]
    edges = [("j1", "a1"), ("a1", "j2"), ("j2", "a2"), ("a2", "j3"), ("raw", "j3")]
    placed = layout(keys, [Box(50, 20)] * len(keys), edges)
    assert placed.x["raw"] == placed.x["a2"]  # not in the first column, far from j3


def _job(i: int, step: int, started: float, kind: str = "run") -> JobSummary:
    return JobSummary(f"{i:064x}", f"cmd {i}", started, "complete", kind, step=step)


def test_superseded_and_stale_follow_roarctl_dags_rules() -> None:
    prep, train, prep2, evaluate, build = (
        _job(1, 1, 1.0),
        _job(2, 2, 2.0),
        _job(3, 1, 3.0),
        _job(4, 3, 4.0),
        _job(5, 1, 0.5, "build"),
    )
    io = [
        (prep.id, 1, "c1", "clean.csv", 1),
        (train.id, 0, "c1", "clean.csv", 1),
        (train.id, 1, "m1", "model", 1),
        (prep2.id, 1, "c2", "clean.csv", 1),
        (evaluate.id, 0, "m1", "model", 1),
        (evaluate.id, 1, "r1", "report", 1),
        (build.id, 1, "b1", "lib.so", 1),
    ]
    steps = {s.job.id: s for s in dag.steps([build, prep, train, prep2, evaluate], io)}
    assert [s.ref for s in steps.values()] == ["@B1", "@1", "@2", "@1", "@3"]
    assert steps[prep.id].superseded and not steps[prep2.id].superseded
    assert steps[train.id].stale == "@1 re-ran and changed clean.csv"
    assert steps[evaluate.id].stale == "upstream @2 is stale"
    assert steps[prep2.id].stale is None and steps[build.id].stale is None


def test_a_nodes_many_leaves_fold_into_one_more_node() -> None:
    b = dag.Builder()
    job = _job(1, 1, 1.0)
    b.job(job)
    for i in range(10):
        b.artifact(f"{i:064x}", f"out/{i}.png")
        b.edge(job.id, f"{i:064x}", output=True)
    b.artifact("f" * 64, "in.csv")
    b.edge(job.id, "f" * 64, output=False)
    drawn = b.draw(lambda n: f"/{n.id}", lambda key: f"?expand={key}")
    kinds = [n.kind for n in drawn.nodes]
    assert kinds.count("artifact") == 1 + dag.LEAVES - 1 and kinds.count("more") == 1
    [more] = [n for n in drawn.nodes if n.kind == "more"]
    assert more.label == "+7 more outputs" and drawn.folded == 7
    assert more.href == f"?expand=j{job.id[:16]}"
    opened = b.draw(lambda n: "", lambda key: "", expanded=[f"j{job.id[:16]}"])
    assert [n.kind for n in opened.nodes].count("artifact") == 11
    assert dag.expand_keys(["j" + "0" * 16, "x", "<script>", "j" + "0" * 16]) == ["j" + "0" * 16]


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo/commit/"),
        ("git@github.com:org/repo.git", "https://github.com/org/repo/commit/"),
        ("ssh://git@gitlab.com/group/sub/repo", "https://gitlab.com/group/sub/repo/-/commit/"),
        ("https://codeberg.org/o/r", "https://codeberg.org/o/r/commit/"),
        ("https://git.example.org/o/r.git", None),  # not a known forge
        ("/srv/git/repo.git", None),
        ('https://github.com/a/b"onmouseover="x', None),
        ("https://github.com/a/<script>", None),
        ("https://github.com/../x", None),
        ("javascript:alert(1)//github.com/a/b", None),
    ],
)
def test_commit_links_only_to_known_forges_from_clean_remotes(remote: str, url: str | None) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert links.commit_url({"origin": remote}, commit) == (url and url + commit)
    assert links.commit_url({"origin": remote}, "not-a-commit") is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://wandb.ai/team/proj/runs/abc", True),
        ("http://127.0.0.1:5000/#/experiments/1/runs/2", True),
        ("javascript:alert(1)", False),
        ("JAVASCRIPT:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("https://x.org/a\"onclick='y'", False),
        ("//evil.example/x", False),
        ("mlruns/0/abc", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_urls_become_links(value: str | None, ok: bool) -> None:
    assert (links.web_url(value) is not None) == ok
