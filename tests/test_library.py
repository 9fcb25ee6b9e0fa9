"""roarctl as a library, as `reproduce` will use it: a Runner runs step after step, each with its
own cwd and environment, in a process that neither changes directory nor prints; and a Client
whose `call` says clearly when roard answers something other than what was asked for."""

from __future__ import annotations

import json
import os
import sys

from conftest import Roar, git_repo

STEPS = """
import json, os, sys
from roarctl.run import Runner

a, b, tools = sys.argv[1:4]
seen = []
runner = Runner(on_warning=lambda text, at_risk: seen.append(text))
here = os.getcwd()
env = {**os.environ, "PATH": tools + ":" + os.environ["PATH"], "STEP_VAR": "one"}
results = [
    runner.run(["prep", "raw.txt", "clean.txt"], cwd=a, env=env),  # found on env's PATH only
    runner.run(["./final.sh"], cwd=b, env={**env, "STEP_VAR": "two"}, kind="build"),
]
assert os.getcwd() == here
print(json.dumps({
    "results": [
        {
            "job_id": r.job_id,
            "exit_code": r.exit_code,
            "record": r.record,
            "row": r.job.id if r.job else None,
            "kind": r.job.kind if r.job else None,
            "warnings": r.warnings,
        }
        for r in results
    ],
    "seen": seen,
}))
"""

SPOOLED = """
import json, sys
from roarctl.run import Runner

r = Runner().run(["sh", "-c", "echo hi > out.txt; exit 5"], cwd=sys.argv[1])
print(json.dumps({"record": r.record, "job": r.job, "exit_code": r.exit_code,
                  "spool": str(r.spool), "job_id": r.job_id}))
"""


def test_runner_runs_steps_in_their_own_cwd_and_env_and_prints_nothing(roar: Roar) -> None:
    repo = git_repo(
        roar,
        roar.work / "proj",
        {
            "a/raw.txt": "raw\n",
            "b/final.sh": "#!/bin/sh\ncat ../a/clean.txt > final.txt\nexit 3\n",
            "tools/prep": '#!/bin/sh\ntr a-z A-Z < "$1" > "$2"\n',
        },
    )
    os.chmod(repo / "b/final.sh", 0o755)
    os.chmod(repo / "tools/prep", 0o755)
    a, b, tools = repo / "a", repo / "b", repo / "tools"
    proc = roar.exec([sys.executable, "-c", STEPS, str(a), str(b), str(tools)], cwd=roar.work)
    assert proc.stderr == ""  # the Runner prints nothing, warnings included; the commands
    # wrote only to files
    out = json.loads(proc.stdout)
    first, second = out["results"]
    assert first["exit_code"] == 0 and second["exit_code"] == 3
    for r in (first, second):
        assert r["record"] == "stored" and r["row"] == r["job_id"]
    # roard's warnings (the chmods left the tree dirty) reach the callback and the results
    assert any("uncommitted changes" in w for w in first["warnings"])
    assert out["seen"] == first["warnings"] + second["warnings"]
    assert (a / "clean.txt").read_text() == "RAW\n"
    assert (b / "final.txt").read_text() == "RAW\n"

    prep = roar.json("show", first["job_id"])["job"]
    assert prep["cwd"] == str(a)
    assert prep["env"]["STEP_VAR"] == "one"
    assert {os.path.basename(i["path"]) for i in prep["inputs"]} >= {"raw.txt", "prep"}
    assert [o["path"] for o in prep["outputs"]] == [str(a / "clean.txt")]
    final = roar.json("show", second["job_id"])["job"]
    assert final["cwd"] == str(b) and final["env"]["STEP_VAR"] == "two"
    assert second["kind"] == "build" and final["job"]["kind"] == "build"
    clean = next(i for i in final["inputs"] if i["path"] == str(a / "clean.txt"))
    assert clean["producer"] == first["job_id"]  # the two steps are linked by the hash


def test_runner_says_where_a_record_went_when_no_roard_can_take_it(roar: Roar) -> None:
    blocker = roar.home / "not-a-dir"
    blocker.write_text("")
    roar.chown(blocker)
    broken = {"XDG_DATA_HOME": str(blocker)}  # roard cannot create its store: it cannot start
    proc = roar.exec([sys.executable, "-c", SPOOLED, str(roar.work)], env=broken)
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert out["record"] == "spooled" and out["job"] is None and out["exit_code"] == 5
    assert out["spool"].endswith(f"{out['job_id']}.msgpack") and os.path.exists(out["spool"])
    assert roar.last_job()["job"]["status"] == "recovered"  # a working roard takes it later


UNEXPECTED = """
from roar.protocol import Ping, StatusReply
from roarctl.client import Client
from roarctl.errors import RoarError

with Client.connect() as c:
    try:
        c.call(Ping(), expect=StatusReply)
    except RoarError as exc:
        print(exc.message)
        print(exc.hint)
"""


def test_a_reply_of_the_wrong_type_is_a_clear_error_even_under_python_O(roar: Roar) -> None:
    proc = roar.exec([sys.executable, "-O", "-c", UNEXPECTED])
    message, hint = proc.stdout.splitlines()
    assert message == "roard answered Ping with Ok, not StatusReply"
    assert "versions may differ" in hint
