"""Run-context capture: redaction, git state, Python packages, hardware. Real files, no mocks."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from roar.redact import (
    REDACTED,
    command_display,
    redact_argv,
    redact_env,
    redact_run,
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


# Secret values in well-known formats, under names that say nothing: each must vanish from env
# values and argv strings alike. (Made-up values of the right shape.)
TOKENS_BY_VALUE = {
    "GitLab deploy token": "gldt-abcdefghij1234567890",
    "Bitbucket app password": "ATBB3xK9mPq2Lw8Rt5Vn7Yc4Zb6Hd1Fg0Js",
    "Atlassian API token": "ATATT3xFfGF0abcdefghijklmnop1234567890",
    "Anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "Groq": "gsk_AbCdEfGhIjKlMnOpQrStUvWx12",
    "xAI": "xai-AbCdEfGhIjKlMnOpQrStUvWx12",
    "Perplexity": "pplx-AbCdEfGhIjKlMnOpQrStUvWx12",
    "NVIDIA": "nvapi-AbCdEfGhIjKlMnOpQrStUvWx12",
    "Replicate": "r8_AbCdEfGhIjKlMnOpQrStUvWx12",
    "Google OAuth secret": "GOCSPX-AbCdEfGhIjKlMnOpQrStUvWx12",
    "Google access token": "ya29.a0AfH6SMBxAbCdEfGhIjKlMnOp",
    "Alibaba": "LTAI5tAbCdEfGhIjKlMn",
    "DigitalOcean": "dop_v1_" + "0123456789abcdef" * 4,
    "Databricks": "dapi0123456789abcdef0123456789abcdef",
    "Vault": "hvs.CAESIAbCdEfGhIjKlMnOpQrStUvWx",
    "Docker Hub": "dckr_pat_AbCdEfGhIjKlMnOpQrStUvWx",
    "Stripe webhook": "whsec_AbCdEfGhIjKlMnOpQrStUvWx",
    "Twilio": "SK0123456789abcdef0123456789abcdef",
    "SendGrid": "SG.AbCdEfGhIjKlMnOpQrSt.UvWxYz0123456789AbCdEfGh",
    "Mailgun": "key-0123456789abcdef0123456789abcdef",
    "Shopify": "shpat_0123456789abcdef0123456789abcdef",
    "Linear": "lin_api_AbCdEfGhIjKlMnOpQrStUvWx",
    "Notion": "ntn_" + "AbCdEfGhIj" * 4 + "K",
    "Sentry": "sntrys_eyJpYXQiOjE2OTQ0NTg4MDB9AbCd",
    "Grafana": "glsa_AbCdEfGhIjKlMnOpQrStUvWx_0123abcd",
    "Slack user token": "xoxp-1234567890-abcdefghijkl",
    "Telegram bot": "123456789:AA" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456",
    "Discord bot": "MTA5ODc2NTQzMjEwOTg3NjU0.GAbCdE.AbCdEfGhIjKlMnOpQrStUvWxYz0123",
    "age": "AGE-SECRET-KEY-1" + "QWERTYUPASDFGHJKLZXCVNM023456789" * 2,
    "PGP private key": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBGXabc\n"
    "-----END PGP PRIVATE KEY BLOCK-----",
    "Slack webhook": "https://hooks.slack.com/services/T0001ABCD/B0002EFGH/AbCdEfGhIjKl",
    "Discord webhook": "https://discord.com/api/webhooks/1234567890/AbCd-EfGh_IjKl",
}
SECRET_PART = {  # where the secret sits inside a longer value: only that part must go
    "Slack webhook": "AbCdEfGhIjKl",
    "Discord webhook": "AbCd-EfGh_IjKl",
}
# Content identifiers: provenance that must never be redacted, in env values or argv.
CONTENT_IDS = [
    "0123456789abcdef0123456789abcdef01234567",  # git SHA-1
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",  # sha256 / blake3
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",  # sha512
    "sha256:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",  # OCI digest
    "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  # subresource integrity / Nix
    "sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # IPFS CIDv0
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # IPFS CIDv1
    "550e8400-e29b-41d4-a716-446655440000",  # UUID
    "/data/cache/af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262/model.pt",
    "runs/550e8400-e29b-41d4-a716-446655440000/checkpoints/epoch_10.ckpt",
]


def test_redact_known_token_formats_whatever_the_name() -> None:
    env = {f"V{i}": value for i, value in enumerate(TOKENS_BY_VALUE.values())}
    out = redact_env(_entries(env))
    argv = redact_argv([b"python", b"job.py", *(v.encode() for v in TOKENS_BY_VALUE.values())])
    for i, (kind, value) in enumerate(TOKENS_BY_VALUE.items()):
        secret = SECRET_PART.get(kind, value)
        assert secret not in out[f"V{i}"], kind
        assert secret not in argv[i + 2], kind
        assert REDACTED in out[f"V{i}"] and REDACTED in argv[i + 2], kind
    assert out["V30"].startswith("https://hooks.slack.")  # the host stays


def test_content_hashes_and_uuids_are_never_redacted() -> None:
    env = {f"V{i}": value for i, value in enumerate(CONTENT_IDS)}
    assert redact_env(_entries(env)) == env
    argv = ["python", "verify.py", *CONTENT_IDS, *(f"--digest={c}" for c in CONTENT_IDS)]
    assert redact_argv([a.encode() for a in argv]) == argv
    text = " ".join(CONTENT_IDS)
    assert redact_text(text) == text


def test_redact_short_flags_of_programs_that_take_secrets() -> None:
    cases = {
        ("sshpass", "-p", "hunter2", "ssh", "host"): ("sshpass", "-p", REDACTED, "ssh", "host"),
        ("mysql", "-phunter2", "db"): ("mysql", f"-p{REDACTED}", "db"),
        ("mysql", "-p", "db"): ("mysql", "-p", "db"),  # bare -p prompts: db is the database
        ("redis-cli", "-a", "hunter2", "ping"): ("redis-cli", "-a", REDACTED, "ping"),
        ("curl", "-u", "ana:hunter2", "https://x"): ("curl", "-u", f"ana:{REDACTED}", "https://x"),
        ("curl", "--user=ana:hunter2", "x"): ("curl", f"--user=ana:{REDACTED}", "x"),
        ("curl", "-u", "ana", "x"): ("curl", "-u", "ana", "x"),  # curl asks for the password
        ("/usr/bin/zip", "-P", "pw", "a.zip"): ("/usr/bin/zip", "-P", REDACTED, "a.zip"),
        ("env", "A=1", "mongodump", "-p", "hunter2"): ("env", "A=1", "mongodump", "-p", REDACTED),
        ("openssl", "-k", "pw", "-passin", "env:PW"): (
            "openssl",
            "-k",
            REDACTED,
            "-passin",
            "env:PW",
        ),
        # -p of everything else is not a secret
        ("python", "train.py", "-p", "8080"): ("python", "train.py", "-p", "8080"),
        ("mkdir", "-p", "out/models"): ("mkdir", "-p", "out/models"),
        ("ssh", "-p", "2222", "host"): ("ssh", "-p", "2222", "host"),
        ("docker", "run", "-p", "8080:80", "img"): ("docker", "run", "-p", "8080:80", "img"),
    }
    for argv, want in cases.items():
        assert redact_argv([a.encode() for a in argv]) == list(want), argv
    script = "sshpass -p 'hunter2' ssh h && mysql -phunter9 db; mkdir -p out"
    out = redact_argv([b"bash", b"-lc", script.encode()])
    assert out == [
        "bash",
        "-lc",
        f"sshpass -p '{REDACTED}' ssh h && mysql -p{REDACTED} db; mkdir -p out",
    ]


def test_redact_secrets_assigned_in_code_strings() -> None:
    code = (
        "import os; os.environ['OPENAI_KEY'] = 'plain-1'; password = \"plain-2\"; "
        "client = Client(api_key='plain-3', model='gpt'); os.putenv(\"HF_TOKEN\", \"plain-4\")"
    )
    out = redact_argv([b"python", b"-c", code.encode()])
    for n in range(1, 5):
        assert f"plain-{n}" not in out[2]
    assert "model='gpt'" in out[2] and "Client(" in out[2]
    js = redact_argv([b"node", b"-e", b'run({"apiKey": "plain-5", "user": "ana"})'])
    assert js[2] == f'run({{"apiKey": "{REDACTED}", "user": "ana"}})'
    keep = "print('learning rate', lr); config = {'lr': '0.01', 'name': 'resnet'}"
    assert redact_argv([b"python", b"-c", keep.encode()])[2] == keep


def test_paths_with_random_directory_names_are_kept() -> None:
    """A temporary directory's random name is not a token: the path stays (and a real token
    inside a path still goes)."""
    for path in (
        "/tmp/roar-e2e-abcdefgh/work/tmp8x9k2lq1/repo",
        "/tmp/a8Xk3/Zq9Lm/Pw4Rt/Yv1Nb/Mc0Hs/data.csv",
        "/home/ana/.cache/uv/archive-v0/Kq3xZ9bLmP2wR7tY/lib",
    ):
        assert redact_text(path) == path
        assert redact_argv([b"cp", path.encode(), b"/tmp/x"])[1] == path
    token = "q8Zk3Jd9fLq2Xz7Pw4Rt6Yv1Nb5Mc0Hs8Ga3Ke2Ui"
    assert redact_text(f"/srv/keys/{token}/x") == f"/srv/keys/{REDACTED}/x"


def test_values_declared_secret_are_redacted_wherever_they_appear() -> None:
    known = {"DATA_DIR": "/data/shared-volume", "SHORT": "abc"}
    env = redact_env(
        [b"DATA_DIR=/data/shared-volume", b"OTHER=/data/shared-volume/x", b"SHORT=abc", b"A=abc"],
        known,
    )
    assert env == {"DATA_DIR": REDACTED, "OTHER": f"{REDACTED}/x", "SHORT": REDACTED, "A": "abc"}
    argv = redact_argv([b"ls", b"/data/shared-volume/raw", b"abc"], list(known.values()))
    assert argv == ["ls", f"{REDACTED}/raw", "abc"]  # too short to chase in other text


def test_redact_run_leaves_no_secret_anywhere_in_a_record() -> None:
    """The whole record (what the spool writes): the command, its env, every process's argv."""
    from roar.protocol import ExecImage, FileFact, Proc, RunFinish, RunStart

    secrets = ["hunter2", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "plain-env", "pw-child"]
    start = RunStart(
        argv=[b"sshpass", b"-p", b"hunter2", b"python", b"t.py"],
        cwd=b"/work",
        env=[b"HF_TOKEN=plain-env", b"HOME=/home/ana"],
        started=1.0,
    )
    child = ExecImage(
        path=b"/usr/bin/curl", exe=b"/usr/bin/curl", argv=[b"curl", b"-u", b"a:pw-child"]
    )
    tokened = ExecImage(
        path=b"/bin/git", exe=b"/bin/git", argv=[b"git", b"push", secrets[1].encode()]
    )
    finish = RunFinish(
        job_id="0123456789ab",
        start=start,
        ended=2.0,
        wait_status=0,
        procs=[Proc(pid=2, ppid=1, start=1.0, execs=[child, tokened])],
        files=[FileFact(path=b"/work/out.txt", written=True)],
    )
    out = redact_run(finish)
    encoded = msgspec.msgpack.encode(out)
    for secret in secrets:
        assert secret.encode() not in encoded, secret
    assert out.start.argv[:3] == [b"sshpass", b"-p", REDACTED.encode()]
    assert b"HOME=/home/ana" in out.start.env and out.files == finish.files
    assert out.procs[0].execs[0].argv == [b"curl", b"-u", f"a:{REDACTED}".encode()]


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
