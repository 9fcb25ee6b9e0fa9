"""Hardening: roard against malformed and hostile input on its socket. Every bad message gets one
clear error naming what is wrong, the connection and the daemon stay up, and nothing is stored.
Messages are sent as raw frames by a small client run as the daemon's own user."""

from __future__ import annotations

import json
import math
import sys

import msgspec
import pytest
from conftest import Roar

# Sends each frame of argv[1] (a msgpack list of bodies; b"" means: send a bad header) on one
# connection after Hello, reads one reply per frame, and prints the replies as JSON lines. The
# connection must still answer a Ping at the end.
RAW_CLIENT = r"""
import json, os, socket, struct, sys
import msgspec
from roar.paths import paths
from roar.protocol import PROTOCOL_VERSION

bodies = msgspec.msgpack.decode(bytes.fromhex(sys.argv[1]))
hello = sys.argv[2] == "hello"
s = socket.socket(socket.AF_UNIX)
s.connect(str(paths().socket))
f = s.makefile("rb")

def send(body):
    try:
        s.sendall(struct.pack(">I", len(body)) + body)
    except OSError:  # closed by roard
        pass

def recv():
    try:
        head = f.read(4)
    except OSError:
        return None
    if len(head) < 4:
        return None
    return msgspec.msgpack.decode(f.read(struct.unpack(">I", head)[0]))

if hello:
    send(msgspec.msgpack.encode({"type": "Hello", "protocol": PROTOCOL_VERSION, "client": "test"}))
    recv()
for body in bodies:
    send(body)
    print(json.dumps(recv(), default=repr))
send(msgspec.msgpack.encode({"type": "Ping"}))
print(json.dumps(recv(), default=repr))
extra = recv() if not hello else None
print(json.dumps(extra, default=repr))
"""


def _exchange(roar: Roar, bodies: list[bytes], hello: bool = True) -> list[object]:
    arg = msgspec.msgpack.encode(bodies).hex()
    proc = roar.exec([sys.executable, "-c", RAW_CLIENT, arg, "hello" if hello else "no"])
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _msg(kind: str, /, **fields: object) -> bytes:
    return msgspec.msgpack.encode({"type": kind, **fields})


START = {"argv": [b"true"], "cwd": b"/tmp", "env": [], "started": 1.0}
BAD = {  # what each message is wrong about -> the field the error must name
    "limit of 2**64-1": (_msg("GetLog", cwd=b"/tmp", limit=2**64 - 1), "$.limit"),
    "negative limit": (_msg("GetStatus", cwd=b"/tmp", limit=-1), "$.limit"),
    "NUL in a target": (_msg("Show", target=b"ab\x00cd", cwd=b"/tmp"), "$.target"),
    "NUL in a diff's b": (_msg("Diff", a=b"x", b=b"\x00", cwd=b"/tmp"), "$.b"),
    "NUL in a target list": (
        _msg("Register", cwd=b"/tmp", targets=[b"a", b"\x00"]),
        "$.targets[1]",
    ),
    "empty target": (_msg("GetLineage", target=b"", cwd=b"/tmp"), "$.target"),
    "a target as text (protocol 1)": (_msg("Show", target="x", cwd=b"/tmp"), "$.target"),
    "empty job id": (_msg("RunFiles", job_id="", files=[]), "$.job_id"),
    "empty cwd": (_msg("GetDag", cwd=b""), "$.cwd"),
    "relative cwd": (_msg("Init", cwd=b"some/dir"), "$.cwd"),
    "NaN start time": (_msg("RunStart", **{**START, "started": math.nan}), "$.started"),
    "infinite start time": (_msg("RunStart", **{**START, "started": math.inf}), "$.started"),
    "empty argv": (_msg("RunStart", **{**START, "argv": []}), "$.argv"),
    "unknown kind": (_msg("RunStart", **{**START, "kind": "deploy"}), "$.kind"),
    "huge depth": (_msg("GetLineage", target=b"x", cwd=b"/tmp", depth=2**40), "$.depth"),
    "wait status of 2**40": (
        _msg(
            "RunFinish",
            job_id="0123456789ab",
            start={"type": "RunStart", **START},
            ended=2.0,
            wait_status=2**40,
        ),
        "$.wait_status",
    ),
    "NaN end time": (
        _msg(
            "RunFinish",
            job_id="0123456789ab",
            start={"type": "RunStart", **START},
            ended=math.nan,
            wait_status=0,
        ),
        "$.ended",
    ),
    "relative file path": (
        _msg("RunFiles", job_id="0123456789ab", files=[[b"rel/x", True]]),
        "$.files[0].path",
    ),
    "NUL in a file path": (
        _msg("RunFiles", job_id="0123456789ab", files=[[b"/tmp/a\x00b", True]]),
        "$.files[0].path",
    ),
    "unknown env op": (_msg("EnvOp", cwd=b"/tmp", op="explode"), "$.op"),
    "bad pre-hash": (
        _msg("RunFiles", job_id="0123456789ab", files=[[b"/tmp/x", True, 0, 0, 0, 1, "zz"]]),
        "$.files[0]",
    ),
}


def test_malformed_values_get_one_invalid_error_naming_the_field(roar: Roar) -> None:
    roar("daemon", "start")
    replies = _exchange(roar, [body for body, _ in BAD.values()])
    assert len(replies) == len(BAD) + 2
    for (what, (_, field)), reply in zip(BAD.items(), replies, strict=False):
        assert isinstance(reply, dict) and reply["type"] == "Error", what
        assert reply["code"] == "invalid", (what, reply)
        assert field in reply["message"], (what, reply)
    assert replies[len(BAD)] == {"type": "Ok", "message": ""}  # the connection still answers
    status = roar.json("status")
    assert status["daemon"]["jobs"] == 0 and status["daemon"]["runs"] == 0  # nothing stored


def test_a_malformed_frame_before_hello_gets_one_error(roar: Roar) -> None:
    roar("daemon", "start")
    proc = roar.exec(
        [sys.executable, "-c", RAW_CLIENT, msgspec.msgpack.encode([b"\xc1"]).hex(), "no"]
    )
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    first = replies[0]
    assert isinstance(first, dict) and first["code"] == "bad-frame"
    assert replies[1:] == [None, None]  # then the connection is closed: no second error
    assert roar.json("daemon", "status")["running"]


@pytest.mark.parametrize("body", [b"\xc1", b"\x93\x01\x02", _msg("NoSuchMessage")])
def test_an_unreadable_frame_after_hello_is_bad_frame_and_the_connection_goes_on(
    roar: Roar, body: bytes
) -> None:
    roar("daemon", "start")
    replies = _exchange(roar, [body])
    assert isinstance(replies[0], dict) and replies[0]["code"] == "bad-frame"
    assert replies[1] == {"type": "Ok", "message": ""}


def test_env_set_values_are_secret_wherever_a_job_shows_them(roar: Roar) -> None:
    from conftest import git_repo

    repo = git_repo(roar, roar.work / "p", {"a.txt": "a"})
    before = roar.run("sh", "-c", "true", cwd=repo, env={"DATA_DIR": "/data/shared-volume"})
    roar("env", "set", "DATA_DIR=/data/shared-volume", cwd=repo)
    job = roar.run("sh", "-c", 'echo "$DATA_DIR" > out.txt', cwd=repo)
    assert job["env"]["DATA_DIR"] == "<redacted>"  # no secret word in its name: set with env set
    job = roar.run("ls", "/data/shared-volume/raw", cwd=repo, check=False)
    assert job["job"]["command"] == "ls '<redacted>/raw'"
    assert all("shared-volume" not in " ".join(p["argv"]) for p in job["processes"])
    # a job recorded before the variable was set shows it redacted too
    old = roar.json("show", before["job"]["id"], cwd=repo)["job"]
    assert old["env"]["DATA_DIR"] == "<redacted>"


FINISH_TWICE = r"""
import os, sys, time
from roarctl.client import Client
from roar.protocol import RunDone, RunFinish, RunStart, RunStarted, FileFact

cwd = os.getcwdb()
with Client.connect() as c:
    start = RunStart(argv=[b"true"], cwd=cwd, env=[], started=time.time())
    job = c.call(start, expect=RunStarted).job_id
    out = os.path.join(cwd, b"made.txt")
    open(out, "w").write("x")
    first = c.call(RunFinish(job_id=job, start=start, ended=time.time(), wait_status=0,
                             files=[FileFact(path=out, written=True, pre_existed=False)]),
                   expect=RunDone)
    # the same finish again, then one that says otherwise: neither changes the record
    again = c.call(RunFinish(job_id=job, start=start, ended=time.time(), wait_status=256),
                   expect=RunDone)
print(job, first.job.exit_code, again.job.exit_code, again.job.outputs, again.job.status)
"""


def test_a_finished_job_is_never_changed_by_a_second_finish(roar: Roar) -> None:
    out = roar.exec([sys.executable, "-c", FINISH_TWICE]).stdout.split()
    job_id, first, again, outputs, status = out
    assert (first, again, outputs, status) == ("0", "0", "1", "complete")
    shown = roar.json("show", job_id)["job"]
    assert shown["job"]["exit_code"] == 0 and len(shown["outputs"]) == 1
    log = (roar.home / ".local/state/roar/roard.log").read_text()
    assert "run.finish_again" in log
