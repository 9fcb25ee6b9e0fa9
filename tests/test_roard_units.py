"""roard's logic, tested directly: the path rule (classify.decide), staleness in the session
graph, the lineage walk, diff, and the store's own guarantees, on real SQLite stores filled
through roard.store (the same functions a run's finish uses)."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import pytest

from roar.errors import NotFound, StoreError
from roar.hashing import Key
from roar.model import DirtyFile, FilteredSummary, GitState
from roar.protocol import LineageNode
from roard import diff, lineage, queries, sessions
from roard.classify import RDWR, READ, WRITTEN, Classified, Merged, Totals, decide
from roard.filters import Filters
from roard.store import Store, jobs, records


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "roar.db")
    try:
        yield s
    finally:
        await s.close()


def h(name: str) -> str:
    """A content hash, named for the test."""
    return blake3.blake3(name.encode()).hexdigest()


EMPTY = h("")  # the empty file's hash


async def add_job(
    store: Store,
    job_id: str,
    argv: list[str],
    *,
    started: float,
    session: int | None = None,
    step: int | None = None,
    reads: dict[str, str] | None = None,
    writes: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    project: int | None = None,
    git: GitState | None = None,
) -> None:
    """A finished job, written as a run's announce and finish write one (contents of 10 bytes,
    the empty one of 0)."""
    reads, writes = reads or {}, writes or {}
    rows = [(0, p.encode(), d, 0 if d == EMPTY else 10, None) for p, d in reads.items()]
    rows += [(1, p.encode(), d, 0 if d == EMPTY else 10, None) for p, d in writes.items()]
    env_blob = await jobs.put_blob(store, env or {})
    async with store.write() as tx:
        await jobs.insert(
            tx,
            job_id=job_id,
            project_id=project,
            status="running",
            command=shlex.join(argv),
            argv=argv,
            cwd=b"/p",
            started=started,
            kind="run",
            session=session,
            step=step,
            env_blob=env_blob,
            git=git,
        )
        await jobs.add_io(tx, job_id, rows, started)
        await jobs.settle(
            tx,
            job_id,
            status="complete",
            ended=started + 1,
            exit_code=0,
            signal=None,
            inputs=len(reads),
            outputs=len(writes),
            packages={},
            processes=[],
            blind_spots=[],
            filtered=FilteredSummary(),
            trackers=[],
            external=[],
        )


# ---------------------------------------------------------------- classify.decide

FILE = stat.S_IFREG | 0o644
KEY = Key(1, 2, 3, 4, 5)


def _decide(
    bits: int,
    pre_existed: bool | None = None,
    pre_hash: str | None = None,
    mode: int | None = FILE,
    path: bytes = b"/w/f",
    filters: Filters | None = None,
) -> tuple[Classified, Totals]:
    m = Merged()
    m.add(bits, pre_existed, pre_hash, 7 if pre_hash else None)
    out, totals = Classified(), Totals()
    key = KEY if mode is not None and stat.S_ISREG(mode) else None
    decide(path, m, mode, key, filters or Filters(), out, totals)
    return out, totals


def _what(out: Classified) -> tuple[dict, dict, dict]:
    return out.inputs, out.outputs, out.rdwr


def test_decide_reads_and_writes() -> None:
    p = b"/w/f"
    # read an existing file: an input, hashed at the end
    out, _ = _decide(READ)
    assert _what(out) == ({p: (None, None)}, {}, {}) and out.keys == {p: KEY}
    # created: an output with no previous content
    assert _what(_decide(WRITTEN, pre_existed=False)[0]) == ({}, {p: None}, {})
    # overwritten without being read: an output that replaced something unknown ("")
    assert _what(_decide(WRITTEN, pre_existed=True)[0]) == ({}, {p: ""}, {})
    # read, then overwritten: the content read is an input, the new one an output
    out, _ = _decide(READ | WRITTEN, pre_existed=True, pre_hash="old")
    assert _what(out) == ({p: ("old", 7)}, {p: "old"}, {})
    # written, then deleted: a temporary file, neither
    assert _what(_decide(WRITTEN, pre_existed=False, mode=None)[0]) == ({}, {}, {})
    # read, then deleted: the content read is still an input
    assert _what(_decide(READ, pre_existed=True, pre_hash="old", mode=None)[0]) == (
        {p: ("old", 7)},
        {},
        {},
    )
    # O_RDONLY|O_CREAT made it: not an input
    assert _what(_decide(READ, pre_existed=False)[0]) == ({}, {p: None}, {})


def test_decide_read_write_opens_depend_on_content() -> None:
    p = b"/w/f"
    # opened O_RDWR with its old content hashed: decided after hashing (same hash: input)
    assert _what(_decide(RDWR, pre_existed=True, pre_hash="old")[0]) == ({}, {}, {p: "old"})
    # O_RDWR|O_CREAT of a new file: an output
    assert _what(_decide(RDWR, pre_existed=False)[0]) == ({}, {p: None}, {})
    # O_RDWR of a file that is gone by the end: its old content, if known, was an input
    assert _what(_decide(RDWR, pre_existed=True, pre_hash="old", mode=None)[0]) == (
        {p: ("old", 7)},
        {},
        {},
    )


def test_decide_filters_system_files_but_counts_them() -> None:
    for path, rule in [
        (b"/proc/self/status", "pseudo-fs"),
        (b"/usr/lib/x86_64-linux-gnu/libc.so.6", "system"),  # by where it lives, not its name
        (b"/usr/share/zoneinfo/UTC", "system"),
        (b"/home/u/.venv/lib/python3.11/site-packages/x.py", "python"),
    ]:
        out, totals = _decide(READ, path=path)
        assert _what(out) == ({}, {}, {}), path
        assert totals.filtered == {rule: 1} and totals.filtered_paths == [path]
    out, totals = _decide(READ, mode=stat.S_IFDIR | 0o755)
    assert totals.filtered == {"not-a-file": 1}
    rules = Filters(exclude=["/data/scratch/*"], include=["/etc/myapp/*"])
    assert _decide(READ, path=b"/data/scratch/x", filters=rules)[1].filtered == {"config": 1}
    out, totals = _decide(READ, path=b"/etc/myapp/app.toml", filters=rules)
    assert out.inputs == {b"/etc/myapp/app.toml": (None, None)} and totals.filtered == {}


# ---------------------------------------------------------------- the session graph


@pytest.mark.anyio
async def test_a_step_is_stale_when_an_upstream_step_reran_with_other_outputs(
    store: Store,
) -> None:
    s = await sessions.new(store, None)
    await add_job(store, "a00000000001", ["prep"], started=1, session=s, step=1,
                  writes={"/p/clean": h("clean1")})  # fmt: skip
    await add_job(store, "a00000000002", ["train"], started=2, session=s, step=2,
                  reads={"/p/clean": h("clean1")}, writes={"/p/model": h("model1")})  # fmt: skip
    await add_job(store, "a00000000003", ["eval"], started=3, session=s, step=3,
                  reads={"/p/model": h("model1")}, writes={"/p/metrics": h("m1")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [(st.ref, st.depends_on, st.stale_reason) for st in dag.steps] == [
        ("@1", [], None),
        ("@2", ["@1"], None),
        ("@3", ["@2"], None),
    ]
    # @1 re-runs and writes the same bytes: nothing is stale
    await add_job(store, "a00000000004", ["prep"], started=4, session=s, step=1,
                  writes={"/p/clean": h("clean1")})  # fmt: skip
    assert all(st.stale_reason is None for st in (await sessions.graph(store, s)).steps)
    # @1 re-runs and writes other bytes: @2 read the old ones, and @3 is downstream of @2
    await add_job(store, "a00000000005", ["prep"], started=5, session=s, step=1,
                  writes={"/p/clean": h("clean2")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [(st.ref, st.job.id, st.superseded, st.stale_reason) for st in dag.steps] == [
        ("@1", "a00000000005", ["a00000000001", "a00000000004"], None),
        ("@2", "a00000000002", [], "@1 re-ran and changed /p/clean"),
        ("@3", "a00000000003", [], "upstream @2 is stale"),
    ]
    # the log shows the same marks
    log = {j.id: j for j in await queries.log(store, b"/", 10, all_projects=True)}
    assert log["a00000000001"].superseded and not log["a00000000005"].superseded
    assert log["a00000000002"].stale and log["a00000000003"].stale
    assert not log["a00000000005"].stale
    # and re-running @2 on the new input clears it (and @3's reason becomes its own)
    await add_job(store, "a00000000006", ["train"], started=6, session=s, step=2,
                  reads={"/p/clean": h("clean2")}, writes={"/p/model": h("model2")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [st.stale_reason for st in dag.steps] == [None, None, "@2 re-ran and changed /p/model"]


# ---------------------------------------------------------------- the lineage walk


def _tree(node: LineageNode) -> tuple:
    mark = "~" if node.truncated else ""
    return (node.label + mark, [_tree(c) for c in node.children])


async def _pipeline(store: Store) -> None:
    """raw -> prep -> clean -> train -> model; eval reads clean and model -> metrics."""
    await add_job(store, "b00000000001", ["prep"], started=1,
                  reads={"/p/raw": h("raw")}, writes={"/p/clean": h("clean")})  # fmt: skip
    await add_job(store, "b00000000002", ["train"], started=2,
                  reads={"/p/clean": h("clean")}, writes={"/p/model": h("model")})  # fmt: skip
    await add_job(store, "b00000000003", ["eval"], started=3,
                  reads={"/p/clean": h("clean"), "/p/model": h("model")},
                  writes={"/p/metrics": h("metrics")})  # fmt: skip


@pytest.mark.anyio
async def test_lineage_walks_upstream_and_downstream_once_per_node(store: Store) -> None:
    await _pipeline(store)
    up = await lineage.walk(store, "artifact", h("metrics"), False, 0)
    assert _tree(up) == (
        "/p/metrics",
        [("eval", [
            ("/p/clean", [("prep", [("/p/raw", [])])]),
            ("/p/model", [("train", [("/p/clean", [("prep~", [])])])]),  # a job shown once
        ])],
    )  # fmt: skip
    assert [(r.path, r.size) for r in await lineage.with_sizes(
        store, lineage.root_inputs(up, unsourced=False))] == [("/p/raw", 10)]  # fmt: skip
    down = await lineage.walk(store, "artifact", h("raw"), True, 0)
    assert _tree(down) == (
        "/p/raw",
        [("prep", [("/p/clean", [
            ("train", [("/p/model", [("eval~", [])])]),
            ("eval", [("/p/metrics", [])]),
        ])])],
    )  # fmt: skip
    shallow = await lineage.walk(store, "job", "b00000000003", False, 1)
    assert _tree(shallow) == (
        "eval",
        [
            ("/p/clean", [("prep", [("/p/raw", [])])]),  # raw has no maker: a leaf
            ("/p/model", [("train", [("/p/clean~", [])])]),  # clean's maker is one level deeper
        ],
    )
    with pytest.raises(NotFound):
        await lineage.walk(store, "job", "ffffffffffff", False, 0)


# ---------------------------------------------------------------- which job an input came from


@pytest.mark.anyio
async def test_the_producer_is_the_earliest_writer_and_later_copies_are_copies(
    store: Store,
) -> None:
    await _pipeline(store)
    await add_job(store, "b00000000004", ["cp", "clean", "copy"], started=4,
                  reads={"/p/clean": h("clean")}, writes={"/p/copy": h("clean")})  # fmt: skip
    await add_job(store, "b00000000005", ["prep", "again"], started=5,
                  reads={"/p/raw": h("raw")}, writes={"/p/clean": h("clean")})  # fmt: skip
    detail = await queries.artifact_detail(store, h("clean"))
    assert [r.id for r in detail.produced_by] == ["b00000000001"]
    assert [(r.id, r.path) for r in detail.copies] == [
        ("b00000000004", "/p/copy"),
        ("b00000000005", "/p/clean"),  # a re-run that made the same bytes
    ]
    # the readers before the copy and the re-run still link to prep
    train = await queries.job_detail(store, "b00000000002", False)
    assert [(i.path, i.producer) for i in train.inputs] == [("/p/clean", "b00000000001")]
    # a hash starts at the producer; a path at the job that last wrote it there
    assert _tree(await lineage.walk(store, "artifact", h("clean"), False, 0)) == (
        "/p/clean", [("prep", [("/p/raw", [])])]
    )  # fmt: skip
    at_copy = await lineage.walk(store, "artifact", h("clean"), False, 0, b"/p/copy")
    assert _tree(at_copy) == (
        "/p/copy", [("cp clean copy", [("/p/clean", [("prep", [("/p/raw", [])])])])]
    )  # fmt: skip
    assert _tree(await lineage.walk(store, "artifact", h("clean"), False, 0, b"/p/clean")) == (
        "/p/clean", [("prep again", [("/p/raw", [])])]
    )  # fmt: skip
    # a content only ever copied has no producer: a hash names no maker, a path its copy
    await add_job(store, "b00000000006", ["cp", "raw", "raw2"], started=6,
                  reads={"/p/raw": h("raw")}, writes={"/p/raw2": h("raw")})  # fmt: skip
    raw = await queries.artifact_detail(store, h("raw"))
    assert (raw.produced_by, [r.id for r in raw.copies]) == ([], ["b00000000006"])
    assert _tree(await lineage.walk(store, "artifact", h("raw"), False, 0)) == ("/p/raw", [])
    assert _tree(await lineage.walk(store, "artifact", h("raw"), False, 0, b"/p/raw2")) == (
        "/p/raw2", [("cp raw raw2", [("/p/raw", [])])]
    )  # fmt: skip


async def _sources(store: Store, job_id: str) -> dict[str, str | None]:
    """A job's inputs: path -> the job each came from."""
    return {i.path: i.producer for i in (await queries.job_detail(store, job_id, False)).inputs}


@pytest.mark.anyio
async def test_an_input_comes_from_the_latest_writer_at_its_path_that_started_before_it(
    store: Store,
) -> None:
    await add_job(store, "d00000000001", ["make", "v1"], started=1, writes={"/p/f": h("v1")})
    await add_job(store, "d00000000002", ["read"], started=2, reads={"/p/f": h("v1")})
    await add_job(store, "d00000000003", ["make", "v1", "again"], started=3,
                  writes={"/p/f": h("v1")})  # fmt: skip
    await add_job(store, "d00000000004", ["read"], started=4, reads={"/p/f": h("v1")})
    # a job that started later never is a source, whenever it wrote: not the re-run for the
    # first reader, and not the copy (started later than both readers) for either
    await add_job(store, "d00000000005", ["cp", "f", "g"], started=5,
                  reads={"/p/f": h("v1")}, writes={"/p/g": h("v1")})  # fmt: skip
    assert await _sources(store, "d00000000002") == {"/p/f": "d00000000001"}
    assert await _sources(store, "d00000000004") == {"/p/f": "d00000000003"}
    assert await _sources(store, "d00000000005") == {"/p/f": "d00000000003"}
    # a job that reads and rewrites its file links to the one before it, never to itself;
    # on equal start times the record made first is the earlier
    await add_job(store, "d00000000006", ["sed", "-i", "f"], started=6,
                  reads={"/p/f": h("v1")}, writes={"/p/f": h("v2")})  # fmt: skip
    await add_job(store, "d00000000007", ["sed", "-i", "f"], started=6,
                  reads={"/p/f": h("v2")}, writes={"/p/f": h("v3")})  # fmt: skip
    await add_job(store, "d00000000008", ["sed", "-i", "f"], started=8,
                  reads={"/p/f": h("v3")}, writes={"/p/f": h("v3")})  # fmt: skip
    assert await _sources(store, "d00000000006") == {"/p/f": "d00000000003"}
    assert await _sources(store, "d00000000007") == {"/p/f": "d00000000006"}
    assert await _sources(store, "d00000000008") == {"/p/f": "d00000000007"}


@pytest.mark.anyio
async def test_walks_go_back_in_time_and_cannot_loop(store: Store) -> None:
    """Two jobs that each wrote what the other read: with links by content alone, a cycle."""
    await add_job(store, "e00000000001", ["x"], started=1,
                  reads={"/p/a": h("A")}, writes={"/p/b": h("B")})  # fmt: skip
    await add_job(store, "e00000000002", ["y"], started=2,
                  reads={"/p/b": h("B")}, writes={"/p/a": h("A")})  # fmt: skip
    assert _tree(await lineage.walk(store, "job", "e00000000002", False, 0)) == (
        "y", [("/p/b", [("x", [("/p/a", [])])])]
    )  # fmt: skip
    assert _tree(await lineage.walk(store, "job", "e00000000001", False, 0)) == (
        "x", [("/p/a", [])]
    )  # fmt: skip
    assert _tree(await lineage.walk(store, "job", "e00000000001", True, 0)) == (
        "x", [("/p/b", [("y", [("/p/a", [])])])]
    )  # fmt: skip
    assert _tree(await lineage.walk(store, "job", "e00000000002", True, 0)) == (
        "y", [("/p/a", [])]
    )  # fmt: skip


def _git(root: Path, files: dict[str, str]) -> str:
    """A real repository with these files committed; its commit."""
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    run = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*run, "init", "-q"], check=True)
    subprocess.run([*run, "add", "."], check=True)
    subprocess.run([*run, "commit", "-qm", "init"], check=True)
    out = subprocess.run([*run, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.mark.anyio
async def test_a_content_written_elsewhere_counts_only_when_nothing_else_explains_it(
    store: Store, tmp_path: Path
) -> None:
    """Bytes that reached a path outside roar's view (copied by hand) link to the job that made
    them elsewhere, unless they are empty, from another project, a copy themselves, or the path
    is a committed file of the reader's git state."""
    repo = tmp_path / "repo"
    commit = _git(repo, {"conf.txt": "same\n", "notes.txt": "n\n"})
    p = str(repo)
    here = await jobs.project_id(store, os.fsencode(repo))
    elsewhere = await jobs.project_id(store, b"/elsewhere")
    git = GitState(
        root=p, commit=commit, dirty=[DirtyFile(path="deploy/model", status="untracked")]
    )
    ours = {"project": here, "git": git}
    await add_job(store, "f00000000001", ["train"], started=1, project=here,
                  writes={f"{p}/out/model": h("model"), f"{p}/out/conf": h("conf"),
                          f"{p}/out/empty": EMPTY, f"{p}/out/ignored": h("ignored")})  # fmt: skip
    await add_job(store, "f00000000002", ["other"], started=2, project=elsewhere,
                  writes={"/elsewhere/x": h("x")})  # fmt: skip
    await add_job(store, "f00000000003", ["cp"], started=3, project=here,
                  reads={"/data/raw": h("raw")}, writes={f"{p}/out/raw": h("raw")})  # fmt: skip
    await add_job(store, "f00000000004", ["serve"], started=4, **ours, reads={
        f"{p}/deploy/model": h("model"),  # untracked: copied by hand from out/model
        f"{p}/data/ignored": h("ignored"),  # not in the commit, not dirty: git ignores it
        f"{p}/conf.txt": h("conf"),  # committed, unmodified: a raw source
        f"{p}/deploy/empty": EMPTY,  # empty: says nothing about where it came from
        f"{p}/deploy/x": h("x"),  # only another project wrote it
        f"{p}/deploy/raw": h("raw"),  # only a copy wrote it
        "/outside/model": h("model"),  # outside the work tree: not committed
    })  # fmt: skip
    assert await _sources(store, "f00000000004") == {
        f"{p}/conf.txt": None,
        f"{p}/data/ignored": "f00000000001",
        f"{p}/deploy/empty": None,
        f"{p}/deploy/model": "f00000000001",
        f"{p}/deploy/raw": None,
        f"{p}/deploy/x": None,
        "/outside/model": "f00000000001",
    }
    # outside any project, no such links; when the commit cannot be read any more, a clean
    # file of the work tree is taken as committed
    await add_job(store, "f00000000005", ["serve"], started=5,
                  reads={"/outside/model": h("model")})  # fmt: skip
    assert await _sources(store, "f00000000005") == {"/outside/model": None}
    gone = GitState(root=str(tmp_path / "gone"), commit=commit)
    await add_job(store, "f00000000006", ["serve"], started=6, project=here, git=gone,
                  reads={f"{tmp_path}/gone/model": h("model")})  # fmt: skip
    assert await _sources(store, "f00000000006") == {f"{tmp_path}/gone/model": None}


@pytest.mark.anyio
async def test_dag_edges_and_staleness_follow_the_sources(store: Store) -> None:
    s = await sessions.new(store, None)
    await add_job(store, "g00000000001", ["wc"], started=1, session=s, step=1,
                  reads={"/p/a": h("a")}, writes={"/p/n": h("n")})  # fmt: skip
    await add_job(store, "g00000000002", ["cp", "a", "b"], started=2, session=s, step=2,
                  reads={"/p/a": h("a")}, writes={"/p/b": h("a")})  # fmt: skip
    await add_job(store, "g00000000003", ["cat", "b", "n"], started=3, session=s, step=3,
                  reads={"/p/b": h("a"), "/p/n": h("n")}, writes={"/p/c": h("c")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [(st.ref, st.depends_on, st.stale_reason) for st in dag.steps] == [
        ("@1", [], None),  # not on the later copy
        ("@2", [], None),
        ("@3", ["@1", "@2"], None),
    ]
    # @1 re-runs on a changed a: the old n is gone, @3 read it; @2 read a but from no step
    await add_job(store, "g00000000004", ["wc"], started=4, session=s, step=1,
                  reads={"/p/a": h("a2")}, writes={"/p/n": h("n2")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [(st.ref, st.depends_on, st.stale_reason) for st in dag.steps] == [
        ("@1", [], None),
        ("@2", [], None),
        ("@3", ["@1", "@2"], "@1 re-ran and changed /p/n"),
    ]
    # a step re-run that reads its own earlier output depends on no other step for it
    await add_job(store, "g00000000005", ["cat", "b", "n"], started=5, session=s, step=3,
                  reads={"/p/c": h("c"), "/p/n": h("n2")}, writes={"/p/c": h("c2")})  # fmt: skip
    dag = await sessions.graph(store, s)
    assert [(st.ref, st.depends_on, st.stale_reason) for st in dag.steps][2] == ("@3", ["@1"], None)


# ---------------------------------------------------------------- diff


@pytest.mark.anyio
async def test_diff_names_what_differs_and_where_histories_diverge(store: Store) -> None:
    await add_job(store, "c00000000001", ["prep", "--seed", "1"], started=1,
                  reads={"/p/raw": h("raw")}, writes={"/p/clean": h("clean1")})  # fmt: skip
    await add_job(store, "c00000000002", ["train", "--lr", "0.1"], started=2, env={"SEED": "1"},
                  reads={"/p/clean": h("clean1")}, writes={"/p/model": h("m1")})  # fmt: skip
    await add_job(store, "c00000000003", ["prep", "--seed", "2"], started=3,
                  reads={"/p/raw": h("raw")}, writes={"/p/clean": h("clean2")})  # fmt: skip
    await add_job(store, "c00000000004", ["train", "--lr", "0.2"], started=4, env={"SEED": "2"},
                  reads={"/p/clean": h("clean2")}, writes={"/p/model": h("m2")})  # fmt: skip
    reply = await diff.compare(store, "c00000000002", "c00000000004", b"/p")
    assert not reply.same
    assert [(e.field, e.a, e.b, e.note) for e in reply.entries] == [
        ("command", "train --lr 0.1", "train --lr 0.2", "0.1 -> 0.2"),
        ("input clean", h("clean1"), h("clean2"),
         "first divergence: the command that made clean (prep --seed 1 vs prep --seed 2)"),
        ("env SEED", "1", "2", ""),
    ]  # fmt: skip
    # the outputs name their jobs: diff of two artifacts compares the jobs that made them
    by_artifact = await diff.compare(store, h("m1")[:16], h("m2")[:16], b"/p")
    assert (by_artifact.a, by_artifact.b) == ("c00000000002", "c00000000004")
    assert (await diff.compare(store, "c00000000002", "c00000000002", b"/p")).same
    with pytest.raises(NotFound, match="no recorded job produced"):
        await diff.compare(store, h("raw")[:16], "c00000000002", b"/p")


# ---------------------------------------------------------------- the store itself


@pytest.mark.anyio
async def test_store_errors_are_store_errors_and_roll_back(store: Store) -> None:
    with pytest.raises(StoreError, match="the store failed"):
        await store.rows("SELECT * FROM no_such_table")
    with pytest.raises(StoreError):
        async with store.write() as tx:
            await tx.execute("INSERT INTO sessions (project_id, started) VALUES (NULL, 1)")
            await tx.execute("INSERT INTO jobs (id) VALUES ('x')")  # NOT NULL columns missing
    assert await store.scalar("SELECT count(*) FROM sessions") == 0  # rolled back whole
    async with store.write() as tx:  # and the writer is usable again
        await tx.execute("INSERT INTO sessions (project_id, started) VALUES (NULL, 1)")
    assert await store.scalar("SELECT count(*) FROM sessions") == 1  # seen by the readers


@pytest.mark.anyio
async def test_records_read_back_what_was_written(store: Store) -> None:
    await _pipeline(store)
    job = await records.read_job(store, "b00000000003")
    assert (job.command, job.status, job.cwd, job.exit_code) == ("eval", "complete", "/p", 0)
    assert [(i.path, i.hash) for i in job.inputs] == [
        ("/p/clean", h("clean")),
        ("/p/model", h("model")),
    ]
    assert [(o.path, o.hash) for o in job.outputs] == [("/p/metrics", h("metrics"))]
    art = await records.read_artifact(store, h("clean"))
    assert (art.size, art.paths) == (10, ["/p/clean"])
    with pytest.raises(NotFound):
        await records.read_job(store, "ffffffffffff")
    with pytest.raises(NotFound):
        await records.read_artifact(store, h("nothing"))
