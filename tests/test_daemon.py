"""roard as a service: socket activation, shutdown, config reload, spool, units, hash cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, Roar, _alive, wait_for

from roar import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_socket_activation_uses_the_passed_socket(roar: Roar) -> None:
    roar.socket.parent.mkdir(mode=0o700)
    roar.chown(roar.socket.parent)
    # systemd's user manager, running as the user, binds the socket and passes it as fd 3 with
    # LISTEN_PID/LISTEN_FDS naming the daemon's pid (the client checks the listener's uid).
    script = (
        f"import os, socket; s = socket.socket(socket.AF_UNIX); s.bind({str(roar.socket)!r}); "
        "s.listen(); os.dup2(s.fileno(), 3); os.set_inheritable(3, True); "
        "os.environ['LISTEN_PID'] = str(os.getpid()); "
        f"os.environ['LISTEN_FDS'] = '1'; os.execv({str(BIN / 'roard')!r}, ['roard'])"
    )
    daemon = subprocess.Popen(
        [*roar.prefix(), sys.executable, "-c", script], env=roar.env, stderr=subprocess.PIPE
    )
    assert wait_for(roar.socket.exists)
    try:
        status = roar.json("daemon", "status")
        assert status["running"] and status["pid"] == daemon.pid
        job = roar.run("true")
        assert job["job"]["exit_code"] == 0
    finally:
        roar.stop()
        daemon.wait(timeout=10)
    assert roar.socket.exists()  # systemd's socket is left for the next activation


def test_sigterm_shuts_down_cleanly(roar: Roar) -> None:
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not _alive(pid))
    assert not roar.socket.exists()
    log = (roar.home / ".local/state/roar/roard.log").read_text()
    assert '"event": "roard.stop"' in log
    assert roar("daemon", "status", check=False).returncode == 3


def test_config_reload_applies_new_filters(roar: Roar) -> None:
    scratch = roar.work / "scratch"
    scratch.mkdir()
    (scratch / "big.bin").write_text("x")
    (roar.work / "keep.txt").write_text("y")
    roar.chown(roar.work)
    roar("daemon", "start")
    job = roar.run("cat", "scratch/big.bin", "keep.txt")
    assert len(job["inputs"]) == 2
    config = roar.home / ".config/roar/config.toml"
    log = roar.home / ".local/state/roar/roard.log"
    config.write_text(f'[filters]\nexclude = ["{scratch}/*"]\n')
    roar.chown(config)
    assert wait_for(lambda: "config.reloaded" in log.read_text())
    job = roar.run("cat", "scratch/big.bin", "keep.txt")
    assert [os.path.basename(i["path"]) for i in job["inputs"]] == ["keep.txt"]
    assert job["filtered"]["by_rule"]["config"] == 1
    verbose = roar.json("show", job["job"]["id"], "-v")
    assert str(scratch / "big.bin") in verbose["job"]["filtered"]["paths"]


def test_hash_cache_is_not_fooled_by_touch_d(roar: Roar) -> None:
    data = roar.work / "data.txt"
    data.write_text("aaaa")
    roar.chown(data)
    first = roar.run("cat", "data.txt")["inputs"][0]["hash"]
    again = roar.run("cat", "data.txt")["inputs"][0]["hash"]
    assert again == first
    before = data.stat()
    data.write_text("bbbb")  # same size, new content
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # what `touch -d` does
    assert data.stat().st_mtime_ns == before.st_mtime_ns
    changed = roar.run("cat", "data.txt")["inputs"][0]["hash"]
    assert changed != first


def test_run_is_spooled_when_no_daemon_can_start_and_stored_later(roar: Roar) -> None:
    blocker = roar.home / "not-a-dir"
    blocker.write_text("")
    roar.chown(blocker)
    broken = {"XDG_DATA_HOME": str(blocker)}  # the store cannot be created: roard cannot start
    secret = "ghp_" + "Zq8v" * 9
    proc = roar(
        "run",
        "sh",
        "-c",
        "echo hi > spooled.txt; sh -c 'true --password=hunter2xyz'; exit 4",
        env={**broken, "MY_API_TOKEN": secret},
        check=False,
    )
    assert proc.returncode == 4
    assert (roar.work / "spooled.txt").read_text() == "hi\n"
    assert "spooled" in proc.stderr and "Traceback" not in proc.stderr
    spool = list((roar.home / ".local/state/roar/spool").glob("*.msgpack"))
    assert len(spool) == 1
    saved = spool[0].read_bytes()
    assert secret.encode() not in saved  # redacted before it is saved
    assert b"hunter2xyz" not in saved  # in every process's argv too, not only the command's
    job = roar.last_job()  # a working daemon starts and ingests the spool
    assert job["job"]["exit_code"] == 4 and job["job"]["status"] == "recovered"
    assert [os.path.basename(o["path"]) for o in job["outputs"]] == ["spooled.txt"]
    assert not list((roar.home / ".local/state/roar/spool").glob("*.msgpack"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_verify(tmp_path: Path) -> None:
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    repo_units = [str(ROOT / "systemd/roard.service"), str(ROOT / "systemd/roard.socket")]
    check = subprocess.run(
        ["systemd-analyze", "--user", "verify", *repo_units],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    target = tmp_path / "units"
    out = subprocess.run(
        [str(BIN / "roarctl"), "daemon", "install-service", "--dir", str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in out.stdout
    service = (target / "roard.service").read_text()
    assert f"ExecStart={BIN / 'roard'}" in service
    check = subprocess.run(
        [
            "systemd-analyze",
            "--user",
            "verify",
            str(target / "roard.service"),
            str(target / "roard.socket"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    broken = target / "broken.service"
    broken.write_text("[Service]\nExecStart=relative/path\n")
    bad = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(broken)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0  # the check itself can fail


def test_roard_help_and_cli_help_have_examples() -> None:
    for argv in (
        [str(BIN / "roard"), "--help"],
        [str(BIN / "roarctl"), "run", "--help"],
        [str(BIN / "roarctl"), "show", "--help"],
        [str(BIN / "roar"), "--help"],
    ):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert "xample" in out, argv


def test_cli_usage_errors_are_clean() -> None:
    proc = subprocess.run([str(BIN / "roarctl"), "run"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Missing argument" in proc.stderr
    proc = subprocess.run([str(BIN / "roarctl"), "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_unsavable_record_keeps_the_exit_status(roar: Roar) -> None:
    blocker = roar.home / "not-a-dir"
    blocker.write_text("")
    roar.chown(blocker)
    broken = {"XDG_DATA_HOME": str(blocker), "XDG_STATE_HOME": str(blocker)}
    proc = roar("run", "sh", "-c", "exit 3", env=broken, check=False)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and "it is lost" in proc.stderr
    quiet = roar("run", "-q", "sh", "-c", "exit 3", env=broken, check=False)
    assert quiet.returncode == 3  # -q hides roar's notes, never that a record is lost
    (lost,) = [ln for ln in quiet.stderr.splitlines() if "it is lost" in ln]
    assert lost.startswith("roar: warning: could not save the record of job ")


RESENT_FACTS = """
import os, sys, time
from roarctl.client import Client
from roar.protocol import FileFact, GetStatus, RunFiles, StatusReply

def runs():
    with Client.connect(autostart=False) as c:
        return c.call(GetStatus(cwd=os.getcwdb()), expect=StatusReply).daemon.runs

# As roarctl does after a roard restart: facts of a run started on another connection.
c = Client.connect(autostart=False)
c.send(RunFiles(job_id="0123456789ab", files=[FileFact(path=b"/tmp/x", read=True)]))
while runs() != 1:
    time.sleep(0.02)
print("in flight", runs())
c.close()  # the client dies before it finishes the run
deadline = time.monotonic() + 10
while runs() and time.monotonic() < deadline:
    time.sleep(0.02)
print("after", runs())
"""


def test_facts_resent_on_a_connection_that_drops_are_let_go(roar: Roar) -> None:
    roar("daemon", "start")
    out = roar.exec([sys.executable, "-c", RESENT_FACTS]).stdout
    assert out.splitlines() == ["in flight 1", "after 0"]
    assert roar.json("status")["daemon"]["runs"] == 0


OLD_ROARD = (
    "import sys, roar; roar.__version__ = '0.0.1-old'; "
    "from roard.main import main; sys.argv[0] = 'roard'; sys.exit(main())"
)


def test_a_roard_of_another_version_is_replaced_by_the_next_run(roar: Roar) -> None:
    roar.exec([sys.executable, "-c", OLD_ROARD, "--detach"])  # as an upgrade leaves it
    old = json.loads(roar("daemon", "status", "--json").stdout)
    assert old["version"] == "0.0.1-old"
    prerun = roar.socket.parent / "prerun"
    assert prerun.read_text().splitlines()[0] == "roard 0.0.1-old"  # so this run waits
    out = roar("run", "sh", "-c", "echo hi > out.txt")
    assert "job" in out.stderr
    new = json.loads(roar("daemon", "status", "--json").stdout)
    assert new["version"] == __version__ and new["pid"] != old["pid"]
    assert wait_for(lambda: not _alive(old["pid"]))
    job = roar.last_job()
    assert job["job"]["status"] == "complete"
    assert [os.path.basename(o["path"]) for o in job["outputs"]] == ["out.txt"]


# A roard of the previous protocol (1: targets were text), as an upgrade leaves it running. It
# answers a Hello of protocol 2 with `version` and closes: it cannot be asked to stop.
OLD_PROTOCOL_ROARD = (
    "import sys, roar.protocol as p; p.PROTOCOL_VERSION = 1; "
    "from roard.main import main; sys.argv[0] = 'roard'; sys.exit(main())"
)


def _old_protocol_roard(roar: Roar) -> int:
    roar.exec([sys.executable, "-c", OLD_PROTOCOL_ROARD, "--detach"])
    holder = roar.exec(["fuser", str(roar.socket.parent / "roard.lock")])  # roard's lock
    pid = int(holder.stdout.split()[0])
    assert _alive(pid)
    return pid


def test_a_roard_of_another_protocol_is_replaced_by_the_next_run(roar: Roar) -> None:
    old = _old_protocol_roard(roar)
    out = roar("run", "sh", "-c", "echo hi > out.txt")
    assert "job" in out.stderr and "spooled" not in out.stderr
    assert wait_for(lambda: not _alive(old))
    new = json.loads(roar("daemon", "status", "--json").stdout)
    assert new["version"] == __version__ and new["pid"] != old
    job = roar.last_job()
    # The old roard's prerun file let the run start early; its announcement found no roard
    # that could take it, so the new one got the whole record at the end: `recovered`.
    assert job["job"]["status"] == "recovered"
    assert [os.path.basename(o["path"]) for o in job["outputs"]] == ["out.txt"]


def test_daemon_stop_stops_a_roard_of_another_protocol(roar: Roar) -> None:
    old = _old_protocol_roard(roar)
    out = roar("daemon", "stop")
    assert out.stdout == f"roard stopped (pid {old})\n"
    assert wait_for(lambda: not _alive(old))
    assert not roar.socket.exists()
