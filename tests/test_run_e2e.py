"""`roarctl run` end to end: real roard, real tracer, real programs, real git, real SQLite."""

from __future__ import annotations

import os
import signal
import sys
import time

from conftest import ROARCTL, Roar, git_repo

PY = sys.executable

PREPROCESS = """
import sys
rows = [l for l in open(sys.argv[1]).read().splitlines()[1:] if not l.endswith(",")]
with open(sys.argv[2], "w") as f:
    f.write("x,y\\n" + "\\n".join(rows) + "\\n")
"""
TRAIN = """
import json, os, sys
pts = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]).read().splitlines()[1:]]
a = sum(y for _, y in pts) / sum(x for x, _ in pts)
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump({"a": a}, f)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
"""
EVALUATE = """
import json, sys
m = json.load(open(sys.argv[2]))
pts = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]).read().splitlines()[1:]]
json.dump({"mse": sum((m["a"] * x - y) ** 2 for x, y in pts) / len(pts)}, open(sys.argv[3], "w"))
"""


def _paths(records: list[dict]) -> dict[str, dict]:
    return {os.path.basename(r["path"]): r for r in records}


def test_three_step_pipeline_is_linked_by_hashes(roar: Roar) -> None:
    repo = git_repo(
        roar,
        roar.work / "proj",
        {
            "preprocess.py": PREPROCESS,
            "train.py": TRAIN,
            "evaluate.py": EVALUATE,
            "raw.csv": "x,y\n1,2\n2,4.1\n3,\n4,8.2\n",
        },
    )
    pre = roar.run(PY, "preprocess.py", "raw.csv", "clean.csv", cwd=repo)
    train = roar.run(PY, "train.py", "clean.csv", "model.json", cwd=repo)
    ev = roar.run(PY, "evaluate.py", "clean.csv", "model.json", "metrics.json", cwd=repo)

    pre_in, pre_out = _paths(pre["inputs"]), _paths(pre["outputs"])
    assert set(pre_in) == {"preprocess.py", "raw.csv"}
    assert set(pre_out) == {"clean.csv"}
    assert pre_out["clean.csv"]["path"] == str(repo / "clean.csv")
    train_in, train_out = _paths(train["inputs"]), _paths(train["outputs"])
    assert set(train_out) == {"model.json"}  # the temp name renamed into place is not an output
    assert train_in["clean.csv"]["hash"] == pre_out["clean.csv"]["hash"]
    assert train_in["clean.csv"]["producer"] == pre["job"]["id"]
    ev_in = _paths(ev["inputs"])
    assert ev_in["model.json"]["producer"] == train["job"]["id"]
    assert ev_in["clean.csv"]["producer"] == pre["job"]["id"]
    assert set(_paths(ev["outputs"])) == {"metrics.json"}

    # git state, process tree, packages, machine
    commit = roar.exec(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    assert train["git"]["commit"] == commit
    assert train["git"]["branch"] == "main"
    assert train["git"]["root"] == str(repo)
    assert {d["path"] for d in train["git"]["dirty"]} >= {"clean.csv"}  # untracked output of @1
    assert train["processes"][0]["argv"] == [PY, "train.py", "clean.csv", "model.json"]
    assert train["job"]["exit_code"] == 0 and train["job"]["status"] == "complete"
    assert any("msgspec" in {p[0] for p in pkgs} for pkgs in train["packages"].values())
    assert train["hardware"]["cpus"] >= 1

    # the artifact view: produced by train, read by evaluate
    model = roar.json("show", "model.json", cwd=repo)["artifact"]
    assert [j["id"] for j in model["produced_by"]] == [train["job"]["id"]]
    assert [j["id"] for j in model["read_by"]] == [ev["job"]["id"]]
    # and by hash prefix
    prefix = model["hash"][:10]
    assert roar.json("show", prefix, cwd=repo)["artifact"]["hash"] == model["hash"]
    # log lists the project's jobs newest first
    log = roar.json("log", cwd=repo)
    assert [j["id"] for j in log] == [ev["job"]["id"], train["job"]["id"], pre["job"]["id"]]


def test_summary_line_and_quiet(roar: Roar) -> None:
    (roar.work / "in.txt").write_text("a\n")
    roar.chown(roar.work / "in.txt")
    proc = roar("run", "cp", "in.txt", "out.txt")
    assert proc.stdout == ""
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("roar: job ") and "1 input" in line and "1 output" in line
    quiet = roar("run", "-q", "cp", "in.txt", "out2.txt")
    assert quiet.stderr == ""


def test_exit_codes_and_signals_pass_through(roar: Roar) -> None:
    assert roar("run", "sh", "-c", "exit 3", check=False).returncode == 3
    job = roar.last_job()
    assert job["job"]["exit_code"] == 3
    killed = roar("run", "sh", "-c", "kill -TERM $$", check=False)
    assert killed.returncode == 128 + signal.SIGTERM
    job = roar.last_job()
    assert job["job"]["signal"] == signal.SIGTERM
    missing = roar("run", "no-such-command-xyz", check=False)
    assert missing.returncode == 127
    assert "command not found" in missing.stderr and "Traceback" not in missing.stderr


def test_stdin_is_piped_through(roar: Roar) -> None:
    proc = roar(
        "run", PY, "-c", "import sys; print(sys.stdin.read().upper())", input="hello roar\n"
    )
    assert proc.stdout == "HELLO ROAR\n\n"


def test_shell_pipeline_with_redirect(roar: Roar) -> None:
    (roar.work / "in.txt").write_text("b\na\nc\n")
    roar.chown(roar.work / "in.txt")
    job = roar.run("sh", "-c", "cat in.txt | sort > out.txt")
    assert (roar.work / "out.txt").read_text() == "a\nb\nc\n"
    assert set(_paths(job["inputs"])) == {"in.txt"}
    assert set(_paths(job["outputs"])) == {"out.txt"}
    argvs = [p["argv"][0] for p in job["processes"] if p["argv"]]
    assert {"sh", "cat", "sort"} <= {os.path.basename(a) for a in argvs}


def test_cp_records_input_and_output_with_same_hash(roar: Roar) -> None:
    (roar.work / "a.bin").write_bytes(os.urandom(300_000))
    roar.chown(roar.work / "a.bin")
    job = roar.run("cp", "a.bin", "b.bin")
    (src,), (dst,) = job["inputs"], job["outputs"]
    assert src["path"].endswith("/a.bin") and dst["path"].endswith("/b.bin")
    assert src["hash"] == dst["hash"] and dst["size"] == 300_000


def test_relative_path_after_cd(roar: Roar) -> None:
    job = roar.run("sh", "-c", "mkdir -p sub/deeper && cd sub/deeper && echo x > rel.txt")
    (out,) = job["outputs"]
    assert out["path"] == str(roar.work / "sub/deeper/rel.txt")


def test_temp_file_renamed_into_place(roar: Roar) -> None:
    script = (
        "import os\n"
        "open('final.txt.part', 'w').write('done')\n"
        "os.rename('final.txt.part', 'final.txt')\n"
        "open('scratch.tmp', 'w').write('x')\n"
        "os.unlink('scratch.tmp')\n"
    )
    job = roar.run(PY, "-c", script)
    assert set(_paths(job["outputs"])) == {"final.txt"}
    assert job["inputs"] == []


def test_secret_in_environment_never_reaches_the_store(roar: Roar) -> None:
    secret = "ghp_" + "Zq8v" * 9
    job = roar.run(
        PY,
        "-c",
        "print('ok')",
        env={"MY_API_TOKEN": secret, "DATABASE_URL": "postgres://u:hunter2pw@db/x"},
    )
    assert job["env"]["MY_API_TOKEN"] == "<redacted>"
    assert "hunter2pw" not in job["env"]["DATABASE_URL"]
    roar.stop()  # checkpoint the WAL into the main file too
    for f in roar.db.parent.iterdir():
        data = f.read_bytes()
        assert secret.encode() not in data, f
        assert b"hunter2pw" not in data, f
    log = (roar.home / ".local/state/roar/roard.log").read_bytes()
    assert secret.encode() not in log


def test_daemon_killed_mid_run_does_not_harm_the_command(roar: Roar) -> None:
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    proc = roar.exec_async(["sh", "-c", "sleep 1.5; echo done > after.txt; exit 7"])
    time.sleep(0.7)
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err
    assert (roar.work / "after.txt").read_text() == "done\n"
    job = roar.last_job()
    assert job["job"]["status"] == "recovered"
    assert job["job"]["exit_code"] == 7
    assert set(_paths(job["outputs"])) == {"after.txt"}
    assert roar.daemon_pid() not in (None, pid)


def test_malformed_frames_get_an_error_and_the_daemon_survives(roar: Roar) -> None:
    import socket
    import struct

    import msgspec

    from roar import protocol as p

    roar("daemon", "start")

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(roar.socket))
        return s

    def recv(s: socket.socket) -> object:
        (n,) = struct.unpack(">I", s.recv(4))
        buf = b""
        while len(buf) < n:
            buf += s.recv(n - len(buf))
        return p.decode_reply(buf)

    if roar.user is None:
        s = connect()
        s.sendall(p.frame(p.Hello(protocol=p.PROTOCOL_VERSION, client="test")))
        assert isinstance(recv(s), p.Welcome)
        s.sendall(struct.pack(">I", 5) + b"\xc1\xff\x00\x01\x02")  # not msgpack
        reply = recv(s)
        assert isinstance(reply, p.Error) and reply.code == "bad-frame"
        s.sendall(p.HEADER.pack(len(b"\x93\x01\x02\x03")) + msgspec.msgpack.encode([1, 2, 3]))
        assert isinstance(recv(s), p.Error)
        s.sendall(p.frame(p.Ping()))  # the same connection still works
        assert isinstance(recv(s), p.Ok)
        s.close()
        s = connect()
        s.sendall(struct.pack(">I", p.MAX_FRAME + 1))  # oversized: refused before reading a body
        reply = recv(s)
        assert isinstance(reply, p.Error) and "exceeds" in reply.message
        s.close()
        s = connect()
        s.sendall(p.frame(p.Ping()))  # no Hello first
        reply = recv(s)
        assert isinstance(reply, p.Error) and reply.code == "version"
        s.close()
    else:
        # root connecting to the user's daemon: refused by the peer-uid check
        s = connect()
        reply = recv(s)
        assert isinstance(reply, p.Error) and reply.code == "forbidden"
        s.close()
    assert roar("daemon", "status").returncode == 0
    assert roar.json("status")["daemon"]["pid"] == roar.daemon_pid()


def test_show_errors_are_one_line_and_nonzero(roar: Roar) -> None:
    roar.run("true")
    for target in ("deadbeefdeadbeef", "no/such/file.txt"):
        proc = roar("show", target, check=False)
        assert proc.returncode == 1
        assert proc.stderr.startswith("roar: error: ")
        assert "Traceback" not in proc.stderr


def test_non_utf8_path(roar: Roar) -> None:
    job = roar.run(PY, "-c", "open(b'data-\\xff\\xfe.bin', 'wb').write(b'x')")
    (out,) = job["outputs"]
    assert out["path"].endswith("data-\\xff\\xfe.bin")
    assert roar.json("status")["modified"] == []  # found by its raw name, not "missing"


def test_socket_and_store_permissions(roar: Roar) -> None:
    roar("daemon", "start")
    assert roar.socket.stat().st_mode & 0o777 == 0o600
    assert roar.socket.parent.stat().st_mode & 0o777 == 0o700
    assert roar.db.stat().st_mode & 0o777 == 0o600
    if roar.user is not None:
        assert roar.socket.stat().st_uid == roar.user[0]


def test_stale_socket_after_kill_is_replaced(roar: Roar) -> None:
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert roar.socket.exists()  # left behind
    job = roar.run("true")  # starts a new daemon, which replaces the stale socket
    assert job["job"]["exit_code"] == 0
    assert roar.daemon_pid() not in (None, pid)


def test_init_marks_project_without_dirtying_git(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "p", {"a.txt": "a"})
    info = roar.json("init", cwd=repo)
    assert info["root"] == str(repo) and info["created"]
    assert (repo / ".roar/config.toml").exists()
    assert roar.exec(["git", "status", "--porcelain"], cwd=repo).stdout == ""
    status = roar.json("status", cwd=repo)
    assert status["project"] == str(repo)
    assert status["git"]["clean"] is True


def test_progress_bar_while_hashing_on_a_terminal(roar: Roar) -> None:
    big = roar.work / "big.bin"
    with open(big, "wb") as f:  # 2 GB, sparse: hashing takes a while, the disk is not used
        f.truncate(2 * 1024**3)
    roar.chown(big)
    proc = roar.exec(
        ["script", "-qec", f"{ROARCTL} run cat big.bin > /dev/null", "/dev/null"],
        env={"ROAR_PROGRESS_AFTER": "0"},
    )
    assert "roar: hashing [" in proc.stdout  # script puts the pty's output on stdout
    assert "1 input" in proc.stdout
