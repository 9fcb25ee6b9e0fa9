"""`roarctl reproduce HASH` of a hash only the team registry knows, end to end: a pipeline
recorded by the real tracer in a real git repository with a bare-repository remote, registered to
a real `glaas serve`; then a teammate's roar (another home, another roard, an empty store) plans
it from the registry's ancestry, clones the recorded remote (the original repository is gone),
takes the uncommitted input from --inputs by its hash, runs it and finds it identical. As root
and as an ordinary user (tests/conftest.py's `roar` fixture)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from conftest import Roar, git_repo
from registry_support import hexdigest

# the registry's client-side fixtures: a `glaas serve` on SQLite, users with keys and agents
from test_registry_client import Glaas, People, _one_line_error, glaas, people  # noqa: F401

pytest_plugins = ["registry_support"]


def _digest(path: Path) -> str:
    import blake3

    return blake3.blake3(path.read_bytes()).hexdigest()


def _reproduce(roar: Roar, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return roar("reproduce", *args, cwd=cwd, check=False, timeout=300)


def test_a_hash_only_the_registry_knows_is_rebuilt_from_its_lineage_there(
    roar: Roar,
    people: People,  # noqa: F811
    glaas: Glaas,  # noqa: F811
) -> None:
    alice = people.join(roar, glaas, "alice")
    bob_home = people.home()
    bob = people.join(bob_home, glaas, "bob")
    team = f"ml-{uuid.uuid4().hex[:6]}"
    glaas.admin("team", "add", team, alice, bob)

    # alice's pipeline: a committed file, an uncommitted input, three steps; a bare remote
    # (reached by a short path: roar redacts long random-looking words such as the test's
    # mkdtemp directory, in remotes too)
    repo = git_repo(roar, roar.work / "proj", {"prefix.txt": "rows:\n"})
    remote = Path(f"/tmp/rg{os.getpid()}{roar.user[0] if roar.user else 0}.git")
    roar.exec(["git", "clone", "-q", "--bare", str(repo), str(roar.work / "origin.git")])
    remote.symlink_to(roar.work / "origin.git")
    if roar.user is not None:
        os.lchown(remote, *roar.user)
    try:
        roar.exec(["git", "remote", "add", "origin", str(remote)], cwd=repo)
        (repo / "data.csv").write_text(f"b,{uuid.uuid4().hex}\na,1\nc,3\n")
        roar.chown(repo)
        roar("run", "--", "sh", "-c", "sort data.csv > clean.csv", cwd=repo)
        roar("run", "--", "sh", "-c", "cat prefix.txt clean.csv | tr a-z A-Z > up.csv", cwd=repo)
        roar("run", "--", "sh", "-c", "cat clean.csv up.csv > report.txt", cwd=repo)
        report = _digest(repo / "report.txt")
        roar("register", report, "--visibility", "team", cwd=repo)
        roar("run", "--", "sh", "-c", "echo mine > private.txt", cwd=repo)
        private = _digest(repo / "private.txt")
        roar("register", private, "--visibility", "private", cwd=repo)
        # the original repository is gone: bob has only the registry, the remote and the data
        made = {n: (repo / n).read_bytes() for n in ("clean.csv", "up.csv", "report.txt")}
        inputs = bob_home.work / "datasets"
        inputs.mkdir()
        shutil.copy(repo / "data.csv", inputs / "renamed.csv")
        bob_home.chown(inputs)
        shutil.rmtree(repo)

        # a job of the registry plans too (its outputs the target); a session is refused in
        # one line that says what to give
        shown = bob_home.json("show", report, "--remote")["artifact"]
        job_id = shown["produced_by"][0]["id"]
        proc = _reproduce(bob_home, job_id[:12], "--dry-run", "--json", "--inputs", str(inputs))
        plan = json.loads(proc.stdout)
        assert (plan["kind"], plan["target"], plan["registry"]) == ("job", job_id, glaas.url)
        assert [j["ref"] for j in plan["jobs"]] == ["@1", "@2", "@3"] and not plan["problems"]
        session = bob_home.json("show", job_id, "--remote")["registry"]["session"]
        proc = _reproduce(bob_home, session[:12], "--dry-run", cwd=bob_home.work)
        _one_line_error(proc, "is a session in the registry", "roarctl dag")

        # the plan says where its lineage came from; without the data it is a problem
        proc = _reproduce(bob_home, report[:16], "--dry-run", "--json", cwd=bob_home.work)
        assert proc.returncode == 1, proc.stderr
        plan = json.loads(proc.stdout)
        assert plan["registry"] == glaas.url and plan["target"] == report
        assert plan["checkout"] == "remote" and plan["repository"] == str(remote)
        assert [j["ref"] for j in plan["jobs"]] == ["@1", "@2", "@3"]
        assert [p for p in plan["problems"] if "data.csv" in p and "--inputs" in p]
        proc = _reproduce(
            bob_home, report, "--dry-run", "--json", "--inputs", str(inputs), cwd=bob_home.work
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        plan = json.loads(proc.stdout)
        assert plan["problems"] == [] and plan["registry"] == glaas.url
        sources = {r["path"]: r["source"] for r in plan["roots"]}
        assert sources["data.csv"] == "copy" and sources["prefix.txt"] == "commit"
        text = _reproduce(bob_home, report, "--dry-run", "--inputs", str(inputs)).stdout
        assert f"registry: {glaas.url}" in text
        assert f"note: {repo} is not on this machine: cloning {remote}" in text

        # the run: cloned from the remote, every output byte for byte as alice made it
        out = bob_home.work / "out"
        proc = _reproduce(
            bob_home, report[:12], "--inputs", str(inputs), "--into", str(out), cwd=bob_home.work
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-1] == f"reproduced {report}: identical"
        assert f"roar: cloning {remote} into {out}" in proc.stderr
        assert {n: (out / n).read_bytes() for n in made} == made
        # the reproduction is bob's own record now: a local job remade it
        assert bob_home.json("show", report)["artifact"]["hash"] == report
    finally:
        remote.unlink()

    # a record private to alice reads as unknown to bob, as a hash nobody has does: one line
    for hidden in (private, hexdigest()):
        proc = _reproduce(bob_home, hidden, "--dry-run", cwd=bob_home.work)
        _one_line_error(proc, "nothing matches", "nor in the registry")
