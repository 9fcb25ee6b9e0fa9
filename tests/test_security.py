"""Another local user on the same machine: impersonating roard, reading the store. Runs as root
only (it creates a second ordinary user and acts as it with setpriv); the victim is each of the
e2e modes (root, and the ordinary user `roar-e2e`)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Roar, git_repo, wait_for

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="needs root to create a second user")

ATTACKER = "roar-e2e-other"
DATA = Path(__file__).parent / "data"

# A fake roard: listens at argv[1], answers a Hello with a Welcome (to tempt the client on) and
# appends every byte it receives to argv[2].
FAKE_ROARD = r"""
import os, socket, struct, sys
import msgspec
from roar.protocol import PROTOCOL_VERSION
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen()
open(log, "wb").close()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    data = c.recv(65536)
    with open(log, "ab") as f:
        f.write(data)
    welcome = msgspec.msgpack.encode(
        {"type": "Welcome", "protocol": PROTOCOL_VERSION, "server": "0.1.0", "pid": 1}
    )
    try:
        c.sendall(struct.pack(">I", len(welcome)) + welcome)
    except OSError:
        pass
    c.close()
"""


def _attacker() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(ATTACKER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ATTACKER],
            check=True,
        )
        pw = pwd.getpwnam(ATTACKER)
    return pw.pw_uid, pw.pw_gid


def _as(user: tuple[int, int]) -> list[str]:
    return ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", "--"]


class Fake:
    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    def received(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""


@pytest.fixture
def fake_roard() -> Iterator[object]:
    """Start a fake roard as the attacker at a path (a function, returning a Fake)."""
    attacker = _attacker()
    started: list[Fake] = []
    scratch = Path(tempfile.mkdtemp(prefix="roar-attacker-", dir="/tmp"))
    os.chown(scratch, *attacker)

    def start(sock: Path) -> Fake:
        log = scratch / f"received-{len(started)}"
        proc = subprocess.Popen(
            [*_as(attacker), sys.executable, "-c", FAKE_ROARD, str(sock), str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        fake = Fake(proc, log)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.proc.send_signal(signal.SIGKILL)
        fake.proc.wait()
    shutil.rmtree(scratch, ignore_errors=True)


def _attacker_dir(path: Path) -> None:
    """A directory the attacker made first, as an attacker would (world-usable, theirs)."""
    path.mkdir(mode=0o755)
    os.chown(path, *_attacker())


def test_a_second_roard_for_the_same_store_is_refused_and_the_run_still_runs(roar: Roar) -> None:
    # one user, two sessions: a login with XDG_RUNTIME_DIR, an ssh session with another (or none)
    roar.run("sh", "-c", "echo a > a.txt")
    first = roar.daemon_pid()
    other = roar.base / "run2"
    other.mkdir(mode=0o700)
    roar.chown(other)
    elsewhere = {"XDG_RUNTIME_DIR": str(other)}
    status = roar("status", env=elsewhere, check=False)
    assert status.returncode != 0 and "Traceback" not in status.stderr
    assert f"roard (pid {first}, socket {roar.socket}) serves the store" in status.stderr
    proc = roar("run", "sh", "-c", "echo ok", env=elsewhere, check=False)
    assert proc.returncode == 0 and proc.stdout == "ok\n"  # the command is never broken
    assert roar.daemon_pid() == first  # and the first roard still serves, alone
    assert not (other / "roar" / "roard.sock").exists()


def test_without_xdg_runtime_dir_a_tmp_dir_made_first_by_another_user_is_not_used(
    roar: Roar, fake_roard
) -> None:
    uid = roar.user[0] if roar.user else os.getuid()
    trap = Path(f"/tmp/roar-{uid}")  # where roar used to fall back to
    if trap.exists():
        pytest.skip(f"{trap} exists already")
    _attacker_dir(trap)
    try:
        fake = fake_roard(trap / "roard.sock")
        roar.env.pop("XDG_RUNTIME_DIR")  # the run, the rest of the test and the teardown
        proc = roar("run", "sh", "-c", "echo ok", check=False)
        try:
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == "ok\n"
            assert fake.received() == b""  # the fake roard never heard from the victim
            assert roar.json("log")[0]["command"] == "sh -c 'echo ok'"
            assert (roar.home / ".local/state/roar/run/roard.sock").exists()
        finally:
            roar.stop()
    finally:
        shutil.rmtree(trap, ignore_errors=True)


def test_a_socket_directory_of_another_user_is_refused_before_anything_is_sent(
    roar: Roar, fake_roard
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="roar-shared-run-", dir="/tmp"))
    os.chmod(shared, 0o1777)  # a runtime dir shared by everyone, like /tmp
    try:
        _attacker_dir(shared / "roar")
        fake = fake_roard(shared / "roar" / "roard.sock")
        env = {"XDG_RUNTIME_DIR": str(shared), "ROAR_TEST_SECRET": "hunter2"}
        for args in (["status"], ["daemon", "start"], ["log"]):
            proc = roar(*args, env=env, check=False)
            assert proc.returncode == 1, (args, proc.stderr)
            first = proc.stderr.splitlines()[0]
            assert "refusing to talk to roard" in first and "belongs to uid" in first
            assert "Traceback" not in proc.stderr
        # A run is never broken by roar: the command runs, roar says why it kept away from
        # that roard, and the record waits in the user's own spool.
        proc = roar("run", "sh", "-c", "echo ran", env=env, check=False)
        assert proc.returncode == 0 and proc.stdout == "ran\n"
        assert "refusing to talk to roard" in proc.stderr and "spooled" in proc.stderr
        assert len(list((roar.home / ".local/state/roar/spool").glob("*.msgpack"))) == 1
        assert fake.received() == b""
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_listener_of_another_uid_in_the_users_own_directory_is_refused(roar: Roar) -> None:
    if roar.user is None:
        pytest.skip(
            "the victim is root: every listener in its directory is another uid's only "
            "if root made it, which is the same uid"
        )
    runtime = Path(roar.env["XDG_RUNTIME_DIR"]) / "roar"
    runtime.mkdir(mode=0o700)
    roar.chown(runtime)
    listener = subprocess.Popen(  # root listening inside the user's 0700 directory
        [sys.executable, "-c", FAKE_ROARD, str(runtime / "roard.sock"), "/dev/null"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        proc = roar("status", check=False)
        assert proc.returncode == 1
        assert "refusing to talk to roard" in proc.stderr and "runs as uid 0" in proc.stderr
    finally:
        listener.kill()
        listener.wait()


def test_another_user_can_neither_read_the_store_nor_reach_the_socket(roar: Roar) -> None:
    roar.run("sh", "-c", "echo data > out.txt")
    attacker = _as(_attacker())
    targets = [roar.db, roar.db.parent, roar.home / ".local/state/roar/roard.log", roar.socket]
    for target in targets:
        assert target.exists()
        proc = subprocess.run([*attacker, "cat", str(target)], capture_output=True, check=False)
        assert proc.returncode != 0 and proc.stdout == b"", target
    probe = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print(e.errno)\n"
        "else:\n    print('connected')"
    )
    out = subprocess.run(
        [*attacker, sys.executable, "-c", probe, str(roar.socket)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    assert out == "13"  # EACCES: the socket's directory is 0700
    assert wait_for(lambda: roar.daemon_pid() is not None)
    time.sleep(0)  # nothing else to wait for


def _entries(root: Path) -> list[Path]:
    """`root` and everything under it (directories, files, sockets), symlinks not followed."""
    return [root, *sorted(root.rglob("*"))]


def test_every_file_roar_makes_is_the_users_alone_from_the_start(roar: Roar, fake_roard) -> None:
    # A home others may enter (Debian's default was 0755), and directories an older roar made
    # 0755: roar's own files must still be out of their reach.
    roar.home.chmod(0o755)
    data = roar.home / ".local/share/roar"
    state = roar.home / ".local/state/roar"
    config = roar.home / ".config/roar"
    runtime = roar.socket.parent
    roar.sh(f"umask 022 && mkdir -p '{data}' '{runtime}' && chmod 755 '{data}' '{runtime}'")
    shutil.copy(DATA / "store-v3.db", data / "roar.db")  # and its store 0644
    (data / "roar.db").chmod(0o644)
    roar.chown(data)
    # Before any roard ran: a run whose record is spooled (roarctl makes the state directory)
    # and the user's config (roarctl makes the config directory).
    shared = Path(tempfile.mkdtemp(prefix="roar-shared-run-", dir="/tmp"))
    os.chmod(shared, 0o1777)
    try:
        _attacker_dir(shared / "roar")
        fake_roard(shared / "roar" / "roard.sock")
        proc = roar("run", "sh", "-c", "echo spooled", env={"XDG_RUNTIME_DIR": str(shared)})
        assert "spooled" in proc.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    roar("config", "set", "--user", "log.level", "info")
    # A few runs: roard starts, ingests the spool, hashes (the hash cache), writes the prerun.
    repo = git_repo(roar, roar.work / "p", {"in.txt": "raw\n"})
    roar.run("sh", "-c", "cat in.txt > mid.txt", cwd=repo)
    roar.run("sh", "-c", "wc -c < mid.txt > out.txt", cwd=repo)
    roar("env", "set", "MODE=fast", cwd=repo)
    roar.run("sh", "-c", "cat out.txt", cwd=repo)
    assert roar.daemon_pid() is not None  # listed while roard runs: its WAL is open

    entries = [p for root in (data, state, config, runtime) for p in _entries(root)]
    names = {p.name for p in entries}
    made = {"roar.db", "roar.db-wal", "roar.db-shm", "roard.log", "spool", "config.toml"}
    assert made | {"roard.sock", "roard.lock", "prerun"} <= names
    loose = []
    for p in entries:
        st = p.lstat()
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != want:
            loose.append(f"{p} {stat.S_IMODE(st.st_mode):o}")
    assert not loose, "\n".join(loose)

    attacker = _as(_attacker())
    for p in entries:
        if p.is_socket():
            continue
        read = ["ls", str(p)] if p.is_dir() else ["cat", str(p)]
        proc = subprocess.run([*attacker, *read], capture_output=True, check=False)
        assert proc.returncode != 0 and proc.stdout == b"", p
    probe = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    proc = subprocess.run(
        [*attacker, sys.executable, "-c", probe, str(roar.socket)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
