"""roard in the test's own event loop: `roard.daemon.run` started on temporary directories and
spoken to over its socket with roar.protocol frames, as roarctl does, without the tracer (the
facts a tracer would send are written by the test). Faster than the end-to-end tier, and it
reaches what the CLI never sends: malformed values, runs cut off mid-way, both finish paths."""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import blake3
import msgspec
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from roar.paths import Paths
from roar.protocol import (
    PROTOCOL_VERSION,
    EnvOp,
    Error,
    FileFact,
    GetLog,
    GetStatus,
    Hello,
    Reply,
    RunDone,
    RunFiles,
    RunFinish,
    RunStart,
    RunStarted,
    Show,
    ShowArtifact,
    ShowJob,
    Shutdown,
    Welcome,
    body_length,
    decode_reply,
    frame,
)
from roard.daemon import run
from roard.store import Store, records

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Conn:
    """One client connection: frames out, replies in (Progress skipped)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.receive = BufferedByteReceiveStream(stream)

    async def send_raw(self, body: bytes) -> None:
        await self.stream.send(len(body).to_bytes(4, "big") + body)

    async def send(self, message: msgspec.Struct) -> None:
        await self.stream.send(frame(message))

    async def recv(self) -> Reply:
        while True:
            length = body_length(await self.receive.receive_exactly(4))
            reply = decode_reply(await self.receive.receive_exactly(length))
            if type(reply).__name__ != "Progress":
                return reply

    async def call(self, message: msgspec.Struct) -> Any:
        await self.send(message)
        return await self.recv()


class Roard:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    async def connect(self) -> Conn:
        conn = Conn(await anyio.connect_unix(self.paths.socket))
        welcome = await conn.call(Hello(protocol=PROTOCOL_VERSION, client="test"))
        assert isinstance(welcome, Welcome) and welcome.pid == os.getpid()
        return conn


def _paths(base: Path) -> Paths:
    return Paths(
        runtime=base / "run", data=base / "data", state=base / "state", config_dir=base / "config"
    )


@pytest.fixture
async def roard(tmp_path: Path) -> AsyncIterator[Roard]:
    paths = _paths(tmp_path / "roar")
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(run, paths))
        yield Roard(paths)
        conn = await Roard(paths).connect()
        await conn.call(Shutdown())  # run() returns once it has stopped
        await conn.stream.aclose()


def _repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main", "."], cwd=path, check=True)
    subprocess.run([*git, "add", "."], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)
    return path


def _start(cwd: Path, *argv: str, env: list[bytes] = ()) -> RunStart:  # type: ignore[assignment]
    return RunStart(
        argv=[a.encode() for a in argv], cwd=os.fsencode(cwd), env=list(env), started=time.time()
    )


def _finish(job_id: str, start: RunStart, files: list[FileFact]) -> RunFinish:
    return RunFinish(job_id=job_id, start=start, ended=time.time(), wait_status=0, files=files)


def _digest(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


SECRET = "ghp_" + "Zq8v" * 9


async def test_a_run_is_recorded_from_its_frames(roard: Roard, tmp_path: Path) -> None:
    repo = _repo(tmp_path / "proj", {"in.txt": "hello\n", "step.sh": "cp in.txt out.txt\n"})
    conn = await roard.connect()
    start = _start(repo, "sh", "step.sh", env=[b"PATH=/bin", f"MY_API_TOKEN={SECRET}".encode()])
    started = await conn.call(start)
    assert isinstance(started, RunStarted) and started.step == "@1" and not started.refuse
    (repo / "out.txt").write_text("hello\n")  # what the command did
    facts = [
        FileFact(path=os.fsencode(repo / "step.sh"), read=True),
        FileFact(path=os.fsencode(repo / "in.txt"), read=True),
        FileFact(path=os.fsencode(repo / "out.txt"), written=True, pre_existed=False),
        FileFact(path=b"/usr/lib/x86_64-linux-gnu/libc.so.6", read=True),
    ]
    done = await conn.call(_finish(started.job_id, start, facts))
    assert isinstance(done, RunDone)
    assert (done.job.status, done.job.inputs, done.job.outputs) == ("complete", 2, 1)
    assert done.filtered == 1

    shown = await conn.call(Show(target=started.job_id.encode(), cwd=os.fsencode(repo)))
    assert isinstance(shown, ShowJob)
    detail = shown.detail
    assert {os.path.basename(i.path): i.hash for i in detail.inputs} == {
        "in.txt": _digest(repo / "in.txt"),
        "step.sh": _digest(repo / "step.sh"),
    }
    assert [(o.path, o.hash) for o in detail.outputs] == [
        (str(repo / "out.txt"), _digest(repo / "out.txt"))
    ]
    assert detail.git is not None and detail.git.branch == "main" and detail.git.clean
    assert detail.env["MY_API_TOKEN"] == "<redacted>"
    artifact = await conn.call(Show(target=b"out.txt", cwd=os.fsencode(repo)))
    assert isinstance(artifact, ShowArtifact)
    # the step copied in.txt (a committed file): out.txt's bytes have no producer, one copy
    assert artifact.detail.produced_by == []
    assert [j.id for j in artifact.detail.copies] == [started.job_id]

    # The whole record, as the registry will take it, read beside the running daemon.
    store = await Store.open(roard.paths.db)
    try:
        job = await records.read_job(store, started.job_id)
        out = await records.read_artifact(store, _digest(repo / "out.txt"))
        db_bytes = roard.paths.db.read_bytes()
    finally:
        await store.close()
    assert (job.id, job.status, job.command, job.argv) == (
        started.job_id,
        "complete",
        "sh step.sh",
        ["sh", "step.sh"],
    )
    assert (job.project, job.step, job.exit_code) == (str(repo), 1, 0)
    assert [(i.path, i.hash) for i in job.inputs] == [(i.path, i.hash) for i in detail.inputs]
    assert [(o.path, o.hash, o.previous) for o in job.outputs] == [
        (str(repo / "out.txt"), _digest(repo / "out.txt"), None)
    ]
    assert job.context.git == detail.git and job.context.env == detail.env
    assert job.context.filtered.by_rule == {"system": 1}
    # same bytes, same artifact: in.txt and out.txt are one, seen under both names
    assert sorted(out.paths) == [str(repo / "in.txt"), str(repo / "out.txt")] and out.size == 6
    assert SECRET.encode() not in db_bytes
    await conn.stream.aclose()


async def test_streamed_and_single_finishes_write_the_same_rows(
    roard: Roard, tmp_path: Path
) -> None:
    """A run whose facts came in RunFiles is settled through the staging tables; one whose
    facts all came with RunFinish, in memory: the two must record the same files."""
    work = tmp_path / "work"
    work.mkdir()
    for i in range(30):
        (work / f"in{i:02d}").write_text(f"input {i}\n" * (i + 1))
    (work / "old").write_text("old\n")
    facts = [FileFact(path=os.fsencode(work / f"in{i:02d}"), read=True) for i in range(30)]
    facts += [FileFact(path=os.fsencode(work / "missing"), read=True)]
    conn = await roard.connect()
    recorded = []
    for streamed in (False, True):
        out = work / ("streamed" if streamed else "single")
        start = _start(work, "make", out.name)
        started = await conn.call(start)
        (work / "old").write_text(f"replaced by {out.name}\n")
        out.write_text(out.name)
        written = [
            FileFact(path=os.fsencode(out), written=True, pre_existed=False),
            FileFact(
                path=os.fsencode(work / "old"), written=True, pre_existed=True, pre_hash="ab" * 32
            ),
        ]
        if streamed:
            await conn.send(RunFiles(job_id=started.job_id, files=facts[:20]))
            done = await conn.call(_finish(started.job_id, start, facts[20:] + written))
        else:
            done = await conn.call(_finish(started.job_id, start, facts + written))
        assert isinstance(done, RunDone) and done.job.inputs == 30 and done.job.outputs == 2
        shown = await conn.call(Show(target=started.job_id.encode(), cwd=os.fsencode(work)))
        recorded.append(shown.detail)
    single, streamed_ = recorded
    assert [(i.path, i.hash, i.size) for i in single.inputs] == [
        (i.path, i.hash, i.size) for i in streamed_.inputs
    ]
    assert [os.path.basename(o.path) for o in streamed_.outputs] == ["old", "streamed"]
    assert streamed_.outputs[0].previous == "ab" * 32
    assert single.outputs[0].previous == "ab" * 32
    await conn.stream.aclose()


async def test_a_run_whose_client_goes_away_is_interrupted(roard: Roard, tmp_path: Path) -> None:
    conn = await roard.connect()
    start = _start(tmp_path, "sleep", "100")
    started = await conn.call(start)
    await conn.send(RunFiles(job_id=started.job_id, files=[FileFact(path=b"/x", read=True)]))
    status = await conn.call(GetStatus(cwd=os.fsencode(tmp_path)))
    assert status.daemon.runs == 1
    await conn.stream.aclose()
    other = await roard.connect()
    with anyio.fail_after(10):
        while (await other.call(GetStatus(cwd=os.fsencode(tmp_path)))).daemon.runs:
            await anyio.sleep(0.01)
    jobs = (await other.call(GetLog(cwd=os.fsencode(tmp_path), all_projects=True))).jobs
    assert [(j.id, j.status) for j in jobs] == [(started.job_id, "interrupted")]
    await other.stream.aclose()


async def test_errors_carry_their_code(roard: Roard, tmp_path: Path) -> None:
    repo = _repo(tmp_path / "proj", {"a.txt": "a\n"})
    cwd = os.fsencode(repo)
    conn = await roard.connect()
    # a known message with a value of the wrong type: invalid, naming the field
    await conn.send_raw(msgspec.msgpack.encode({"type": "GetLog", "cwd": cwd, "limit": "ten"}))
    reply = await conn.recv()
    assert isinstance(reply, Error) and reply.code == "invalid" and "$.limit" in reply.message
    await conn.send_raw(msgspec.msgpack.encode({"type": "EnvOp", "cwd": cwd, "op": "frob"}))
    reply = await conn.recv()
    assert isinstance(reply, Error) and reply.code == "invalid" and "$.op" in reply.message
    # no message at all: bad-frame (the connection stays usable: the frame was whole)
    await conn.send_raw(msgspec.msgpack.encode({"type": "NoSuchRequest"}))
    reply = await conn.recv()
    assert isinstance(reply, Error) and reply.code == "bad-frame"
    # a value the request allows by type but roard refuses
    reply = await conn.call(EnvOp(cwd=cwd, op="set", name="A=B", value="x"))
    assert isinstance(reply, Error) and reply.code == "invalid"
    assert reply.message == "invalid variable name 'A=B'"
    reply = await conn.call(EnvOp(cwd=cwd, op="get", name="NOPE"))
    assert isinstance(reply, Error) and reply.code == "not-found"
    reply = await conn.call(Show(target=b"@7", cwd=cwd))
    assert isinstance(reply, Error) and reply.code == "not-found" and "@7" in reply.message
    reply = await conn.call(Show(target=b"@x", cwd=cwd))
    assert isinstance(reply, Error) and reply.code == "invalid"
    reply = await conn.call(Show(target=b"nothing-like-this", cwd=cwd))
    assert isinstance(reply, Error) and reply.code == "not-found" and reply.hint
    assert (await conn.call(GetLog(cwd=cwd))).jobs == []  # and it still answers
    await conn.stream.aclose()


async def test_a_finish_for_a_run_the_store_never_saw_is_rebuilt(
    roard: Roard, tmp_path: Path
) -> None:
    """roard lost the run (a new store, a crash before the start was written): the finish
    carries the start, and the record is rebuilt from it as `recovered`."""
    (tmp_path / "data.txt").write_text("data\n")
    start = _start(tmp_path, "cat", "data.txt", env=[f"TOKEN={SECRET}".encode()])
    conn = await roard.connect()
    fact = FileFact(path=os.fsencode(tmp_path / "data.txt"), read=True)
    done = await conn.call(_finish("0123456789ab", start, [fact]))
    assert isinstance(done, RunDone)
    assert (done.job.id, done.job.status, done.job.inputs) == ("0123456789ab", "recovered", 1)
    assert done.job.step == "@1"
    shown = await conn.call(Show(target=b"0123456789ab", cwd=os.fsencode(tmp_path)))
    assert shown.detail.env["TOKEN"] == "<redacted>"
    await conn.stream.aclose()
