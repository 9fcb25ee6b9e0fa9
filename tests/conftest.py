"""End-to-end harness: a real roard per test, in its own HOME/XDG directories, driven through the
real `roarctl`; as root and, when the tests run as root, again as an ordinary user (created with
useradd, entered with setpriv), because ptrace, seccomp and socket permissions differ there."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
ROARCTL = BIN / "roarctl"
TEST_USER = "roar-e2e"


def _ensure_user() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
            check=True,
        )
        pw = pwd.getpwnam(TEST_USER)
    return pw.pw_uid, pw.pw_gid


def _make_reachable(path: Path, uid: int, gid: int) -> None:
    """Let the test user reach the venv: add search permission on ancestors that lack it."""
    probe = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "test",
        "-x",
        str(path),
    ]
    if subprocess.run(probe, check=False).returncode == 0:
        return
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class Roar:
    """One user's roar: private HOME and XDG directories, a daemon started on demand."""

    def __init__(self, base: Path, user: tuple[int, int] | None) -> None:
        self.base = base
        self.user = user
        self.home = base / "home"
        self.work = base / "work"
        runtime = base / "run"
        for d in (self.home, self.work, runtime):
            d.mkdir(mode=0o700)
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_STATE_HOME": str(self.home / ".local/state"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "LANG": "C.UTF-8",
        }
        if user is not None:
            self.chown(base)

    @property
    def db(self) -> Path:
        return self.home / ".local/share/roar/roar.db"

    @property
    def socket(self) -> Path:
        return Path(self.env["XDG_RUNTIME_DIR"]) / "roar/roard.sock"

    def chown(self, path: Path) -> None:
        if self.user is None:
            return
        for p in [path, *path.rglob("*")]:
            os.lchown(p, *self.user)

    def prefix(self) -> list[str]:
        if self.user is None:
            return []
        uid, gid = self.user
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]

    def sh(self, script: str, cwd: Path | None = None, **kw: Any) -> subprocess.CompletedProcess:
        """Run a shell command as this roar's user (e.g. to prepare files)."""
        return self.exec(["sh", "-c", script], cwd=cwd, **kw)

    def exec(
        self,
        argv: list[str],
        cwd: Path | None = None,
        check: bool = True,
        input: bytes | str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        return subprocess.run(
            self.prefix() + argv,
            cwd=cwd or self.work,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=text,
            check=check,
            timeout=timeout,
        )

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        proc = self.exec(
            [str(ROARCTL), *args], cwd=cwd, check=False, input=input, env=env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"roarctl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def exec_async(self, command: list[str], cwd: Path | None = None) -> subprocess.Popen:
        """`roarctl run COMMAND` in the background."""
        return subprocess.Popen(
            [*self.prefix(), str(ROARCTL), "run", "--", *command],
            cwd=cwd or self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        return json.loads(self(*args, "--json", cwd=cwd).stdout)

    def run(self, *command: str, cwd: Path | None = None, **kw: Any) -> dict[str, Any]:
        """`roarctl run COMMAND`, then the job it recorded (show --json)."""
        self("run", "--", *command, cwd=cwd, **kw)
        return self.last_job(cwd)

    def last_job(self, cwd: Path | None = None) -> dict[str, Any]:
        jobs = self.json("log", "--all", "-n", "1", cwd=cwd)
        return self.json("show", jobs[0]["id"], cwd=cwd)["job"]

    def daemon_pid(self) -> int | None:
        info = json.loads(self("daemon", "status", "--json", check=False).stdout)
        return info.get("pid")

    def stop(self) -> None:
        pid = self.daemon_pid()
        self("daemon", "stop", check=False)
        if pid:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.02)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def reap(base: Path) -> list[str]:
    """Kill whatever still runs with its HOME under `base` once its test is over (a roard that
    a test left unable to answer `daemon stop`, an ssh-agent): nothing outlives its test.
    Returns what it killed, for the test's log."""
    mark = b"HOME=" + os.fsencode(base) + b"/"
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if not any(var.startswith(mark) for var in environ):
                continue
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or a kernel thread
        killed.append(f"{entry.name}: {argv.strip()}")
    if killed:
        print(f"reaped what outlived its test under {base}:", *killed, sep="\n  ", file=sys.stderr)
    return killed


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until predicate() is true (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


MODES = ["self", "user"] if os.getuid() == 0 else ["self"]


@pytest.fixture(params=MODES)
def roar(request: pytest.FixtureRequest) -> Iterator[Roar]:
    user = None
    if request.param == "user":
        user = _ensure_user()
        # The interpreter may live in root's home (pyenv): the user needs search permission.
        _make_reachable(Path(sys.executable), *user)
        _make_reachable(Path(sys.executable).resolve(), *user)
    base = Path(tempfile.mkdtemp(prefix="roar-e2e-", dir="/tmp"))
    os.chmod(base, 0o755)
    r = Roar(base, user)
    try:
        yield r
    finally:
        r.stop()
        reap(base)
        shutil.rmtree(base, ignore_errors=True)


def git_repo(roar: Roar, path: Path, files: dict[str, str]) -> Path:
    """A real git repository with these files committed, owned by roar's user."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    roar.chown(path)
    roar.exec(["git", "init", "-q", "-b", "main", "."], cwd=path)
    roar.exec(["git", "add", "."], cwd=path)
    roar.exec(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
        cwd=path,
    )
    return path
