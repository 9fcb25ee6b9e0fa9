"""Early start (roard/prerun.py, roarctl/run.py): a command starts before roard answers, except
where roard's answer matters; roard stopped with SIGSTOP makes "before" observable."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROARCTL, Roar, git_repo, wait_for

from roar import __version__, prerun


@contextmanager
def roard_frozen(roar: Roar) -> Iterator[None]:
    """roard stopped (SIGSTOP): it accepts connections but answers nothing until the end."""
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_command_starts_before_roard_answers(roar: Roar) -> None:
    work = roar.work / "plain"  # no git tree: nothing to hold the command for
    work.mkdir()
    roar.chown(work)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", "echo out > new.txt"], cwd=work)
        assert wait_for((work / "new.txt").exists, timeout=30)  # ran while roard was stopped
    finish(proc)
    job = roar.last_job(work)
    assert job["job"]["status"] == "complete"
    assert [os.path.basename(o["path"]) for o in job["outputs"]] == ["new.txt"]


def test_in_a_git_tree_the_first_write_waits_for_the_git_state(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"data.txt": "v1\n", "gone.txt": "g\n"})
    (roar.work / "link").symlink_to(repo)  # a path the tree's name does not start
    (repo / "gone.txt").unlink()  # dirty before the run: deleted, then re-created by it
    script = "mkdir started; echo new > new.txt; echo v2 > ../link/data.txt; echo g > gone.txt"
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", script], cwd=repo)
        assert wait_for((repo / "started").exists, timeout=30)  # it started: mkdir is no write
        time.sleep(0.5)
        assert not (repo / "new.txt").exists()  # held at its first write
        assert (repo / "data.txt").read_text() == "v1\n"
    finish(proc)
    assert (repo / "data.txt").read_text() == "v2\n"
    job = roar.last_job(repo)
    assert job["job"]["status"] == "complete"
    # the git state is the tree as the command found it: only gone.txt was uncommitted
    assert [(f["path"], f["status"]) for f in job["git"]["dirty"]] == [("gone.txt", "deleted")]
    outs = {os.path.basename(o["path"]) for o in job["outputs"]}
    assert outs == {"new.txt", "data.txt", "gone.txt"}


def test_a_descriptor_open_for_writing_in_the_tree_makes_the_run_wait(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"build.log": "old\n"})
    with roard_frozen(roar), open(repo / "build.log", "ab") as log:
        proc = subprocess.Popen(
            [*roar.prefix(), str(ROARCTL), "run", "sh", "-c", "mkdir started; echo line"],
            cwd=repo,
            env=roar.env,
            stdin=subprocess.DEVNULL,
            stdout=log,  # as `roarctl run ... >> build.log` would give it
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
        assert not (repo / "started").exists()  # waits for roard before it starts
    assert proc.wait(timeout=60) == 0
    assert (repo / "build.log").read_text() == "old\nline\n"
    job = roar.last_job(repo)
    assert job["git"]["dirty"] == []  # the log was committed when the run began


def test_project_env_vars_and_hygiene_rules_make_the_run_wait(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"code.py": "print(1)\n"})
    roar("env", "set", "GREETING=hello", cwd=repo)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", 'mkdir started; echo "$GREETING" > m'], cwd=repo)
        time.sleep(1.0)
        assert not (repo / "started").exists()  # waits for the variables roard injects
    finish(proc)
    assert (repo / "m").read_text() == "hello\n"
    ruled = git_repo(roar, roar.work / "ruled", {"code.py": "print(1)\n"})
    roar("init", cwd=ruled)
    (ruled / ".roar/config.toml").write_text("[hygiene]\ncommitted_code_only = true\n")
    roar.chown(ruled)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", "mkdir started"], cwd=ruled)
        time.sleep(1.0)
        assert not (ruled / "started").exists()  # roard may refuse it
    finish(proc)
    # elsewhere runs still start early
    other = roar.work / "other"
    other.mkdir()
    roar.chown(other)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", "echo x > marker"], cwd=other)
        assert wait_for((other / "marker").exists, timeout=30)
    finish(proc)


def test_ctrl_c_lets_a_held_command_go_when_roard_does_not_answer(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"data.txt": "v1\n"})
    with roard_frozen(roar):
        proc = subprocess.Popen(
            [*roar.prefix(), str(ROARCTL), "run", "sh", "-c", "mkdir started; echo 2 > data.txt"],
            cwd=repo,
            env=roar.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, as a terminal's job
            text=True,
        )
        assert wait_for((repo / "started").exists, timeout=30)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the command, held, gets it too
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # and again: roarctl stops waiting for roard
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "not recorded" in err
    # released, its open (O_TRUNC) ran, then the first Ctrl-C killed it before it wrote
    assert (repo / "data.txt").read_text() != "2\n"


def test_stale_prerun_file_of_a_killed_roard_makes_the_run_wait(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"code.py": "print(1)\n"})
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists())
    prerun_file = roar.socket.parent / "prerun"
    assert prerun_file.exists()  # left behind, but nobody holds its lock
    out = roar("run", "sh", "-c", "echo ok > out.txt; exit 3", cwd=repo, check=False)
    assert out.returncode == 3, out.stderr
    job = roar.last_job(repo)
    assert job["job"]["status"] == "complete"  # announced to a roard started first
    assert job["git"]["commit"] and job["git"]["dirty"] == []


def test_roard_removes_its_prerun_file_when_it_stops(roar: Roar) -> None:
    roar("daemon", "start")
    prerun_file = roar.socket.parent / "prerun"
    assert prerun_file.read_text().splitlines() == [f"roard {__version__}"]
    roar("daemon", "stop")
    assert not prerun_file.exists()


# ---------------------------------------------------------------- the decision itself


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("ROAR_EARLY", raising=False)
    (tmp_path / "run" / "roar").mkdir(parents=True)
    return tmp_path / "run" / "roar"


def test_early_start_decision(tmp_path: Path, runtime: Path, monkeypatch) -> None:
    work = tmp_path / "proj" / "sub"
    work.mkdir(parents=True)
    cwd = os.fsencode(work)
    assert prerun.early_start(cwd) == (False, None)  # no roard has written the file
    (runtime / "prerun").write_bytes(prerun.render([]))
    assert prerun.early_start(cwd) == (False, None)  # nobody holds it: its roard died
    held = os.open(runtime / "prerun", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_SH)  # as a live roard does (writes below keep the inode)
    (runtime / "prerun").write_bytes(b"roard 0.0.0-other\n")
    assert prerun.early_start(cwd) == (False, None)  # another version: wait (and replace it)
    (runtime / "prerun").write_bytes(prerun.render([]))
    assert prerun.early_start(cwd) == (True, None)
    (tmp_path / "proj" / ".git").mkdir()
    assert prerun.early_start(cwd) == (True, os.fsencode(tmp_path / "proj"))
    (runtime / "prerun").write_bytes(prerun.render([os.fsencode(tmp_path / "proj")]))
    assert prerun.early_start(cwd) == (False, None)  # a project with env vars
    assert prerun.early_start(os.fsencode(tmp_path)) == (True, None)  # above it: no
    (runtime / "prerun").write_bytes(prerun.render([b"/odd\nname"]))
    assert prerun.early_start(cwd) == (False, None)  # unlistable root: every run waits
    (runtime / "prerun").write_bytes(prerun.render([]))
    (tmp_path / "proj" / ".roar").mkdir()
    config = tmp_path / "proj" / ".roar" / "config.toml"
    config.write_text("[hygiene]\ncommitted_code_only = false\n")
    assert prerun.early_start(cwd)[0] is True
    config.write_text("[hygiene]\ncommitted_code_only = true\n")
    assert prerun.early_start(cwd) == (False, None)  # a rule that may refuse the run
    config.write_text("hygiene = { committed_code_only = true }\n")
    assert prerun.early_start(cwd) == (False, None)
    config.write_text("")
    monkeypatch.setenv("ROAR_EARLY", "0")
    assert prerun.early_start(cwd) == (False, None)
    os.close(held)
