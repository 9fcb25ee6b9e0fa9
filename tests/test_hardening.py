"""Hardening: roard against malformed and hostile input on its socket. Every bad message gets one
clear error naming what is wrong, the connection and the daemon stay up, and nothing is stored.
Messages are sent as raw frames by a small client run as the daemon's own user."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import msgspec
import pytest
from conftest import BIN, Roar

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


@pytest.mark.parametrize(
    "args",
    [
        ("log", "-n", "999999999999999999999"),
        ("log", "-n", str(2**64)),
        ("log", "-n", "0"),
        ("status", "-n", str(2**64)),
        ("lineage", "x", "--depth", str(2**64)),
    ],
)
def test_numeric_options_out_of_range_are_a_usage_error(roar: Roar, args: tuple[str, ...]) -> None:
    proc = roar(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal" not in proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert "is not in the range" in error


def test_a_step_number_beyond_any_step_is_not_found(roar: Roar) -> None:
    proc = roar("run", "@" + "9" * 30, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "internal" not in proc.stderr and "failed to handle" not in proc.stderr
    assert "has no step @" + "9" * 30 in proc.stderr


# Connections to roard as a hostile or unlucky user makes them. `many N EVENT`: N connections
# that say Hello, held until roard logs EVENT (it serves no more at once), then closed.
# `silent`: waits for roard to close a connection that never says Hello. `stalled`: the same,
# for a large frame that stops half-way. `frames`: a large frame half-sent on one connection
# while another sends one.
LIMITS_CLIENT = r"""
import json, socket, struct, sys, threading, time
import msgspec
from roar.paths import paths
from roar.protocol import MAX_FRAME, PROTOCOL_VERSION

HELLO = msgspec.msgpack.encode({"type": "Hello", "protocol": PROTOCOL_VERSION, "client": "test"})

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(str(paths().socket))
    return s

def recv(s):
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    n, body = struct.unpack(">I", head)[0], b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return msgspec.msgpack.decode(body)

def hello(s):
    s.sendall(struct.pack(">I", len(HELLO)) + HELLO)

mode = sys.argv[1]
if mode == "many":
    conns = []
    for _ in range(int(sys.argv[2])):
        conns.append(connect())
        hello(conns[-1])
    print("opened", len(conns))
    deadline = time.monotonic() + 60  # held until roard serves as many as it will at once
    while f'"{sys.argv[3]}"' not in paths().log.read_text():
        if time.monotonic() > deadline:
            print("never logged", sys.argv[3])
            break
        time.sleep(0.02)
    for s in conns:
        s.close()
elif mode == "silent":
    s = connect()
    print("closed" if s.recv(1) == b"" else "answered")
elif mode == "stalled":
    s = connect()
    hello(s)
    assert recv(s)["type"] == "Welcome"
    s.sendall(struct.pack(">I", 1 << 20) + b"\0" * 1000)  # and the rest never comes
    print("closed" if recv(s) is None else "answered")
elif mode == "frames":
    a, b = connect(), connect()
    hello(a), hello(b)
    assert recv(a)["type"] == "Welcome" and recv(b)["type"] == "Welcome"
    a.sendall(struct.pack(">I", MAX_FRAME) + b"\0" * 100_000)  # and the rest never comes
    time.sleep(0.2)  # (not timing anything: lets roard take a's frame first)
    size = 1 << 20
    threading.Thread(target=b.sendall, args=(struct.pack(">I", size) + b"\xc1" * size,)).start()
    deadline = time.monotonic() + 30
    while '"frame.waits"' not in paths().log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("waited" if '"frame.waits"' in paths().log.read_text() else "did not wait")
    a.close()
    print(json.dumps(recv(b)))
"""


def _limits_client(roar: Roar, *args: str) -> list[str]:
    return roar.exec([sys.executable, "-c", LIMITS_CLIENT, *args]).stdout.splitlines()


def _events(roar: Roar) -> list[dict[str, object]]:
    log = roar.home / ".local/state/roar/roard.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


# roard with a descriptor limit of SOFT and HARD, as `prlimit` would start it
LOW_NOFILE = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), int(sys.argv[3]))); "
    "os.execv(sys.argv[1], [sys.argv[1], '--detach'])"
)


def test_more_connections_than_descriptors_leave_roard_serving(roar: Roar) -> None:
    roar.exec([sys.executable, "-c", LOW_NOFILE, str(BIN / "roard"), "32", "64"])
    pid = roar.daemon_pid()
    assert pid is not None
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(r"Max open files\s+64\s+64", limits)  # soft raised to the hard limit
    opened = _limits_client(roar, "many", "150", "connection.cap_reached")
    status = roar.json("status")  # the same roard answers, after every one of them
    assert status["daemon"]["pid"] == pid
    assert opened == ["opened 150"]  # and it served no more at once than its cap
    events = _events(roar)
    assert not any(e["event"] in ("roard.stop", "roard.failed") for e in events)


def test_running_out_of_descriptors_on_accept_leaves_roard_serving(roar: Roar) -> None:
    # 32 descriptors: fewer than roard's own files and its connections need, so accept() fails
    roar.exec([sys.executable, "-c", LOW_NOFILE, str(BIN / "roard"), "32", "32"])
    pid = roar.daemon_pid()
    assert pid is not None
    opened = _limits_client(roar, "many", "100", "connection.accept_failed")
    assert roar.json("status")["daemon"]["pid"] == pid  # the same roard answers after them
    assert opened == ["opened 100"]
    assert not any(e["event"] in ("roard.stop", "roard.failed") for e in _events(roar))


def test_a_connection_that_never_says_hello_is_dropped(roar: Roar) -> None:
    roar("daemon", "start", env={"ROARD_HELLO_TIMEOUT": "0.5"})
    assert _limits_client(roar, "silent") == ["closed"]
    assert any(e["event"] == "connection.dropped" for e in _events(roar))
    assert roar.json("daemon", "status")["running"]


def test_a_large_frame_that_stalls_half_way_is_dropped(roar: Roar) -> None:
    roar("daemon", "start", env={"ROARD_FRAME_TIMEOUT": "0.5"})
    assert _limits_client(roar, "stalled") == ["closed"]
    dropped = [e for e in _events(roar) if e["event"] == "connection.dropped"]
    assert [e["reason"] for e in dropped] == ["frame not sent whole"]
    assert roar.json("daemon", "status")["running"]


def test_large_frames_share_a_budget_across_connections(roar: Roar) -> None:
    roar("daemon", "start", env={"ROARD_FRAME_BYTES": "1"})  # raised to one largest frame
    waited, reply = _limits_client(roar, "frames")
    assert waited == "waited"  # b's frame waited for a's to be read
    assert json.loads(reply)["code"] == "bad-frame"  # then was read, once a's was given up
    assert roar.json("daemon", "status")["running"]


def test_a_bad_limit_setting_stops_roard_with_one_line(roar: Roar) -> None:
    proc = roar.exec([str(BIN / "roard")], env={"ROARD_HELLO_TIMEOUT": "soon"}, check=False)
    assert proc.returncode == 78
    assert proc.stderr.strip() == "roard: error: ROARD_HELLO_TIMEOUT='soon' is not a number"
