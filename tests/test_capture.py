"""Run-context capture: redaction, git state, Python packages, hardware. Real files, no mocks."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roar.redact import (
    REDACTED,
    command_display,
    redact_argv,
    redact_env,
    redact_text,
)
from roard.capture.git import git_state
from roard.capture.hardware import hardware
from roard.capture.packages import is_python, python_packages

# ---------------------------------------------------------------- redaction

SECRETS = {  # name -> value; every value must vanish from the output
    "GITHUB_TOKEN": "plainvalue-github",
    "HF_TOKEN": "plainvalue-hf",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_ACCESS_KEY_ID": "plainvalue-keyid",
    "OPENAI_API_KEY": "plainvalue-openai",
    "APIKEY": "plainvalue-apikey",
    "DB_PASSWORD": "hunter2",
    "SMTP_PASSWD": "hunter3",
    "GPG_PASSPHRASE": "correct horse",
    "MYSQL_PWD": "hunter4",
    "AZURE_CREDENTIALS": "plainvalue-cred",
    "BASIC_AUTH": "plainvalue-auth",
    "OAUTH_CLIENT": "plainvalue-oauth",
    "SSH_PRIVATE": "plainvalue-private",
    "FLASK_SESSION_ID": "plainvalue-session",
    "SESSION_COOKIE": "plainvalue-cookie",
    "SENTRY_DSN": "plainvalue-dsn",
    "AZURE_STORAGE_CONNECTION_STRING": "plainvalue-connstr",
    "CLIENT_SECRET": "plainvalue-secret",
    "WANDB_API_KEY": "plainvalue-wandb",
    "KAGGLE_KEY": "plainvalue-kaggle",
    "JUPYTER_TOKEN": "plainvalue-jupyter",
    # value-based: innocent names, secret values
    "SOME_URL": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "PAT": "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz",
    "GL": "glpat-abcdefghij1234567890",
    "OPENAI": "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
    "STRIPE": "sk_live_abcdefghij1234567890",
    "SLACK": "xoxb-123456789012-abcdefghijkl",
    "HF": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678",
    "AWS_ID_ONLY": "AKIAIOSFODNN7EXAMPLE",
    "GOOGLE": "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "NPM": "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "PYPI": "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZmdoLWlqa2wtbW5vcC1xcnN0LXV2d3h5ejAxMjM0",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
    "RANDOM": "k8s3Jd9fLq2Xz7Pw4Rt6Yv1Nb5Mc0Hs8Ga3Ke2Ui",
    "PEM": "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34\n-----END RSA PRIVATE KEY-----",
}
URL_PASSWORDS = {
    "DATABASE_URL": ("postgres://alice:s3cr@t@db.example.com:5432/app", "s3cr@t"),
    "PIP_INDEX_URL": ("https://__token__:tok9Zx@pypi.example.com/simple", "tok9Zx"),
}
INNOCENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin:/home/alice/.local/bin",
    "HOME": "/home/alice",
    "LANG": "en_US.UTF-8",
    "PWD": "/home/alice/projects/data_pipeline_2024/run_17/outputs_final",
    "OLDPWD": "/home/alice",
    "SHELL": "/bin/bash",
    "TERM": "xterm-256color",
    "VIRTUAL_ENV": "/home/alice/proj/.venv",
    "PYTHONPATH": "/home/alice/proj/src:/home/alice/proj/vendor_libs_2024",
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "KEYBOARD_LAYOUT": "us",
    "MONKEY_PATCH": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "SSH_AUTH_SOCK": "/tmp/ssh-XXXXabcd/agent.1234",
    "XAUTHORITY": "/home/alice/.Xauthority",
    "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
    "CONTENT_HASH": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "RUN_ID": "550e8400-e29b-41d4-a716-446655440000",
    "RUN_NAME": "runs_2024_01_15_resnet50_baseline_lr0001_bs256",
    "HF_HOME": "/root/.cache/huggingface/hub/models--bert-base-uncased/snapshots/x",
    "GIT_REMOTE": "git@github.com:org/repo.git",
    "EMPTY_TOKEN": "",
    "MASTER_ADDR": "10.0.0.1",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "MAX_TOKENS": "4096",
    "KAGGLE_USERNAME": "ada",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
}


def _ls_colors() -> str:
    env = {"PATH": os.environ.get("PATH", os.defpath), "TERM": "xterm-256color"}
    out = subprocess.run(
        ["dircolors", "-b"], env=env, capture_output=True, text=True, check=False
    ).stdout
    start = out.find("LS_COLORS='")
    if start < 0:  # pragma: no cover - coreutils always ships dircolors
        return "rs=0:di=01;34:ln=01;36:*.tar=01;31:*.key=00;33:*.pem=00;33"
    return out[start + len("LS_COLORS='") : out.index("'", start + len("LS_COLORS='"))]


def _entries(d: dict[str, str]) -> list[bytes]:
    return [f"{k}={v}".encode() for k, v in d.items()]


def test_redact_env_removes_every_secret() -> None:
    env = {**SECRETS, **{k: v for k, (v, _) in URL_PASSWORDS.items()}}
    out = redact_env(_entries(env))
    assert set(out) == set(env)
    text = repr(out)
    for name, value in SECRETS.items():
        assert value not in text, name
        assert REDACTED in out[name], name
    assert out["DATABASE_URL"] == f"postgres://alice:{REDACTED}@db.example.com:5432/app"
    for _, secret in URL_PASSWORDS.values():
        assert secret not in text


def test_redact_env_keeps_innocent_variables() -> None:
    env = {**INNOCENT, "LS_COLORS": _ls_colors()}
    assert len(env["LS_COLORS"]) > 200
    assert redact_env(_entries(env)) == env


def test_redact_env_bytes_and_odd_entries() -> None:
    out = redact_env([b"NAME=caf\xe9", b"NOEQUALS", b"A=1", b"A=2", b"X==y"])
    assert out == {"NAME": "caf\\xe9", "NOEQUALS": "", "A": "1", "X": "=y"}


def test_redact_text() -> None:
    assert redact_text("https://oauth2:glpat-abcdefghij1234567890@gitlab.com/o/r.git") == (
        f"https://oauth2:{REDACTED}@gitlab.com/o/r.git"
    )
    token_user = "https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git"
    assert redact_text(token_user) == f"https://{REDACTED}@github.com/o/r.git"
    for keep in ("ssh://git@github.com:22/o/r.git", "https://user@host:8080/p", "sk-learn"):
        assert redact_text(keep) == keep
    assert redact_text("host=db password=hunter2 user=x") == f"host=db password={REDACTED} user=x"
    assert redact_text("https://x/y?access_token=abc123&sv=2020") == (
        f"https://x/y?access_token={REDACTED}&sv=2020"
    )
    assert "abc.def.ghi" not in redact_text("Authorization: Bearer abc.def.ghi")
    assert redact_text("python t.py --hf-token abcdef --max-tokens 512") == (
        f"python t.py --hf-token {REDACTED} --max-tokens 512"
    )
    assert redact_text("d41d8cd98f00b204e9800998ecf8427e") == REDACTED  # md5-sized hex
    colors = "rs=0:di=01;34:*.key=00;33:*.pem=00;33:*.token=01;31:*.tar=01;31"
    assert redact_text(colors) == colors


def test_redact_argv() -> None:
    argv = [
        b"python",
        b"train.py",
        b"--token",
        b"tok-value-1",
        b"--api-key=tok-value-2",
        b"--password",
        b"tok-value-3",
        b"--max-tokens",
        b"512",
        b"--sort-keys",
        b"data.json",
        b"--label-key",
        b"label",
        b"-p",
        b"8080",
        b"db.password=tok-value-4",
        b"AWS_SECRET_ACCESS_KEY=tok-value-5",
        b"--url=https://u:tok-value-6@host/x",
        b"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        b"--no-auth",
        b"input.csv",
        b"--hf_token",
        b"--verbose",
        b"caf\xe9",
    ]
    out = redact_argv(argv)
    assert len(out) == len(argv)
    for n in range(1, 7):
        assert f"tok-value-{n}" not in repr(out)
    assert "ghp_" not in repr(out)
    assert out[:5] == ["python", "train.py", "--token", REDACTED, f"--api-key={REDACTED}"]
    assert out[5:8] == ["--password", REDACTED, "--max-tokens"]
    assert out[8:15] == ["512", "--sort-keys", "data.json", "--label-key", "label", "-p", "8080"]
    assert out[15:17] == [f"db.password={REDACTED}", f"AWS_SECRET_ACCESS_KEY={REDACTED}"]
    assert out[19:] == ["--no-auth", "input.csv", "--hf_token", "--verbose", "caf\\xe9"]


def test_redact_argv_env_wrapper_and_shell() -> None:
    out = redact_argv([b"env", b"HF_TOKEN=abc", b"LR=0.1", b"sh", b"-c", b"x --password=pw1"])
    assert out == ["env", f"HF_TOKEN={REDACTED}", "LR=0.1", "sh", "-c", f"x --password={REDACTED}"]
    assert command_display(out) == (
        f"env 'HF_TOKEN={REDACTED}' LR=0.1 sh -c 'x --password={REDACTED}'"
    )


# ---------------------------------------------------------------- git


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / "sub").mkdir()
    (root / "sub" / "c.txt").write_text("c\n")
    (root / ".gitignore").write_text("*.log\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "first")
    return root


def test_git_clean_repo(repo: Path) -> None:
    state = git_state(str(repo))
    assert state is not None
    assert state.root == str(repo)
    assert state.commit == _git(repo, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert state.clean and state.dirty == [] and state.remotes == {}


def test_git_subdirectory(repo: Path) -> None:
    state = git_state(str(repo / "sub"))
    assert state is not None and state.root == str(repo)
    file_state = git_state(str(repo / "sub" / "c.txt"))
    assert file_state is not None and file_state.root == str(repo)


def test_git_branch_and_detached(repo: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "feature/x")
    state = git_state(str(repo))
    assert state is not None and state.branch == "feature/x"
    _git(repo, "checkout", "-q", "--detach")
    state = git_state(str(repo))
    assert state is not None and state.branch is None
    assert state.commit == _git(repo, "rev-parse", "HEAD")


def test_git_dirty_files(repo: Path) -> None:
    (repo / "a.txt").write_text("changed\n")
    (repo / "b.txt").unlink()
    (repo / "new.txt").write_text("new\n")
    (repo / "sub" / "deep").mkdir()
    (repo / "sub" / "deep" / "u.txt").write_text("u\n")
    (repo / "staged.txt").write_text("s\n")
    _git(repo, "add", "staged.txt")
    (repo / "debug.log").write_text("ignored\n")
    state = git_state(str(repo))
    assert state is not None and not state.clean
    assert {f.path: f.status for f in state.dirty} == {
        "a.txt": "modified",
        "b.txt": "deleted",
        "new.txt": "untracked",
        "sub/deep/u.txt": "untracked",
        "staged.txt": "added",
    }
    assert all(f.hash is None for f in state.dirty)


def test_git_remote_credentials_redacted(repo: Path) -> None:
    _git(repo, "remote", "add", "origin", "https://alice:hunter2@example.com/o/r.git")
    _git(repo, "remote", "add", "upstream", "git@github.com:o/r.git")
    state = git_state(str(repo))
    assert state is not None
    assert state.remotes == {
        "origin": f"https://alice:{REDACTED}@example.com/o/r.git",
        "upstream": "git@github.com:o/r.git",
    }


def test_git_unborn_and_not_a_repo(tmp_path: Path) -> None:
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    _git(unborn, "init", "-q")
    (unborn / "x.txt").write_text("x\n")
    state = git_state(str(unborn))
    assert state is not None
    assert state.commit is None and state.branch == "main"
    assert [(f.path, f.status) for f in state.dirty] == [("x.txt", "untracked")]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(str(plain)) is None
    assert git_state(str(tmp_path / "missing")) is None


# ---------------------------------------------------------------- packages


def test_is_python() -> None:
    for name in ("python", "python3", "python3.11", "/x/bin/pythonw", "python3.13t", "pypy3"):
        assert is_python(name), name
    for name in ("ipython", "python3-config", "bash", "/usr/bin/pythonista"):
        assert not is_python(name), name


def test_python_packages_of_this_venv() -> None:
    interpreter = os.path.join(sys.prefix, "bin", "python")  # the venv path, not resolved
    packages = {p.name.lower(): p.version for p in python_packages(interpreter)}
    for dist in ("msgspec", "blake3", "pygit2"):
        assert packages[dist] == importlib.metadata.version(dist)
    names = [p.name.lower() for p in python_packages(interpreter)]
    assert names == sorted(names)
    assert python_packages(interpreter) == python_packages(interpreter)  # warm cache


def test_python_packages_of_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
    )
    packages = {p.name.lower() for p in python_packages(str(venv / "bin" / "python"))}
    assert "msgspec" not in packages and "blake3" not in packages


def test_python_packages_failures(tmp_path: Path) -> None:
    assert python_packages(str(tmp_path / "python3")) == []  # missing
    assert python_packages("/bin/sh") == []  # not a python
    assert python_packages("python3") == []  # relative
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    assert python_packages(str(fake)) == []


# ---------------------------------------------------------------- hardware


def test_hardware() -> None:
    hw = hardware()
    assert hw.cpus >= 1 and hw.memory_bytes > 0
    assert hw.os and hw.kernel and hw.arch and hw.hostname and hw.cpu
    assert all(isinstance(g, str) and g for g in hw.gpus)
    assert hardware() is hw
