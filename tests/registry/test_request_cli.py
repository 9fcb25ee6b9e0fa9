"""An agent's whole flow with `roarctl request`, end to end: a real `glaas serve` (SQLite and
PostgreSQL), an agent account and a human reviewer, each with a key made by ssh-keygen in their
own ssh-agent; the agent files from JSON, its `roarctl run --request` is refused until a human
approves, it claims, runs under the real tracer (the job records the request), registers, and
completes; a run whose inputs lack the approved base model is flagged. Its budget (edited to
0) is overspent by the runs' CPU at the registry's price: `show` says so, and the compute report
by request has the same sum. As root and as an ordinary user (the `roar` fixture)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Roar, git_repo
from test_registry_client import Glaas, People, _one_line_error, any_glaas, people

pytest_plugins = ["registry_support"]
__all__ = ["any_glaas", "people"]  # the fixtures, shared with test_registry_client


def _join(people: People, roar: Roar, glaas: Glaas, name: str, *kind: str) -> str:
    user = f"{name}-{uuid.uuid4().hex[:6]}"
    key = people.key(roar, "id_ed25519")
    people.agent(roar, key)
    glaas.admin("user", "add", user, *kind, "--key", Path(f"{key}.pub").read_text().strip())
    roar("config", "set", "registry.url", glaas.url)
    roar("auth", "login")
    return user


def _request(roar: Roar, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(roar("request", *args, "--json", cwd=cwd).stdout)
    return out


def test_an_agent_files_waits_claims_runs_and_completes(
    roar: Roar, people: People, any_glaas: Glaas
) -> None:
    bot = _join(people, roar, any_glaas, "bot", "--agent")
    any_glaas.admin("price", "set", "cpu", "3600/h")  # one per CPU-second: cost = CPU-seconds
    chris = people.home()
    reviewer = _join(people, chris, any_glaas, "chris")
    repo = git_repo(roar, roar.work / f"proj-{uuid.uuid4().hex[:6]}", {"prep.sh": "true\n"})
    roar("run", "--", "sh", "-c", "echo rows > data.csv; echo weights > base.pt", cwd=repo)
    roar("register", "data.csv", "base.pt", "--visibility", "public", cwd=repo)
    data = roar.json("show", "data.csv", cwd=repo)["artifact"]["hash"]
    model = roar.json("show", "base.pt", cwd=repo)["artifact"]["hash"]
    spec = {
        "dataset": data[:12],
        "base_model": model,
        "compute": "8xH100",
        "hours": 3.2,
        "budget": 984,
        "reviewer": reviewer,
        "rationale": "fine-tune on the new rows",
    }
    roar.sh(f"cat > spec.json <<'EOF'\n{json.dumps(spec)}\nEOF", cwd=repo)
    filed = _request(roar, "new", "--from", "spec.json", cwd=repo)
    rid = filed["id"]
    assert filed["state"] == "pending" and filed["spec"]["dataset"] == data
    assert filed["requester"] == bot and filed["requester_agent"] is True

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        return roar(
            *args,
            "--",
            "sh",
            "-c",
            "cat data.csv base.pt > model.out",
            cwd=repo,
            check=False,
            env=env,
        )

    jobs_before = len(roar.json("log", "--all", cwd=repo))
    # not approved yet: the command never starts, nothing is recorded
    refused = run("run", "--request", rid)
    _one_line_error(refused, f"{rid} is pending")
    assert len(roar.json("log", "--all", cwd=repo)) == jobs_before
    assert not (repo / "model.out").exists()
    # the agent cannot approve (its own, and an agent's); the reviewer can
    _one_line_error(roar("request", "approve", rid, check=False), "own request")
    # the agent edits it: a new revision; an approval of the one chris read is refused
    edited = _request(roar, "edit", rid, "--hours", "4", "--budget", "0")
    assert edited["revision"] == 2 and edited["spec"]["hours"] == 4
    assert (edited["spent"], edited["over_budget"]) == (0.0, False)
    stale = chris("request", "approve", rid, "--spec", filed["spec_hash"], check=False)
    _one_line_error(stale, "changed since you read it")
    # approving "whatever it is now" is refused once it was edited: chris names what he read
    _one_line_error(chris("request", "approve", rid, check=False), "say which spec you reviewed")
    approved = _request(chris, "approve", rid, "--spec", edited["spec_hash"][:12], "-m", "go")
    assert approved["state"] == "approved"
    # a teammate's approval: the agent claims it, then runs for it (ROAR_REQUEST)
    assert _request(roar, "claim", rid)["claimed_by"] == bot
    _one_line_error(chris("request", "claim", rid, check=False), "claimed")
    ran = run("run", env={"ROAR_REQUEST": rid})
    assert ran.returncode == 0, ran.stderr
    job = roar.last_job(repo)
    assert job["request"] == rid
    # a second run for it that does not read the base model is flagged at the registry
    roar("run", "--request", rid, "--", "sh", "-c", "wc -c < data.csv > small.out", cwd=repo)
    second = roar.last_job(repo)
    roar("register", "model.out", "small.out", cwd=repo)
    shown = _request(roar, "show", rid)
    flags = sorted(tuple(r["missing"]) for r in shown["runs"])
    assert flags == [(), (model,)], shown["runs"]
    # what they cost (their CPU-seconds at 3600/h) is over the budget of 0
    cpu = job["usage"]["cpu_seconds"] + second["usage"]["cpu_seconds"]
    assert cpu > 0 and shown["spent"] == pytest.approx(cpu) and shown["over_budget"] is True
    assert [e["action"] for e in shown["events"]].count("over_budget") == 1
    text = roar("request", "show", rid).stdout
    assert f"spent:      {cpu:.2f} of 0 (its runs, at current prices)  OVER BUDGET" in text
    report = roar.json("compute", "report", "--by", "request", "--since", "1d")
    [row] = [r for r in report["rows"] if r["key"] == rid]
    assert row["jobs"] == 2 and row["cost"] == pytest.approx(cpu)
    table = roar("compute", "report", "--by", "request", "--since", "1d").stdout
    assert table.startswith("compute by request, last 1d")
    assert any(line.split()[:2] == [rid, "2"] for line in table.splitlines())
    done = _request(roar, "complete", rid, "-m", "loss 0.41")
    assert done["state"] == "completed"
    text = roar("request", "show", rid).stdout
    assert "FLAG: inputs lack" in text and "completed" in text
    _one_line_error(run("run", "--request", rid), f"{rid} is completed")
    listed = _request(roar, "list", "--state", "completed")
    assert rid in [r["id"] for r in listed["requests"]]
    _one_line_error(roar("request", "new", "--from", "nope.json", check=False, cwd=repo), "nope")
    _one_line_error(roar("request", "show", "R-x", check=False), "not a request id")


def test_a_budget_or_hours_not_accepted_is_said_in_one_line(roar: Roar) -> None:
    """`--budget inf` passed float() and went to the registry as null (JSON has no inf), to come
    back as a schema error; nan and negatives read `Expected float >= 0.0 - at $.budget`. Each is
    now refused before anything is sent, in one line that says what is accepted."""
    roar("config", "set", "registry.url", "http://127.0.0.1:9")  # nothing there: never reached
    spec = ["--dataset", "3f2a9c", "--base-model", "81be07", "--compute", "8xH100"]
    spec += ["--reviewer", "chris"]
    for budget in ("inf", "nan", "-1", "-inf", "1e999", "lots", ""):
        proc = roar("request", "new", *spec, "--hours", "3", f"--budget={budget}", check=False)
        assert proc.returncode == 2
        _one_line_error(proc, f"--budget {budget} is not accepted", "a finite number, 0 or more")
    for hours in ("inf", "nan", "-0.5", "100001"):
        proc = roar("request", "new", *spec, "--budget", "9", f"--hours={hours}", check=False)
        _one_line_error(proc, f"--hours {hours} is not accepted", "a number from 0 to 100000")
    for value, shown in (
        ('"inf"', 'budget "inf"'),
        ("-1", "budget -1"),
        ("null", "budget null"),
        ("1e999", "budget inf"),  # too large for a float: it was shown as null
        ("-1e999", "budget -inf"),
    ):
        roar.sh(
            'cat > bad.json <<\'EOF\'\n{"dataset": "3f2a9c", "base_model": "81be07", '
            f'"compute": "8xH100", "hours": 3, "budget": {value}, "reviewer": "chris"}}\nEOF'
        )
        proc = roar("request", "new", "--from", "bad.json", check=False)
        _one_line_error(proc, f"{shown} in bad.json is not accepted", "a finite number")
    # what is accepted goes on to the registry (which is not there)
    for budget in ("0", "984", "1e6", "12.5"):
        proc = roar("request", "new", *spec, "--hours", "3", "--budget", budget, check=False)
        assert proc.returncode != 0 and "not accepted" not in proc.stderr, proc.stderr
        assert "cannot reach the registry at http://127.0.0.1:9" in proc.stderr, proc.stderr
