"""The reproduction plan (roard.plan), tested directly on real SQLite stores filled through
roard.store: the producer rule (a later re-run, or a later job that copied the file, is never
an input's producer; the same path is preferred), the order (build steps first, a diamond's
jobs once each), root inputs found by hash only, secrets, and what is outside the base."""

from __future__ import annotations

import os
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import pytest

from roar.model import FilteredSummary, JobKind
from roar.protocol import GetPlan, PlanReply
from roard import plan
from roard.store import Store, jobs
from roard.store import sessions as session_rows


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
    return blake3.blake3(name.encode()).hexdigest()


class Pipeline:
    """Jobs recorded as a run's announce and finish record them, in a directory `root`."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = root
        self.t = 100.0
        self.sessions = 0

    async def job(
        self,
        job_id: str,
        reads: dict[str, str] | None = None,
        writes: dict[str, str] | None = None,
        *,
        kind: JobKind = "run",
        step: int | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        session: int | None = 1,
    ) -> None:
        self.t += 10
        where = cwd or self.root
        while session is not None and session > self.sessions:
            async with self.store.write() as tx:
                self.sessions = await session_rows.create(tx, None)

        def full(p: str) -> bytes:
            return os.fsencode(p if p.startswith("/") else str(self.root / p))

        def size(p: str) -> int:  # the file's when it is there (as a run records it)
            return os.path.getsize(full(p)) if os.path.exists(full(p)) else 64

        rows = [(0, full(p), d, size(p), None) for p, d in (reads or {}).items()]
        rows += [(1, full(p), d, size(p), None) for p, d in (writes or {}).items()]
        argv = argv or ["tool", job_id]
        env_blob = await jobs.put_blob(self.store, env or {"LANG": "C"})
        async with self.store.write() as tx:
            await jobs.insert(
                tx,
                job_id=job_id,
                project_id=None,
                status="running",
                command=shlex.join(argv),
                argv=argv,
                cwd=os.fsencode(where),
                started=self.t,
                kind=kind,
                session=session,
                step=step,
                git=None,
                env_blob=env_blob,
            )
            await jobs.add_io(tx, job_id, rows, self.t)
            await jobs.settle(
                tx,
                job_id,
                status="complete",
                ended=self.t + 1,
                exit_code=0,
                signal=None,
                inputs=len(reads or {}),
                outputs=len(writes or {}),
                packages={},
                processes=[],
                blind_spots=[],
                filtered=FilteredSummary(),
                trackers=[],
                external=[],
            )

    async def plan(self, target: str, **kw: object) -> PlanReply:
        req = GetPlan(
            target=os.fsencode(target), cwd=os.fsencode(self.root), into=b"/nonexistent/x", **kw
        )  # type: ignore[arg-type]
        return await plan.make(self.store, req)


@pytest.fixture
def pipe(store: Store, tmp_path: Path) -> Pipeline:
    root = tmp_path / "proj"
    root.mkdir()
    return Pipeline(store, root)


def order(p: PlanReply) -> list[str]:
    return [j.id for j in p.jobs]


@pytest.mark.anyio
async def test_an_input_comes_from_the_job_that_wrote_it_before_the_reader_started(
    pipe: Pipeline,
) -> None:
    await pipe.job("a00000000001", reads={"raw": h("raw")}, writes={"x": h("x1")})
    await pipe.job("b00000000002", reads={"x": h("x1")}, writes={"y": h("y")})
    await pipe.job("c00000000003", reads={"x": h("x1")}, writes={"copy-of-x": h("x1")})  # cp
    await pipe.job("d00000000004", reads={"raw": h("raw")}, writes={"x": h("x1")})  # a re-run
    p = await pipe.plan(h("y"))
    assert order(p) == ["a00000000001", "b00000000002"]
    assert p.jobs[1].inputs[0].producer == "a00000000001"
    assert [(w.path, w.producer) for w in p.wanted] == [("y", "b00000000002")]
    # the copy is made by the copying job, which reads what the first job made
    p = await pipe.plan(str(pipe.root / "copy-of-x"))
    assert order(p) == ["a00000000001", "c00000000003"]


@pytest.mark.anyio
async def test_a_producer_at_the_same_path_is_preferred_to_a_more_recent_one(
    pipe: Pipeline,
) -> None:
    await pipe.job("a00000000001", writes={"a.csv": h("same")})
    await pipe.job("e00000000002", writes={"b.csv": h("same")})
    await pipe.job("b00000000003", reads={"a.csv": h("same")}, writes={"out": h("out")})
    assert order(await pipe.plan(h("out"))) == ["a00000000001", "b00000000003"]


@pytest.mark.anyio
async def test_a_variant_is_reproduced_with_its_own_job_and_the_original_with_the_original(
    pipe: Pipeline,
) -> None:
    await pipe.job("a00000000001", writes={"clean": h("clean")}, step=1)
    await pipe.job("b00000000002", reads={"clean": h("clean")}, writes={"m": h("m1")}, step=2)
    await pipe.job("b00000000003", reads={"clean": h("clean")}, writes={"m": h("m2")}, step=2)
    await pipe.job("c00000000004", reads={"m": h("m2")}, writes={"r": h("r2")}, step=3)
    assert order(await pipe.plan(h("r2"))) == ["a00000000001", "b00000000003", "c00000000004"]
    assert order(await pipe.plan(h("m1"))) == ["a00000000001", "b00000000002"]


@pytest.mark.anyio
async def test_a_diamond_runs_each_job_once_in_dependency_order_builds_first(
    pipe: Pipeline,
) -> None:
    await pipe.job("f00000000000", writes={"unused": h("u")}, kind="build", step=1)
    await pipe.job("a00000000001", reads={"raw": h("raw")}, writes={"l": h("l")})
    await pipe.job("a00000000002", reads={"raw": h("raw")}, writes={"r": h("r")})
    await pipe.job("a00000000003", reads={"l": h("l"), "r": h("r")}, writes={"m": h("m")})
    await pipe.job("f00000000009", writes={"later": h("later")}, kind="build", step=2)
    p = await pipe.plan(h("m"))
    assert order(p) == ["f00000000000", "a00000000001", "a00000000002", "a00000000003"]
    assert p.jobs[0].ref == "@B1" and p.jobs[0].kind == "build"  # @B2 ran after: not needed
    assert [r.path for r in p.roots] == ["raw"]


@pytest.mark.anyio
async def test_root_inputs_are_found_by_hash_only_or_reported_missing(
    pipe: Pipeline, tmp_path: Path
) -> None:
    raw = pipe.root / "raw.csv"
    raw.write_text("1,2\n")
    digest = blake3.blake3(b"1,2\n").hexdigest()
    await pipe.job("a00000000001", reads={"raw.csv": digest}, writes={"out": h("out")})
    p = await pipe.plan(h("out"))
    assert [(r.path, r.source, r.origin) for r in p.roots] == [("raw.csv", "copy", str(raw))]
    assert not p.problems
    raw.write_text("changed\n")  # same name, other content: not the input
    p = await pipe.plan(h("out"))
    assert p.roots[0].source == "missing" and p.roots[0].names == [str(raw)]
    assert len(p.problems) == 1 and "raw.csv" in p.problems[0] and digest[:12] in p.problems[0]
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    (elsewhere / "renamed.bin").write_text("1,2\n")
    (elsewhere / "decoy.csv").write_text("9,9\n")  # the same size, another content
    p = await pipe.plan(h("out"), inputs=[os.fsencode(tmp_path / "elsewhere")])
    assert p.roots[0].source == "copy" and p.roots[0].origin == str(elsewhere / "renamed.bin")
    assert not p.problems


@pytest.mark.anyio
async def test_a_redacted_variable_must_come_from_somewhere(pipe: Pipeline) -> None:
    env = {"LANG": "C", "API_TOKEN": "<redacted>"}
    await pipe.job("a00000000001", writes={"out": h("out")}, env=env)
    p = await pipe.plan(h("out"))
    assert p.jobs[0].secrets == ["API_TOKEN"]
    assert len(p.problems) == 1 and p.problems[0].startswith("API_TOKEN is a secret")
    assert not (await pipe.plan(h("out"), env=["API_TOKEN"])).problems


@pytest.mark.anyio
async def test_what_was_made_outside_the_base_is_used_where_it_is(
    pipe: Pipeline, tmp_path: Path
) -> None:
    other = tmp_path / "downloads"
    other.mkdir()
    (other / "data.bin").write_text("payload")
    digest = blake3.blake3(b"payload").hexdigest()
    await pipe.job("a00000000001", writes={str(other / "data.bin"): digest}, cwd=other, session=2)
    await pipe.job("b00000000002", reads={str(other / "data.bin"): digest}, writes={"o": h("o")})
    p = await pipe.plan(h("o"))
    assert order(p) == ["b00000000002"]
    root = p.roots[0]
    assert (root.path, root.source, root.made_by) == (
        str(other / "data.bin"),
        "in-place",
        "a00000000001",
    )
    await pipe.job("c00000000003", writes={"/tmp/roar-plan-elsewhere.log": h("log")})
    p = await pipe.plan("c00000000003")
    assert any("outside" in x and "overwrite" in x for x in p.problems)


URL = "http://registry.test"


async def registry_plan(pipe: Pipeline, target: str, truncated: bool = False) -> PlanReply:
    """The plan from the registry's records of every job in the store (as `register` sends
    them, then as the registry answers an ancestry), the local store not consulted for them."""
    from roar import canonical
    from roar.protocol import RemoteLineage
    from roar.registry import Ancestry, JobEntry
    from roard.store import records

    seqs = [int(r[0]) for r in await pipe.store.rows("SELECT seq FROM jobs")]
    entries = []
    for job in (await records.read_jobs(pipe.store, seqs)).values():
        record = canonical.for_registry(job, home="/nonexistent-home")
        session = f"session-{job.session}" if job.session is not None else None
        entries.append(JobEntry(record.id, record, "alice", "team", 0.0, None, session))
        if target == job.id:  # a job: by its registry id
            target = record.id
    remote = RemoteLineage(URL, Ancestry(target, entries, truncated))
    req = GetPlan(
        target=target[:12].encode(),
        cwd=os.fsencode(pipe.root),
        into=b"/nonexistent/x",
        remote=remote,
    )
    return await plan.make(pipe.store, req)


def by_command(p: PlanReply) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The plan's jobs, each with its inputs' producers, named by command (ids differ)."""
    names = {j.id: j.command for j in p.jobs}
    return [(j.command, [(i.path, names.get(i.producer or "")) for i in j.inputs]) for j in p.jobs]


@pytest.mark.anyio
async def test_the_registrys_records_are_planned_as_the_local_store_plans_them(
    pipe: Pipeline,
) -> None:
    """The same producer rule from either source: a later re-run and a copy are never the
    producer, a build step before the jobs comes first and one after does not."""
    await pipe.job("f00000000000", writes={"unused": h("u")}, kind="build", step=1)
    await pipe.job("a00000000001", reads={"raw": h("raw")}, writes={"x": h("x1")}, step=1)
    await pipe.job("b00000000002", reads={"x": h("x1")}, writes={"y": h("y")}, step=2)
    await pipe.job("c00000000003", reads={"x": h("x1")}, writes={"copy-of-x": h("x1")}, step=3)
    await pipe.job("d00000000004", reads={"raw": h("raw")}, writes={"x": h("x1")}, step=1)
    await pipe.job(
        "e00000000005", reads={"y": h("y"), "copy-of-x": h("x1")}, writes={"z": h("z")}, step=4
    )
    await pipe.job("f00000000009", writes={"later": h("later")}, kind="build", step=2)
    for target in (h("y"), h("z"), h("x1")):
        local, remote = await pipe.plan(target), await registry_plan(pipe, target)
        assert (local.registry, remote.registry) == (None, URL)
        assert by_command(remote) == by_command(local), target
        assert remote.target == target and remote.label == local.label
        assert [(r.path, r.hash) for r in remote.roots] == [(r.path, r.hash) for r in local.roots]
        assert [(w.path, w.hash) for w in remote.wanted] == [(w.path, w.hash) for w in local.wanted]
    z = by_command(await registry_plan(pipe, h("z")))
    assert [c for c, _ in z] == [
        "tool f00000000000",
        "tool a00000000001",
        "tool b00000000002",
        "tool c00000000003",
        "tool e00000000005",
    ]
    assert z[-1][1] == [("copy-of-x", "tool c00000000003"), ("y", "tool b00000000002")]
    # a job: itself and what made its inputs, every output of it the target
    local, remote = await pipe.plan("e00000000005"), await registry_plan(pipe, "e00000000005")
    assert (remote.kind, remote.label) == ("job", "tool e00000000005") and len(remote.target) == 64
    assert by_command(remote) == by_command(local) and remote.wanted[0].path == "z"
    # a lineage the registry cut short is planned, and said to be incomplete: nothing runs
    cut = await registry_plan(pipe, h("z"), truncated=True)
    assert [p for p in cut.problems if "longer than it sends at once" in p]


def test_a_plan_request_from_before_remote_still_decodes() -> None:
    """GetPlan gained `remote` after protocol 1.0, with a default: an older roarctl's request
    (no such field; its target bytes, as since protocol 2) is the local plan it always was."""
    import msgspec

    old = msgspec.msgpack.encode({"type": "GetPlan", "target": b"abc123", "cwd": b"/w"})
    req = msgspec.msgpack.decode(old, type=GetPlan)
    assert req.remote is None and req.target == b"abc123"
