"""`roarctl reproduce` end to end: pipelines recorded with `roarctl run` in real git repositories
with real virtualenvs, then rebuilt from a hash in a fresh directory by a real roard and the real
tracer, and checked byte for byte; as root and as an ordinary user. Every test also proves the
user's repository unchanged: HEAD, branch, index, working tree, stash and worktrees.

Packages come from a wheel each test builds itself (PIP_FIND_LINKS, PIP_NO_INDEX): no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from conftest import Roar, git_repo

# One generic step: reads every --in file, writes every --out file with content that depends on
# the inputs' bytes and on every other argument; --use MODULE mixes in the module's VERSION,
# --env NAME the variable's value, --time the clock (a non-deterministic step).
STEP = """
import hashlib, importlib, os, sys, time
args = sys.argv[1:]
def values(flag):
    return [args[i + 1] for i, a in enumerate(args) if a == flag]
h = hashlib.sha256(" ".join(a for a in args if not a.startswith("/")).encode())
for name in values("--in"):
    h.update(open(name, "rb").read())
for module in values("--use"):
    h.update(importlib.import_module(module).VERSION.encode())
for name in values("--env"):
    h.update(os.environ[name].encode())
if "--time" in args:
    h.update(str(time.time_ns()).encode())
for name in values("--out"):
    open(name, "w").write(h.hexdigest() + "\\n")
"""

# A PEP 517 build backend in a few lines: the local package `mypkg` needs no setuptools, no
# wheel and no index to be installed with `pip install -e .` (requires = []).
BACKEND = """
import base64, hashlib, os, zipfile
NAME, VERSION = "mypkg", "0.1"
DI = f"{NAME}-{VERSION}.dist-info"

def _wheel(directory, files):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        z.writestr(f"{DI}/RECORD", "\\n".join(record + [f"{DI}/RECORD,,"]) + "\\n")
    return name

def _meta():
    return {
        f"{DI}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n",
        f"{DI}/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {f"{NAME}.pth": os.path.abspath(".") + "\\n", **_meta()})

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    source = open(os.path.join(NAME, "__init__.py")).read()
    return _wheel(wheel_directory, {f"{NAME}/__init__.py": source, **_meta()})
"""

OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of module `name` whose VERSION is `version`, built by hand."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f'VERSION = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = directory / f"{name}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        z.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return path


def venv(roar: Roar, path: Path, with_pip: bool = False, install: list[str] = ()) -> Path:  # type: ignore[assignment]
    """A virtualenv made by the test's user; `install`: requirements from the wheelhouse."""
    args = [sys.executable, "-m", "venv", str(path)]
    roar.exec(args if with_pip else [*args, "--without-pip"])
    if install:
        pip = [sys.executable, "-m", "pip", "--python", str(path / "bin/python"), "install"]
        links = ["--no-index", "--find-links", str(roar.work / "wheels"), "--no-deps", "-q"]
        roar.exec([*pip, *links, *install], env=OFFLINE)
    return path / "bin" / "python"


def project(roar: Roar, files: dict[str, str] | None = None, ignore: str = "") -> Path:
    files = {"step.py": STEP, ".gitignore": "venv/\n" + ignore, **(files or {})}
    return git_repo(roar, roar.work / "proj", files)


def git(roar: Roar, repo: Path, *args: str) -> str:
    # --no-optional-locks: a `git status` of our own must not refresh the index it checks
    return roar.exec(["git", "--no-optional-locks", *args], cwd=repo).stdout


def snapshot(roar: Roar, repo: Path) -> dict[str, Any]:
    """Everything of the user's repository that reproducing must not change."""
    files = {}
    for p in sorted(repo.rglob("*")):
        if p.is_file() and ".git" not in p.relative_to(repo).parts and "venv" not in p.parts:
            files[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {
        "head": git(roar, repo, "rev-parse", "HEAD"),
        "branch": git(roar, repo, "symbolic-ref", "-q", "HEAD"),
        "index": hashlib.sha256((repo / ".git/index").read_bytes()).hexdigest(),
        "status": git(roar, repo, "status", "--porcelain", "-uall"),
        "stash": git(roar, repo, "stash", "list"),
        "worktrees": git(roar, repo, "worktree", "list", "--porcelain"),
        "git entries": sorted(os.listdir(repo / ".git")),
        "files": files,
    }


def run(
    roar: Roar, repo: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """`roarctl run ARGS` in the repository; the job it recorded."""
    roar("run", "--", *args, cwd=cwd or repo, env=env)
    return roar.last_job(cwd or repo)


def reproduce(
    roar: Roar,
    target: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    proc = roar(
        "reproduce",
        target,
        *args,
        cwd=cwd,
        env={**OFFLINE, "PIP_FIND_LINKS": str(roar.work / "wheels"), **(env or {})},
        check=False,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def digest(path: Path) -> str:
    import blake3

    return blake3.blake3(path.read_bytes()).hexdigest()


def assert_same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_linear_pipeline_is_rebuilt_byte_for_byte_in_a_fresh_directory(roar: Roar) -> None:
    wheel(roar.work / "wheels", "tinylib", "0.1")
    wheel(roar.work / "wheels", "tinylib", "0.2")
    roar.chown(roar.work / "wheels")
    repo = project(roar, {"raw.csv": "a,b\n1,2\n3,4\n"})
    py = venv(roar, repo / "venv", install=["tinylib==0.1"])
    run(roar, repo, str(py), "step.py", "--in", "raw.csv", "--out", "clean.csv", "--use", "tinylib")
    run(roar, repo, str(py), "step.py", "--in", "clean.csv", "--out", "model.bin", "--lr", "0.01")
    last = run(roar, repo, str(py), "step.py", "--in", "model.bin", "--out", "report.txt")
    report = digest(repo / "report.txt")
    # the user moves on: a newer tinylib in the venv; the reproduction installs the recorded one
    roar.exec(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(roar.work / "wheels"),
            "tinylib==0.2",
        ],
        env=OFFLINE,
    )
    before = snapshot(roar, repo)

    dry = reproduce(roar, report[:16], "--dry-run", "--into", str(roar.work / "out"), cwd=repo)
    assert "jobs (3), in order:" in dry.stdout and "tinylib==0.1" in dry.stdout
    assert not (roar.work / "out").exists()  # a dry run runs nothing
    plan = json.loads(reproduce(roar, report[:16], "--dry-run", "--json", cwd=repo).stdout)
    assert [j["ref"] for j in plan["jobs"]] == ["@1", "@2", "@3"] and plan["checkout"] == "local"
    assert plan["into"] == str(repo / f"reproduce-{report[:12]}")
    assert {r["path"]: r["source"] for r in plan["roots"]} == {
        "raw.csv": "commit",
        "step.py": "commit",
    }
    # a step, a job id and the session name the same jobs; their outputs are the target
    by_step = json.loads(reproduce(roar, "@3", "--dry-run", "--json", cwd=repo).stdout)
    assert (by_step["kind"], by_step["target"]) == ("job", last["job"]["id"])
    assert [j["id"] for j in by_step["jobs"]] == [j["id"] for j in plan["jobs"]]
    session = json.loads(reproduce(roar, "session", "--dry-run", "--json", cwd=repo).stdout)
    assert session["kind"] == "session" and len(session["jobs"]) == 3
    assert sorted(w["path"] for w in session["wanted"]) == ["clean.csv", "model.bin", "report.txt"]

    # from outside the repository, by path, into the default directory
    proc = reproduce(roar, "proj/report.txt", cwd=roar.work)
    assert proc.stdout.splitlines()[-1] == f"reproduced {report}: identical"
    out = roar.work / f"reproduce-{report[:12]}"
    assert_same_files(repo, out, ["clean.csv", "model.bin", "report.txt"])
    assert "making an environment" in proc.stderr and "tinylib==0.1" not in proc.stderr
    assert snapshot(roar, repo) == before
    # the reproduction is recorded: a new session in the directory, each job linked to its original
    jobs = roar.json("log", cwd=out)
    assert [j["step"] for j in reversed(jobs)] == ["@1", "@2", "@3"]
    assert roar.json("label", "get", jobs[0]["id"], cwd=out)["labels"] == {
        "reproduces": last["job"]["id"]
    }
    envs = list((roar.home / ".local/share/roar/envs").glob("*/.roar-env"))
    assert len(envs) == 1 and json.loads(envs[0].read_text())["requirements"] == ["tinylib==0.1"]

    # again into the same directory: every job is skipped; into another: the environment is reused
    again = reproduce(roar, report, "--into", str(out), cwd=repo)
    assert again.stdout.count(" skipped ") == 3 and again.stdout.endswith(": identical\n")
    other = reproduce(roar, report, "--into", str(roar.work / "second"), "--json", cwd=repo)
    result = json.loads(other.stdout)
    assert result["verdict"] == "identical" and "making an environment" not in other.stderr
    assert [j["verdict"] for j in result["jobs"]] == ["identical"] * 3
    assert snapshot(roar, repo) == before


def test_a_diamond_and_a_fan_in_of_two_sources_from_the_recorded_remote(roar: Roar) -> None:
    repo = project(roar, {"raw.csv": "a,b\n1,2\n", "extra.csv": "c\n5\n"})
    py = venv(roar, repo / "venv")
    step = [str(py), "step.py"]
    run(roar, repo, *step, "--in", "raw.csv", "--out", "left.csv", "--side", "left")
    run(roar, repo, *step, "--in", "raw.csv", "--out", "right.csv", "--side", "right")
    run(roar, repo, *step, "--in", "left.csv", "--in", "right.csv", "--out", "merged.csv")
    run(roar, repo, *step, "--in", "merged.csv", "--in", "extra.csv", "--out", "joined.csv")
    target = digest(repo / "joined.csv")
    plan = json.loads(reproduce(roar, "joined.csv", "--dry-run", "--json", cwd=repo).stdout)
    assert [j["ref"] for j in plan["jobs"]] == ["@1", "@2", "@3", "@4"]
    assert {os.path.basename(r["path"]) for r in plan["roots"]} == {
        "raw.csv",
        "extra.csv",
        "step.py",
    }
    proc = reproduce(roar, "joined.csv", "--into", str(roar.work / "out"), cwd=repo)
    assert proc.stdout.endswith(f"reproduced {target}: identical\n")
    assert_same_files(
        repo, roar.work / "out", ["left.csv", "right.csv", "merged.csv", "joined.csv"]
    )

    # the local repository loses its history: the source is cloned from the recorded remote
    # (reached through a short path: roar redacts long random-looking words such as the mkdtemp
    # name of the test's directory, in remotes too)
    remote = Path(f"/tmp/rr{os.getpid()}{roar.user[0] if roar.user else 0}.git")
    roar.exec(["git", "clone", "-q", "--bare", str(repo), str(roar.work / "origin.git")])
    remote.symlink_to(roar.work / "origin.git")
    if roar.user is not None:
        os.lchown(remote, *roar.user)
    try:
        git(roar, repo, "remote", "add", "origin", str(remote))
        run(roar, repo, *step, "--in", "joined.csv", "--out", "final.csv")  # records the remote
        shutil.rmtree(repo / ".git")
        git(roar, repo, "init", "-q", "-b", "main")
        plan = json.loads(reproduce(roar, "final.csv", "--dry-run", "--json", cwd=repo).stdout)
        assert plan["checkout"] == "remote" and plan["repository"] == str(remote)
        proc = reproduce(roar, "final.csv", "--into", str(roar.work / "from-remote"), cwd=repo)
        assert proc.stdout.endswith(": identical\n"), proc.stdout
        assert_same_files(repo, roar.work / "from-remote", ["joined.csv", "final.csv"])
    finally:
        remote.unlink()


def test_a_hyper_parameter_variant_reproduces_with_the_variants_argument(roar: Roar) -> None:
    repo = project(roar, {"raw.csv": "x\n1\n"})
    py = venv(roar, repo / "venv")
    run(roar, repo, str(py), "step.py", "--in", "raw.csv", "--out", "clean.csv")
    run(roar, repo, str(py), "step.py", "--in", "clean.csv", "--out", "model.bin", "--lr", "0.01")
    run(roar, repo, str(py), "step.py", "--in", "model.bin", "--out", "report.txt")
    original = digest(repo / "report.txt")
    roar("run", "@2", "--lr=0.1", cwd=repo)
    roar("run", "@3", cwd=repo)
    variant = digest(repo / "report.txt")
    assert variant != original
    before = snapshot(roar, repo)
    plan = json.loads(reproduce(roar, variant, "--dry-run", "--json", cwd=repo).stdout)
    assert plan["jobs"][1]["argv"][-2:] == ["--lr", "0.1"]
    proc = reproduce(roar, variant, "--into", str(roar.work / "variant"), cwd=repo)
    assert proc.stdout.endswith(f"reproduced {variant}: identical\n")
    assert_same_files(repo, roar.work / "variant", ["model.bin", "report.txt"])
    # the original report is made by the original jobs, not by the later re-runs of its steps
    plan = json.loads(reproduce(roar, original, "--dry-run", "--json", cwd=repo).stdout)
    assert plan["jobs"][1]["argv"][-2:] == ["--lr", "0.01"]
    proc = reproduce(roar, original, "--into", str(roar.work / "original"), cwd=repo)
    assert proc.stdout.endswith(f"reproduced {original}: identical\n")
    assert digest(roar.work / "original/report.txt") == original
    assert snapshot(roar, repo) == before


def test_a_build_step_runs_first_into_an_environment_of_the_reproductions_own(roar: Roar) -> None:
    repo = project(
        roar,
        {
            "pkg/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
            'backend-path = ["."]\n',
            "pkg/backend.py": BACKEND,
            "pkg/mypkg/__init__.py": 'VERSION = "mine-1"\n',
        },
    )
    py = venv(roar, repo / "venv", with_pip=True)
    env = {"PATH": f"{py.parent}:{roar.env['PATH']}", **OFFLINE}
    roar("build", "pip", "install", "-q", "-e", ".", cwd=repo / "pkg", env=env)
    out = run(roar, repo, "python", "step.py", "--use", "mypkg", "--out", "out.txt", env=env)
    plan = json.loads(reproduce(roar, "out.txt", "--dry-run", "--json", cwd=repo).stdout)
    assert [j["ref"] for j in plan["jobs"]] == ["@B1", "@1"]
    interp = plan["interpreters"][plan["jobs"][1]["interpreters"][0]]
    assert interp["provided"] == ["mypkg"] and interp["build"] is True
    assert sorted(r.split("==")[0] for r in interp["requirements"]) == ["pip", "setuptools"]
    before = snapshot(roar, repo)
    into = roar.work / "out"
    proc = reproduce(roar, "out.txt", "--into", str(into), cwd=repo)
    assert proc.stdout.endswith(f"reproduced {out['outputs'][0]['hash']}: identical\n")
    # the reproduction's mypkg is its own checkout's, in an environment of its own
    link = next(
        (roar.home / ".local/share/roar/envs").glob("*/lib/python*/site-packages/mypkg.pth")
    )
    assert link.read_text().strip() == str(into / "pkg")
    assert snapshot(roar, repo) == before


def test_an_uncommitted_script_a_subdirectory_and_an_input_outside_the_repository(
    roar: Roar,
) -> None:
    repo = project(roar, {"raw.csv": "r\n1\n", "sub/.keep": ""})
    outside = roar.work / "shared" / "lookup.csv"
    outside.parent.mkdir()
    outside.write_text("k,v\n")
    roar.chown(outside.parent)
    py = venv(roar, repo / "venv")
    (repo / "step.py").write_text(STEP.replace("sha256", "sha512"))  # uncommitted, still on disk
    roar.chown(repo / "step.py")
    done = run(
        roar,
        repo,
        str(py),
        "../step.py",
        "--in",
        "../raw.csv",
        "--in",
        "../../shared/lookup.csv",  # relative: the mkdtemp name would be redacted as a token
        "--out",
        "part.csv",
        cwd=repo / "sub",
    )
    target = done["outputs"][0]["hash"]
    plan = json.loads(reproduce(roar, target, "--dry-run", "--json", cwd=repo).stdout)
    assert plan["jobs"][0]["cwd"] == "sub"
    roots = {r["path"]: r for r in plan["roots"]}
    assert roots["step.py"]["source"] == "copy" and roots["step.py"]["origin"] == str(
        repo / "step.py"
    )
    assert roots[str(outside)]["source"] == "in-place"
    assert roots["raw.csv"]["source"] == "commit"
    before = snapshot(roar, repo)
    proc = reproduce(roar, target, "--into", str(roar.work / "out"), cwd=repo)
    assert proc.stdout.endswith(f"reproduced {target}: identical\n")
    assert (roar.work / "out/sub/part.csv").read_bytes() == (repo / "sub/part.csv").read_bytes()
    assert (roar.work / "out/step.py").read_text() == (repo / "step.py").read_text()
    assert snapshot(roar, repo) == before
    # the script is edited again, and the reproduction (which holds a copy) removed: the
    # content the job ran is nowhere on this machine
    shutil.rmtree(roar.work / "out")
    (repo / "step.py").write_text(STEP.replace("sha256", "md5"))
    proc = reproduce(roar, target, "--into", str(roar.work / "never"), cwd=repo, check=False)
    assert proc.returncode == 1 and "nothing was run" in proc.stderr
    assert "step.py (uncommitted)" in proc.stdout and "nowhere on this machine" in proc.stdout
    assert not (roar.work / "never").exists()


def test_a_time_seeded_step_differs_there_with_the_context_diff(roar: Roar) -> None:
    repo = project(roar, {"raw.csv": "t\n1\n"})
    py = venv(roar, repo / "venv")
    run(roar, repo, str(py), "step.py", "--in", "raw.csv", "--out", "a.csv")
    run(roar, repo, str(py), "step.py", "--in", "a.csv", "--out", "b.csv", "--time")
    run(roar, repo, str(py), "step.py", "--in", "b.csv", "--out", "c.csv")
    target = digest(repo / "c.csv")
    before = snapshot(roar, repo)
    proc = reproduce(roar, target, "--into", str(roar.work / "out"), cwd=repo, check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"reproduced {target}: differs"
    assert any(line.startswith("@2 ") and " differs " in line for line in lines)
    assert any(line.startswith("first divergence: @2: b.csv") for line in lines)
    assert any(line.startswith("@3 ") and " not run " in line for line in lines)
    report = json.loads(
        reproduce(
            roar,
            target,
            "--into",
            str(roar.work / "out2"),
            "--keep-going",
            "--json",
            cwd=repo,
            check=False,
        ).stdout
    )
    verdicts = [j["verdict"] for j in report["jobs"]]
    assert verdicts == ["identical", "differs", "differs"] and report["verdict"] == "differs"
    fields = {e["field"] for e in report["jobs"][1]["diff"]}
    assert "command" in fields  # the interpreter: the reproduction's environment
    assert any(f.startswith("input ") for f in {e["field"] for e in report["jobs"][2]["diff"]})
    assert snapshot(roar, repo) == before


def test_a_missing_root_input_and_a_missing_secret_are_reported_before_anything_runs(
    roar: Roar,
) -> None:
    repo = project(roar, ignore="data.csv\n")
    (repo / "data.csv").write_text("secret data\n")
    roar.chown(repo / "data.csv")
    py = venv(roar, repo / "venv")
    env = {"API_TOKEN": "tok-123"}
    run(
        roar,
        repo,
        str(py),
        "step.py",
        "--in",
        "data.csv",
        "--env",
        "API_TOKEN",
        "--out",
        "o.csv",
        env=env,
    )
    target = digest(repo / "o.csv")
    size = (repo / "data.csv").stat().st_size
    keep = roar.work / "backup" / "renamed.bin"
    keep.parent.mkdir()
    shutil.move(repo / "data.csv", keep)
    roar.chown(keep.parent)
    jobs_before = len(roar.json("log", "--all"))
    proc = reproduce(roar, target, "--into", str(roar.work / "out"), cwd=repo, check=False)
    assert proc.returncode == 1 and "nothing was run" in proc.stderr
    data_hash = digest(keep)
    assert (
        f"root input data.csv ({data_hash[:12]}, {size} bytes, seen as {repo / 'data.csv'})"
        in proc.stdout
    )
    assert "API_TOKEN is a secret" in proc.stdout
    assert not (roar.work / "out").exists() and len(roar.json("log", "--all")) == jobs_before
    # the secret from the environment, the data from --inputs (found by its hash, not its name)
    proc = reproduce(
        roar,
        target,
        "--into",
        str(roar.work / "out"),
        "--inputs",
        str(keep.parent),
        cwd=repo,
        env=env,
    )
    assert proc.stdout.endswith(f"reproduced {target}: identical\n")
    # or the secret from the project's `roarctl env`; a wrong one makes it differ
    roar("env", "set", "API_TOKEN=tok-123", cwd=repo)
    proc = reproduce(
        roar, target, "--into", str(roar.work / "out2"), "--inputs", str(keep.parent), cwd=repo
    )
    assert proc.stdout.endswith(": identical\n")
    proc = reproduce(
        roar,
        target,
        "--into",
        str(roar.work / "out3"),
        "--inputs",
        str(keep.parent),
        cwd=repo,
        env={"API_TOKEN": "wrong"},
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout.endswith(": differs\n")


def test_bad_targets_and_directories_get_one_line_errors(roar: Roar) -> None:
    repo = project(roar, {"raw.csv": "x\n"})

    def fails(*args: str, code: int = 1) -> str:
        proc = reproduce(roar, *args, cwd=repo, check=False)
        assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("roar: error: ") and proc.stdout == ""
        return proc.stderr

    assert "nothing matches 'feedfacefeed'" in fails("feedfacefeed")
    assert "no record of the current content" in fails("raw.csv")
    roar("run", "--", "cat", "raw.csv", cwd=repo)  # read, never made by a job
    assert "no recorded job produced raw.csv" in fails("raw.csv")
    assert "names no session" in fails("session:x")
    assert "not a directory" in fails("raw.csv", "--inputs", str(roar.work / "nope"), code=2)


def test_a_directory_that_is_not_a_reproductions_is_never_used(roar: Roar) -> None:
    repo = project(roar, {"raw.csv": "x\n"})
    py = venv(roar, repo / "venv")
    run(roar, repo, str(py), "step.py", "--in", "raw.csv", "--out", "o.csv")
    (repo / "step.py").write_text(STEP + "# work in progress\n")
    roar.chown(repo / "step.py")
    before = snapshot(roar, repo)
    for into in (repo, repo / "raw.csv"):  # the user's own repository; a file
        proc = reproduce(roar, "o.csv", "--into", str(into), cwd=repo, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("roar: error: ")]
        assert len(errors) == 1 and "is not a" in errors[0]
    assert snapshot(roar, repo) == before
