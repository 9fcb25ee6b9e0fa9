"""Early start (roard/prerun.py, roarctl/run.py): a command starts before roard answers, except
where roard's answer matters; roard stopped with SIGSTOP makes "before" observable."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Roar, git_repo, wait_for

from roard import __version__, prerun


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
    repo = git_repo(roar, roar.work / "repo", {"code.py": "print(1)\n"})
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", "echo out > new.txt; echo x > marker"], cwd=repo)
        assert wait_for((repo / "marker").exists, timeout=30)  # ran while roard could not answer
    finish(proc)
    job = roar.last_job(repo)
    assert job["job"]["status"] == "complete"
    assert {os.path.basename(o["path"]) for o in job["outputs"]} == {"new.txt", "marker"}
    # roard took the git state after the command had created these: they are not the code
    assert job["git"]["dirty"] == []
    assert job["git"]["clean"] is True


def test_an_existing_file_in_the_tree_changes_only_after_roard_answers(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"data.txt": "v1\n"})
    with roard_frozen(roar):
        script = "echo x > marker; echo v2 > data.txt"
        proc = roar.exec_async(["sh", "-c", script], cwd=repo)
        assert wait_for((repo / "marker").exists, timeout=30)
        time.sleep(0.5)
        assert (repo / "data.txt").read_text() == "v1\n"  # held until the git state is taken
    finish(proc)
    assert (repo / "data.txt").read_text() == "v2\n"
    job = roar.last_job(repo)
    assert job["git"]["dirty"] == []  # clean when the command started
    assert {os.path.basename(o["path"]) for o in job["outputs"]} == {"marker", "data.txt"}


def test_project_env_vars_make_the_run_wait_for_roard(roar: Roar) -> None:
    repo = git_repo(roar, roar.work / "repo", {"code.py": "print(1)\n"})
    roar("env", "set", "GREETING=hello", cwd=repo)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", 'echo "$GREETING" > marker'], cwd=repo)
        time.sleep(1.0)
        assert not (repo / "marker").exists()  # waits for the variables roard injects
    finish(proc)
    assert (repo / "marker").read_text() == "hello\n"
    # elsewhere runs still start early
    other = roar.work / "other"
    other.mkdir()
    roar.chown(other)
    with roard_frozen(roar):
        proc = roar.exec_async(["sh", "-c", "echo x > marker"], cwd=other)
        assert wait_for((other / "marker").exists, timeout=30)
    finish(proc)


def test_stale_prerun_file_of_a_killed_roard(roar: Roar) -> None:
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists())
    prerun_file = roar.socket.parent / "prerun"
    assert prerun_file.exists()  # left behind: the run starts early, with no roard to tell
    out = roar("run", "sh", "-c", "echo ok > out.txt; exit 3", check=False)
    assert out.returncode == 3, out.stderr
    job = roar.last_job()
    assert job["job"]["exit_code"] == 3  # delivered to the roard started at the end
    assert {os.path.basename(o["path"]) for o in job["outputs"]} == {"out.txt"}


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
