"""roard's logic, tested directly: the path rule (classify.decide), staleness in the session
graph, the lineage walk, diff, and the store's own guarantees, on real SQLite stores filled
through roard.store (the same functions a run's finish uses)."""

from __future__ import annotations

import shlex
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import pytest

from roar.errors import NotFound, StoreError
from roar.hashing import Key
from roar.model import FilteredSummary
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
) -> None:
    """A finished job, written as a run's announce and finish write one."""
    reads, writes = reads or {}, writes or {}
    rows = [(0, p.encode(), d, 10, None) for p, d in reads.items()]
    rows += [(1, p.encode(), d, 10, None) for p, d in writes.items()]
    env_blob = await jobs.put_blob(store, env or {})
    async with store.write() as tx:
        await jobs.insert(
            tx,
            job_id=job_id,
            project_id=None,
            status="running",
            command=shlex.join(argv),
            argv=argv,
            cwd=b"/p",
            started=started,
            kind="run",
            session=session,
            step=step,
            env_blob=env_blob,
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
            ("/p/model", [("train", [("/p/clean~", [])])]),  # shown once, then marked
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
            ("/p/clean", [("prep", [("/p/raw~", [])])]),
            ("/p/model", [("train", [("/p/clean~", [])])]),
        ],
    )
    with pytest.raises(NotFound):
        await lineage.walk(store, "job", "ffffffffffff", False, 0)


@pytest.mark.anyio
async def test_an_artifacts_producer_is_the_latest_job_that_wrote_it(store: Store) -> None:
    await _pipeline(store)
    await add_job(store, "b00000000004", ["cp", "raw", "clean"], started=4,
                  reads={"/p/raw": h("raw")}, writes={"/p/copy": h("clean")})  # fmt: skip
    up = await lineage.walk(store, "artifact", h("clean"), False, 0)
    assert _tree(up) == ("/p/copy", [("cp raw clean", [("/p/raw", [])])])


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
