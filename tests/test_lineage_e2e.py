"""Issue 4 end to end: sessions, steps, the DAG, lineage, staleness, re-runs, pop, diff, export,
env, labels, collections, on real pipelines run under the real tracer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conftest import Roar, git_repo

PY = sys.executable

# One generic step: reads every --in file, writes every --out file with content that depends on
# the inputs' bytes and on all other arguments (so an argument change shows in the outputs).
STEP = """
import hashlib, sys
args = sys.argv[1:]
ins = [args[i + 1] for i, a in enumerate(args) if a == "--in"]
outs = [args[i + 1] for i, a in enumerate(args) if a == "--out"]
rest = [a for i, a in enumerate(args) if a not in ("--in", "--out")
        and (i == 0 or args[i - 1] not in ("--in", "--out"))]
h = hashlib.sha256(" ".join(rest).encode())
for name in ins:
    h.update(open(name, "rb").read())
for name in outs:
    open(name, "w").write(h.hexdigest() + "\\n")
"""


def project(roar: Roar, extra: dict[str, str] | None = None) -> Path:
    files = {"step.py": STEP, "raw.csv": "a,b\n1,2\n3,4\n", **(extra or {})}
    return git_repo(roar, roar.work / "proj", files)


def step(roar: Roar, repo: Path, *args: str) -> dict:
    return roar.run(PY, "step.py", *args, cwd=repo)


def dag(roar: Roar, repo: Path) -> dict[str, dict]:
    return {s["ref"]: s for s in roar.json("dag", cwd=repo)["steps"]}


def test_linear_pipeline_steps_and_lineage(roar: Roar) -> None:
    repo = project(roar)
    a = step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    b = step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    c = step(roar, repo, "--in", "model.bin", "--out", "report.txt")
    assert [a["job"]["step"], b["job"]["step"], c["job"]["step"]] == ["@1", "@2", "@3"]
    steps = dag(roar, repo)
    assert list(steps) == ["@1", "@2", "@3"]
    assert steps["@2"]["depends_on"] == ["@1"] and steps["@3"]["depends_on"] == ["@2"]
    # step refs work wherever a target does
    assert roar.json("show", "@2", cwd=repo)["job"]["job"]["id"] == b["job"]["id"]
    tree = roar.json("lineage", "report.txt", cwd=repo)["root"]
    assert tree["kind"] == "artifact" and tree["children"][0]["id"] == c["job"]["id"]
    chain = []
    node = tree
    while node["children"]:
        node = next(
            (
                n
                for n in node["children"]
                if n["kind"] == "job" or n["label"].endswith(("clean.csv", "model.bin", "raw.csv"))
            ),
            node["children"][0],
        )
        chain.append(os.path.basename(node["label"]) if node["kind"] == "artifact" else node["id"])
    assert chain[:5] == [c["job"]["id"], "model.bin", b["job"]["id"], "clean.csv", a["job"]["id"]]
    down = roar.json("lineage", "raw.csv", "--downstream", "--depth", "1", cwd=repo)["root"]
    assert [n["id"] for n in down["children"]] == [a["job"]["id"]]
    assert down["children"][0]["children"][0]["truncated"]  # depth 1 stops below @1's outputs
    roots = roar.json("inputs", "report.txt", "--unsourced", cwd=repo)
    assert {os.path.basename(r["path"]) for r in roots} == {"raw.csv", "step.py"}
    text = roar("dag", "--artifacts", cwd=repo).stdout
    assert "@3" in text and "report.txt" in text
    dot = roar("dag", "--format", "dot", cwd=repo).stdout
    assert dot.startswith("digraph") and '"@1" -> "@2"' in dot
    mermaid = roar("dag", "--format", "mermaid", cwd=repo).stdout
    assert mermaid.startswith("graph LR") and "s1 --> s2" in mermaid


def test_diamond_and_fan_in(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "left.csv", "--side", "left")
    step(roar, repo, "--in", "raw.csv", "--out", "right.csv", "--side", "right")
    step(roar, repo, "--in", "left.csv", "--in", "right.csv", "--out", "merged.csv")
    for i in range(4):  # four feature extractors feeding one table
        step(roar, repo, "--in", "merged.csv", "--out", f"feat{i}.csv", "--feature", str(i))
    step(roar, repo, *[x for i in range(4) for x in ("--in", f"feat{i}.csv")], "--out", "t.csv")
    steps = dag(roar, repo)
    assert steps["@3"]["depends_on"] == ["@1", "@2"]  # the diamond merges
    assert sorted(steps["@8"]["depends_on"]) == ["@4", "@5", "@6", "@7"]  # fan-in
    up = roar.json("inputs", "t.csv", cwd=repo)
    assert {os.path.basename(r["path"]) for r in up} == {"raw.csv", "step.py"}
    tree = roar.json("lineage", "t.csv", cwd=repo)["root"]
    job = tree["children"][0]
    assert sorted(os.path.basename(n["label"]) for n in job["children"]) == [
        "feat0.csv",
        "feat1.csv",
        "feat2.csv",
        "feat3.csv",
        "step.py",
    ]


def test_ensemble_of_three_models(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "train.csv")
    for seed in range(3):
        step(roar, repo, "--in", "train.csv", "--out", f"m{seed}.bin", "--seed", str(seed))
    step(roar, repo, "--in", "m0.bin", "--in", "m1.bin", "--in", "m2.bin", "--out", "ens.bin")
    steps = dag(roar, repo)
    assert [steps[f"@{i}"]["depends_on"] for i in (2, 3, 4)] == [["@1"]] * 3
    assert steps["@5"]["depends_on"] == ["@2", "@3", "@4"]
    hashes = {steps[f"@{i}"]["outputs"][0]["hash"] for i in (2, 3, 4)}
    assert len(hashes) == 3  # three different models


def test_rerunning_upstream_makes_downstream_stale(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    step(roar, repo, "--in", "model.bin", "--out", "report.txt")
    assert not any(s["stale_reason"] for s in dag(roar, repo).values())
    # re-running @1 on unchanged data changes nothing: nothing is stale
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    assert not any(s["stale_reason"] for s in dag(roar, repo).values())
    (repo / "raw.csv").write_text("a,b\n1,2\n3,5\n")
    roar.chown(repo / "raw.csv")
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    steps = dag(roar, repo)
    assert steps["@1"]["stale_reason"] is None and len(steps["@1"]["superseded"]) == 2
    assert "@1 re-ran" in steps["@2"]["stale_reason"]
    assert steps["@3"]["stale_reason"] == "upstream @2 is stale"
    status = roar.json("status", cwd=repo)
    assert [s.split(":")[0] for s in status["stale"]] == ["@2", "@3"]
    log = roar.json("log", cwd=repo)
    assert [j["superseded"] for j in log if j["step"] == "@1"] == [False, True, True]
    assert {j["step"]: j["stale"] for j in log if not j["superseded"]} == {
        "@1": False,
        "@2": True,
        "@3": True,
    }
    assert roar.json("show", "@3", cwd=repo)["job"]["job"]["stale"] is True
    # a file changed outside roar
    (repo / "report.txt").write_text("edited by hand\n")
    roar.chown(repo / "report.txt")
    status = roar.json("status", cwd=repo)
    assert any(m.endswith("report.txt: modified outside roar") for m in status["modified"])


def test_run_step_with_overrides_and_hyperparameter_variants(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    first = step(
        roar, repo, "--in", "clean.csv", "--out", "model.bin", "--lr", "0.01", "--epochs=3"
    )
    outputs = set()
    for lr in ("0.1", "0.5"):
        roar("run", "@2", "--lr", lr, cwd=repo)
        job = roar.last_job(repo)
        assert job["job"]["step"] == "@2"
        assert job["argv"][-3:] == ["--lr", lr, "--epochs=3"]
        outputs.add(job["outputs"][0]["hash"])
    roar("run", "@2", "--epochs=7", cwd=repo)
    assert roar.last_job(repo)["argv"][-1] == "--epochs=7"
    outputs.add(first["outputs"][0]["hash"])
    assert len(outputs) == 3  # each variant made a different model
    steps = dag(roar, repo)
    assert len(steps["@2"]["superseded"]) == 3
    bad = roar("run", "@2", "--momentum", "0.9", cwd=repo, check=False)
    assert bad.returncode == 2 and "--momentum matches no argument of @2" in bad.stderr
    missing = roar("run", "@9", cwd=repo, check=False)
    assert missing.returncode == 1 and "no step @9" in missing.stderr


def test_pop_removes_the_record_and_only_unused_outputs(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    popped = roar.json("pop", "-y", cwd=repo)
    assert popped["removed"] and popped["deleted"] == []
    assert (repo / "model.bin").exists()  # the record only
    assert list(dag(roar, repo)) == ["@1"]
    (repo / "model.bin").unlink()  # so that the next job creates it (pop deletes only that)
    step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    popped = roar.json("pop", "--delete-outputs", "-y", cwd=repo)
    assert [os.path.basename(p) for p in popped["deleted"]] == ["model.bin"]
    assert not (repo / "model.bin").exists()
    # clean.csv was read by a job that is still recorded? No: only by the popped ones. Make one.
    step(roar, repo, "--in", "clean.csv", "--out", "other.bin")
    roar.json("pop", "-y", cwd=repo)
    popped = roar.json("pop", "--delete-outputs", "-y", cwd=repo)  # @1 now; clean.csv unused
    assert [os.path.basename(p) for p in popped["deleted"]] == ["clean.csv"]
    assert (repo / "raw.csv").exists()  # an input is never deleted


def test_pop_keeps_outputs_another_job_read(roar: Roar) -> None:
    repo = project(roar)
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    roar("reset", cwd=repo)  # the popped job must be the newest of the session: new session
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    popped = roar.json("pop", "--delete-outputs", "-y", cwd=repo)
    assert popped["deleted"] == [] and popped["kept"]
    assert (repo / "clean.csv").exists()


def test_diff_of_two_trainings(roar: Roar) -> None:
    repo = project(roar, {"raw2.csv": "a,b\n1,2\n3,9\n"})
    step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    base = step(roar, repo, "--in", "clean.csv", "--out", "m1.bin", "--lr", "0.1")
    arg = step(roar, repo, "--in", "clean.csv", "--out", "m2.bin", "--lr", "0.2")
    d = roar.json("diff", "m1.bin", "m2.bin", cwd=repo)
    fields = [e["field"] for e in d["entries"]]
    assert fields == ["command"], d
    assert "0.1 -> 0.2" in d["entries"][0]["note"]
    # only one input row differs: the first divergence is named upstream
    step(roar, repo, "--in", "raw2.csv", "--out", "clean2.csv")
    row = step(roar, repo, "--in", "clean2.csv", "--out", "m3.bin", "--lr", "0.1")
    d = roar.json("diff", base["job"]["id"], row["job"]["id"], cwd=repo)
    fields = {e["field"] for e in d["entries"]}
    assert "code" not in fields and "packages" not in fields
    # same code only when it is: the commit and dirty files are equal for all these jobs
    same = roar.json("diff", base["job"]["id"], base["job"]["id"], cwd=repo)
    assert same["same"] is True
    assert arg["git"]["commit"] == base["git"]["commit"]
    (repo / "step.py").write_text(STEP + "\n# changed\n")
    roar.chown(repo / "step.py")
    changed = step(roar, repo, "--in", "clean.csv", "--out", "m4.bin", "--lr", "0.1")
    d = roar.json("diff", base["job"]["id"], changed["job"]["id"], cwd=repo)
    code = next(e for e in d["entries"] if e["field"] == "code")
    assert "step.py" in code["b"] and code["a"] != code["b"]


def test_diff_names_first_divergence_for_one_changed_row(roar: Roar) -> None:
    repo = project(roar)
    (repo / "data.csv").write_text("a,b\n1,2\n3,4\n")  # data, not in git
    roar.chown(repo / "data.csv")
    step(roar, repo, "--in", "data.csv", "--out", "clean.csv")
    a = step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    (repo / "data.csv").write_text("a,b\n1,2\n3,5\n")  # one row differs
    roar.chown(repo / "data.csv")
    step(roar, repo, "--in", "data.csv", "--out", "clean.csv")
    b = step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    d = roar.json("diff", a["job"]["id"], b["job"]["id"], cwd=repo)
    assert [e["field"] for e in d["entries"]] == ["input clean.csv"], d
    assert (
        d["entries"][0]["note"] == "first divergence: data.csv itself (no recorded job made "
        "it differently)"
    )


def test_export_formats(roar: Roar) -> None:
    repo = project(roar)
    a = step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    b = step(roar, repo, "--in", "clean.csv", "--out", "model.bin")
    prov = json.loads(roar("export", "model.bin", "--format", "prov-json", cwd=repo).stdout)
    assert set(prov["activity"]) == {f"job:{a['job']['id']}", f"job:{b['job']['id']}"}
    gen = list(prov["wasGeneratedBy"].values())
    model_hash = b["outputs"][0]["hash"]
    assert {
        "prov:entity": f"artifact:{model_hash}",
        "prov:activity": f"job:{b['job']['id']}",
    } in gen
    lines = roar("export", "model.bin", "--format", "openlineage", cwd=repo).stdout.splitlines()
    events = [json.loads(x) for x in lines]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "COMPLETE"]
    assert events[3]["outputs"][0]["name"].endswith("model.bin")
    assert len({e["run"]["runId"] for e in events}) == 2
    assert roar("export", "model.bin", "--format", "dot", cwd=repo).stdout.startswith("digraph")
    mermaid = roar("export", "model.bin", "--format", "mermaid", cwd=repo).stdout.splitlines()
    assert mermaid[0] == "graph LR"
    edges = [x for x in mermaid if "-->" in x]
    assert len(edges) == len(set(edges)) >= 4  # model.bin <- b <- clean.csv <- a <- raw.csv
    assert all(any(f"job {j['job']['id']}" in x for x in mermaid) for j in (a, b))


def test_env_labels_collections_build_reset(roar: Roar) -> None:
    repo = project(roar)
    roar("env", "set", "MY_API_TOKEN=s3cr3t-value-123", cwd=repo)
    roar("env", "set", "DATA_DIR=/data", cwd=repo)
    listed = roar.json("env", "list", cwd=repo)
    assert listed == {"DATA_DIR": "<redacted>", "MY_API_TOKEN": "<redacted>"}
    assert roar("env", "get", "DATA_DIR", cwd=repo).stdout == "/data\n"
    out = roar("run", PY, "-c", "import os; print(os.environ['DATA_DIR'])", cwd=repo).stdout
    assert out == "/data\n"  # injected
    job = roar.last_job(repo)
    assert job["env"]["MY_API_TOKEN"] == "<redacted>"
    roar("env", "unset", "DATA_DIR", cwd=repo)
    assert "DATA_DIR" not in roar.json("env", "list", cwd=repo)
    assert roar("env", "unset", "NOPE", cwd=repo, check=False).returncode == 1
    # labels on a job and an artifact
    built = roar("build", PY, "step.py", "--in", "raw.csv", "--out", "setup.txt", cwd=repo)
    assert "@B1" in built.stderr
    first = step(roar, repo, "--in", "raw.csv", "--out", "clean.csv")
    assert first["job"]["step"] == "@2"  # after the env run (@1); builds are numbered apart
    roar("label", "set", "clean.csv", "stage=candidate", "owner=ana", cwd=repo)
    assert roar.json("label", "get", "clean.csv", cwd=repo)["labels"] == {
        "owner": "ana",
        "stage": "candidate",
    }
    roar("label", "rm", "clean.csv", "owner", cwd=repo)
    assert roar.json("label", "get", "clean.csv", cwd=repo)["labels"] == {"stage": "candidate"}
    roar("label", "set", "@2", "note=first", cwd=repo)
    assert roar.json("label", "get", first["job"]["id"], cwd=repo)["labels"] == {"note": "first"}
    roar("collection", "add", "dataset", "raw.csv", "clean.csv", cwd=repo)
    coll = roar.json("collection", "show", "dataset", cwd=repo)
    assert sorted(os.path.basename(r["path"]) for r in coll["dataset"]) == ["clean.csv", "raw.csv"]
    steps = roar.json("dag", cwd=repo)["steps"]
    assert [s["ref"] for s in steps] == ["@B1", "@1", "@2"]
    roar("reset", cwd=repo)
    assert roar.json("dag", cwd=repo)["steps"] == []
    assert step(roar, repo, "--in", "raw.csv", "--out", "x.csv")["job"]["step"] == "@1"


def test_hygiene_committed_code_only_refuses_dirty_runs(roar: Roar) -> None:
    repo = project(roar)
    roar("init", cwd=repo)
    config = repo / ".roar/config.toml"
    config.write_text("[hygiene]\ncommitted_code_only = true\n")
    roar.chown(config)
    assert roar.exec(["git", "status", "--porcelain"], cwd=repo).stdout == ""  # init: clean
    ok = roar("run", "true", cwd=repo)
    assert ok.returncode == 0
    (repo / "step.py").write_text(STEP + "# dirty\n")
    roar.chown(repo / "step.py")
    refused = roar("run", "touch", "should-not-exist", cwd=repo, check=False)
    assert refused.returncode == 1 and "committed_code_only" in refused.stderr
    assert not (repo / "should-not-exist").exists()


def test_completion_scripts(roar: Roar) -> None:
    for shell in ("bash", "zsh", "fish"):
        out = roar("completion", shell).stdout
        assert "_ROARCTL_COMPLETE" in out


def test_config_set_get_list_and_project_filters_apply(roar: Roar) -> None:
    repo = project(roar)
    (repo / "scratch").mkdir()
    (repo / "scratch/tmp.bin").write_text("x")
    roar.chown(repo)
    roar("config", "set", "filters.exclude", f"{repo}/scratch/*", cwd=repo)
    assert roar.json("config", "get", "filters.exclude", cwd=repo) == [f"{repo}/scratch/*"]
    assert ".roar" not in roar.exec(["git", "status", "--porcelain"], cwd=repo).stdout
    job = roar.run("cat", "scratch/tmp.bin", "raw.csv", cwd=repo)
    assert [os.path.basename(i["path"]) for i in job["inputs"]] == ["raw.csv"]
    assert job["filtered"]["by_rule"]["config"] == 1
    roar("config", "set", "--user", "log.level", "debug", cwd=repo)
    rows = {r["key"]: r for r in roar.json("config", "list", cwd=repo)}
    assert rows["log.level"]["value"] == "debug"
    assert rows["log.level"]["source"].endswith(".config/roar/config.toml")
    assert rows["filters.exclude"]["source"].endswith(".roar/config.toml")
    bad = roar("config", "set", "hygiene.committed_code_only", "maybe", cwd=repo, check=False)
    assert bad.returncode == 2 and "true or false" in bad.stderr
    unknown = roar("config", "set", "nope.key", "1", cwd=repo, check=False)
    assert unknown.returncode == 2


def test_experiment_tracker_runs_are_recorded(roar: Roar) -> None:
    script = (
        "import os\n"
        "os.makedirs('tb/train', exist_ok=True)\n"
        "open('tb/train/events.out.tfevents.1700000000.host.1.0', 'wb').write(b'x')\n"
        "d = 'wandb/run-20261124_101500-abc123xy/files'\n"
        "os.makedirs(d, exist_ok=True)\n"
        "open(d + '/wandb-metadata.json', 'w').write('{}')\n"
        "os.makedirs('runs/exp1', exist_ok=True)\n"  # not TensorBoard: no event files
        "open('runs/exp1/metrics.csv', 'w').write('a')\n"
    )
    run_id = "0123456789abcdef0123456789abcdef"
    job = roar.run(
        PY,
        "-c",
        script,
        env={"WANDB_ENTITY": "ana", "WANDB_PROJECT": "churn", "MLFLOW_RUN_ID": run_id},
    )
    runs = {t["tool"]: t for t in job["trackers"]}
    assert set(runs) == {"tensorboard", "wandb", "mlflow"}
    assert runs["wandb"]["run_id"] == "abc123xy"
    assert runs["wandb"]["url"] == "https://wandb.ai/ana/churn/runs/abc123xy"
    assert runs["tensorboard"]["url"] == str(roar.work / "tb/train")
    assert runs["mlflow"]["run_id"] == run_id and runs["mlflow"]["source"] == "env MLFLOW_RUN_ID"
    assert job["env"]["MLFLOW_RUN_ID"] == run_id  # a run id is an identifier, not a secret


def test_pop_never_deletes_files_the_job_only_modified(roar: Roar) -> None:
    repo = project(roar, {"notes.txt": "mine\n", "code.py": "my = 1\n"})
    roar.run("sh", "-c", "echo appended >> notes.txt; sed -i s/my/our/ code.py", cwd=repo)
    popped = roar.json("pop", "--delete-outputs", "-y", cwd=repo)
    assert popped["removed"] and popped["deleted"] == []
    assert sorted(os.path.basename(p) for p in popped["kept"]) == ["code.py", "notes.txt"]
    assert (repo / "notes.txt").read_text() == "mine\nappended\n"
    assert (repo / "code.py").read_text() == "our = 1\n"


def test_concurrent_runs_get_distinct_steps_in_one_session(roar: Roar) -> None:
    repo = project(roar)
    procs = [
        roar.exec_async(["sh", "-c", f"echo {i} > out{i}.txt"], cwd=repo) for i in range(6)
    ]  # started together, with no daemon running yet: autostart races too
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    steps = roar.json("dag", cwd=repo)["steps"]
    assert sorted(s["ref"] for s in steps) == [f"@{i}" for i in range(1, 7)]
    assert not any(s["superseded"] for s in steps)
    assert len({j["session"] for j in roar.json("log", cwd=repo)}) == 1


def test_pop_refuses_when_the_newest_job_changed(roar: Roar) -> None:
    import socket
    import struct

    from roar import protocol as p

    repo = project(roar)
    first = step(roar, repo, "--in", "raw.csv", "--out", "a.csv")
    step(roar, repo, "--in", "a.csv", "--out", "b.csv")  # ran after the user's preview of @1
    if roar.user is not None:
        return  # the raw-socket part needs to be the daemon's user (root here)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(roar.socket))

    def call(msg: object) -> object:
        s.sendall(p.frame(msg))  # type: ignore[arg-type]
        (n,) = struct.unpack(">I", s.recv(4))
        buf = b""
        while len(buf) < n:
            buf += s.recv(n - len(buf))
        return p.decode_reply(buf)

    assert isinstance(call(p.Hello(protocol=p.PROTOCOL_VERSION, client="t")), p.Welcome)
    reply = call(p.Pop(cwd=os.fsencode(repo), dry_run=False, job_id=first["job"]["id"]))
    assert isinstance(reply, p.Error) and "no longer the session's newest" in reply.message
    s.close()
    assert list(dag(roar, repo)) == ["@1", "@2"]  # nothing was removed
    refused = roar("pop", "--delete-outputs", "--json", cwd=repo, check=False)
    assert refused.returncode == 2 and "-y" in refused.stderr


def test_rerun_step_in_a_non_utf8_directory(roar: Roar) -> None:
    odd = os.fsencode(roar.work) + b"/dir-\xff"
    os.mkdir(odd)
    roar.chown(Path(os.fsdecode(odd)))
    roar.run("sh", "-c", "echo 1 > out.txt", cwd=Path(os.fsdecode(odd)))
    again = roar("run", "@1", cwd=Path(os.fsdecode(odd)))
    assert again.returncode == 0
    job = roar.last_job(Path(os.fsdecode(odd)))
    assert job["job"]["step"] == "@1" and job["outputs"][0]["path"].endswith("out.txt")


def test_a_file_named_with_invalid_utf8_is_found_by_its_path(roar: Roar) -> None:
    repo = project(roar)
    name = os.fsdecode(b"caf\xe9.csv")  # as the shell hands it to roarctl: undecodable bytes
    made = step(roar, repo, "--in", "raw.csv", "--out", name)
    shown = made["outputs"][0]
    assert shown["path"].endswith("caf\\xe9.csv")  # shown escaped, looked up by the bytes
    artifact = roar.json("show", name, cwd=repo)["artifact"]
    assert artifact["hash"] == shown["hash"]
    assert [j["id"] for j in artifact["produced_by"]] == [made["job"]["id"]]
    assert any(p.endswith("caf\\xe9.csv") for p in artifact["paths"])
    tree = roar.json("lineage", name, cwd=repo)["root"]
    assert tree["id"] == shown["hash"] and tree["children"][0]["id"] == made["job"]["id"]
    assert roar.json("inputs", name, cwd=repo)[0]["path"].endswith("raw.csv")
    prov = json.loads(roar("export", name, "--format", "prov-json", cwd=repo).stdout)
    assert set(prov["activity"]) == {f"job:{made['job']['id']}"}
    assert roar.json("diff", name, "@1", cwd=repo)["entries"] == []  # the same job
    roar("label", "set", name, "stage=raw", cwd=repo)
    assert roar.json("label", "get", shown["hash"], cwd=repo)["labels"] == {"stage": "raw"}
    # A path that names nothing is one error line that shows the name escaped.
    missing = roar("show", os.fsdecode(b"gon\xe9.csv"), cwd=repo, check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "gon\\xe9.csv" in missing.stderr.splitlines()[0]
