"""The registry links jobs by roard's producer rule (glaas.graph, roard/sources.py), on both
backends: an input comes from the latest job that wrote its content before the reader started
(at its path; else the earliest job elsewhere that made it without reading it), so a later copy
never becomes the maker of what an earlier job read, and of two writers of the same bytes each
reader links to the one before it. Checked through the API (lineage up and down, the session's
DAG, the artifact's producer), roarctl's views of those graphs, and the web pages."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from registry_support import Client, batch, hexdigest, make_job, new_session

from roar import registry
from roarctl import remote

pytest_plugins = ["registry_support"]  # the fixtures


def _decode(response: Any, kind: Any) -> Any:
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=kind)


def _ingest(client: Client, *jobs: Any, session: registry.Session) -> list[str]:
    for n, job in enumerate(jobs, 1):
        job.step, job.started, job.ended = n, 1.75e9 + 10 * n, 1.75e9 + 10 * n + 5
    data = batch(*jobs, session=session, visibility="public")
    ids: list[str] = _decode(client.ingest(data), registry.Ingested).ids
    return ids


def _lineage(client: Client, ref: str, direction: str = "up") -> registry.Graph:
    graph: registry.Graph = _decode(
        client.get(f"/lineage/{ref}", direction=direction, depth=10), registry.Graph
    )
    return graph


def _jobs(graph: registry.Graph) -> set[str]:
    return {j.id for j in graph.jobs}


def _sources(graph: registry.Graph) -> dict[tuple[str, str], str | None]:
    return {(e.job, e.artifact): e.source for e in graph.edges if e.role == "input"}


def _reaches(page: str, start: str, goal: str) -> bool:
    """Whether the page's drawing has a path of edges from node `start` to node `goal`."""
    keys = dict(re.findall(r'data-key="([^"]+)" data-i="(\d+)"', page))
    index = {i: k for k, i in keys.items()}
    edges: dict[str, set[str]] = {}
    for f, t in re.findall(r'data-f="(\d+)" data-t="(\d+)"', page):
        edges.setdefault(index[f], set()).add(index[t])
    assert start in keys and goal in keys, (start, goal, sorted(keys))
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return goal in seen


def test_a_later_copy_is_not_the_maker_of_what_an_earlier_job_read(client: Client) -> None:
    """`wc -c < a.txt > n.txt`, then `cp a.txt b.txt`, then `sort b.txt > s.txt`, then a job
    that reads the same bytes at a path no job wrote (copied by hand)."""
    a, n, s, other = hexdigest(), hexdigest(), hexdigest(), hexdigest()
    session = new_session()
    wc = make_job([("a.txt", a)], [("n.txt", n)], "wc -c")
    cp = make_job([("a.txt", a)], [("b.txt", a)], "cp a.txt b.txt")
    sort = make_job([("b.txt", a)], [("s.txt", s)], "sort b.txt")
    hand = make_job([("d.txt", a)], [("o.txt", other)], "cat d.txt")
    ids = _ingest(client, wc, cp, sort, hand, session=session)
    wc_id, cp_id, sort_id, hand_id = ids

    up = _lineage(client, n)  # n.txt: made by wc, from a.txt that no job made
    assert _jobs(up) == {wc_id}
    assert _sources(up) == {(wc_id, a): None}
    # s.txt: sort read b.txt, written there by the cp (a copy is how it got there)
    up = _lineage(client, s)
    assert _jobs(up) == {sort_id, cp_id}
    assert _sources(up) == {(sort_id, a): cp_id, (cp_id, a): None}
    tree = remote.tree(up, downstream=False)
    [via_sort] = tree.children
    [b_txt] = via_sort.children
    assert [c.id for c in b_txt.children] == [cp_id]
    [a_txt] = b_txt.children[0].children
    assert a_txt.children == []  # not walked back into the copy
    assert _jobs(_lineage(client, other)) == {hand_id}  # a copy made nothing elsewhere

    # down from the cp: only what read its b.txt; wc read a.txt before it
    down = _lineage(client, cp_id, "down")
    assert _jobs(down) == {cp_id, sort_id}
    down = _lineage(client, a, "down")  # from the content: every job that read it
    assert _jobs(down) == set(ids)
    assert _sources(down)[(sort_id, a)] == cp_id
    assert _sources(down)[(wc_id, a)] is None

    dag = _decode(client.get(f"/sessions/{session.hash}/dag"), registry.Graph)
    assert _sources(dag) == {
        (wc_id, a): None,
        (cp_id, a): None,
        (sort_id, a): cp_id,
        (hand_id, a): None,
    }
    steps = {x.ref: x.depends_on for x in remote.dag(dag, None).steps}
    assert steps == {"@1": [], "@2": [], "@3": ["@2"], "@4": []}

    entry = _decode(client.get(f"/artifacts/{a}"), registry.ArtifactEntry)
    assert entry.producer is None and entry.made_by == [cp_id]  # only copied
    page = client.http.get(f"/artifacts/{a}").text
    made = page.split('id="made-by"')[1].split('id="read-by"')[0]
    assert "only copied it" in made and f'href="/jobs/{cp_id}"' in made
    page = client.http.get(f"/sessions/{session.hash}").text
    assert not _reaches(page, f"j{cp_id}", f"j{wc_id}")
    assert _reaches(page, f"j{cp_id}", f"j{sort_id}")
    assert "stale" not in page.split('aria-label="Steps of this session"')[1]
    page = client.http.get(f"/artifacts/{n}").text
    assert f'data-key="j{cp_id}"' not in page  # n.txt's lineage has no cp
    sources = page.split('id="sources"')[1].split("Lineage around it")[0]
    assert a in sources


def test_of_two_writers_of_the_same_bytes_each_reader_links_to_the_one_before_it(
    client: Client,
) -> None:
    """make writes m.txt; use reads it; the same make re-runs and writes the same bytes; use
    re-runs and reads them: each use comes from the make before it."""
    src, m, out1, out2 = hexdigest(), hexdigest(), hexdigest(), hexdigest()
    session = new_session()
    make1 = make_job([("src.c", src)], [("m.txt", m)], "make")
    use1 = make_job([("m.txt", m)], [("out.txt", out1)], "use m.txt")
    make2 = make_job([("src.c", src)], [("m.txt", m)], "make again")
    use2 = make_job([("m.txt", m)], [("out2.txt", out2)], "use m.txt again")
    ids = _ingest(client, make1, use1, make2, use2, session=session)
    make1_id, use1_id, make2_id, use2_id = ids

    assert _jobs(_lineage(client, out1)) == {use1_id, make1_id}
    assert _jobs(_lineage(client, out2)) == {use2_id, make2_id}
    up = _lineage(client, m)  # a hash starts at its producer: the earliest that made it
    assert _jobs(up) == {make1_id}
    assert _jobs(_lineage(client, make1_id, "down")) == {make1_id, use1_id}
    assert _jobs(_lineage(client, make2_id, "down")) == {make2_id, use2_id}

    dag = _decode(client.get(f"/sessions/{session.hash}/dag"), registry.Graph)
    assert _sources(dag)[(use1_id, m)] == make1_id
    assert _sources(dag)[(use2_id, m)] == make2_id

    entry = _decode(client.get(f"/artifacts/{m}"), registry.ArtifactEntry)
    assert entry.producer == make1_id and entry.made_by == [make1_id, make2_id]
    # roarctl's `show --remote` takes produced_by from this walk's output edges
    assert [e.job for e in up.edges if e.artifact == m and e.role == "output"] == [make1_id]
    page = client.http.get(f"/artifacts/{m}").text
    made = page.split('id="made-by"')[1].split('id="copied-by"')[0]
    assert f'href="/jobs/{make1_id}"' in made and f'href="/jobs/{make2_id}"' not in made
    copies = page.split('id="copied-by"')[1].split('id="read-by"')[0]
    assert f'href="/jobs/{make2_id}"' in copies
    page = client.http.get(f"/jobs/{use1_id}").text
    inputs = page.split('id="inputs"')[1].split('id="outputs"')[0]
    assert f'href="/jobs/{make1_id}"' in inputs and f'href="/jobs/{make2_id}"' not in inputs
    page = client.http.get(f"/sessions/{session.hash}").text
    assert _reaches(page, f"j{make2_id}", f"j{use2_id}")
    assert not _reaches(page, f"j{make2_id}", f"j{use1_id}")
    assert not _reaches(page, f"j{make1_id}", f"j{use2_id}")


def test_bytes_that_reached_a_path_outside_roar_come_from_their_maker_unless_empty(
    client: Client,
) -> None:
    """No job wrote x.bin or e.txt where they were read: x.bin's bytes come from the job that
    made them elsewhere (out/x.bin), not from a copy of them; empty bytes come from no one."""
    x, empty, out = hexdigest(), "000000" + hexdigest()[6:], hexdigest()  # size 0
    session = new_session()
    make = make_job([], [("out/x.bin", x), ("out/e.txt", empty)], "make")
    cp = make_job([("out/x.bin", x)], [("backup/x.bin", x)], "cp out/x.bin backup/")
    use = make_job([("x.bin", x), ("e.txt", empty)], [("y", out)], "use x.bin e.txt")
    make_id, cp_id, use_id = _ingest(client, make, cp, use, session=session)
    up = _lineage(client, out)
    assert _jobs(up) == {use_id, make_id}
    assert _sources(up) == {(use_id, x): make_id, (use_id, empty): None}
    dag = _decode(client.get(f"/sessions/{session.hash}/dag"), registry.Graph)
    assert _sources(dag)[(use_id, x)] == make_id and _sources(dag)[(cp_id, x)] == make_id
    assert _jobs(_lineage(client, make_id, "down")) == {make_id, cp_id, use_id}
