"""Compute accounting at the registry, on both backends: usage arrives with each job, the price
table turns it into cost, and the report (`GET /api/v1/compute`) over a few hundred synthetic
jobs from three accounts (two people and an agent) is checked against arithmetic done here,
for readers who see different parts of it. `roarctl compute report` against a real
`glaas serve` is in test_compute_client.py; the page in test_web_browser.py. Some of the jobs
are runs for two training requests: the report by request, and each request's spent vs budget
(one of them over it), are checked by hand too."""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from registry_support import (
    HOME,
    Client,
    Database,
    Key,
    batch,
    glaas_admin,
    hexdigest,
    make_job,
    sql,
)

from roar import canonical, model, registry

pytest_plugins = ["registry_support"]

DAY = 86400.0
PRICES = {"cpu": 0.04, "gpu": 1.0, "gpu:H100": 2.49, "gpu:H100 80GB": 3.0}
OWNERS = ("alice", "bob", "mallory")  # mallory: the agent account
VISIBILITY = {"alice": "private", "bob": "team", "mallory": "public"}
PROJECTS = ("vision", "nlp")
N = 300
BUDGETS = {"small": 1.0, "large": 1e6}  # the requests' budgets: the small one is overspent


def _linked(i: int) -> str | None:
    """Which request job i is a run for (only jobs in the 30-day window)."""
    if i >= N:
        return None
    return {0: "small", 5: "large"}.get(i % 11)


class Synthetic(msgspec.Struct):
    owner: str
    project: str
    started: float
    cpu_seconds: float
    gpu_seconds: float
    gpu_model: str | None
    output: str | None  # hash
    reads: str | None  # hash of an earlier job's output
    request: str | None = None  # "small" or "large" (_linked), then the request's id


def _synthetic(now: float) -> list[Synthetic]:
    """N jobs over the last 25 days, and 5 older ones (outside a 30-day window)."""
    jobs: list[Synthetic] = []
    outputs: list[str | None] = []
    for i in range(N + 5):
        old = i >= N
        started = now - (40 if old else 25) * DAY + (i % N) * 7000.0 + 1
        gpus, model_ = 0, None
        if i % 4 == 0:
            gpus, model_ = 2, "NVIDIA H100 80GB HBM3"
        elif i % 10 == 1:
            gpus, model_ = 1, "NVIDIA H100 PCIe"
        elif i % 10 == 3:
            gpus, model_ = 1, "NVIDIA A10"
        wall = 900.0 * (i % 3 + 1)
        output = None if i % 5 == 4 else hexdigest()
        jobs.append(
            Synthetic(
                owner=OWNERS[i % 3],
                project=PROJECTS[i % 2],
                started=started,
                cpu_seconds=36.0 * (i % 7 + 1),
                gpu_seconds=gpus * wall,
                gpu_model=model_,
                output=output,
                # every even job's output (if any) is read by the next job
                reads=outputs[i - 1] if i % 2 == 1 and not old else None,
                request=_linked(i),
            )
        )
        outputs.append(output)
    return jobs


def _record(s: Synthetic) -> model.Job:
    root = f"{HOME}/{s.project}"
    gpus = 0 if s.gpu_model is None else 2 if "80GB" in s.gpu_model else 1
    return model.Job(
        id=uuid.uuid4().hex[:12],
        command=f"python train.py --seed {uuid.uuid4().hex[:6]}",
        argv=["python", "train.py"],
        cwd=root,
        started=s.started,
        ended=s.started + 60,
        status="complete",
        exit_code=0,
        project=root,
        inputs=[model.IO(f"{root}/in.bin", s.reads, 10)] if s.reads else [],
        outputs=[model.IO(f"{root}/out.bin", s.output, 10)] if s.output else [],
        request=s.request,
        usage=model.Usage(
            cpu_seconds=s.cpu_seconds,
            user_seconds=s.cpu_seconds,
            max_rss_bytes=1 << 30,
            wall_seconds=60.0,
            gpus=gpus,
            gpu_model=s.gpu_model,
            gpu_seconds=s.gpu_seconds,
        ),
    )


def _cost(s: Synthetic) -> float:
    """The price rule, by hand for these models: the longest matching gpu:NAME, else gpu."""
    gpu = {
        None: 0.0,
        "NVIDIA H100 80GB HBM3": 3.0,  # "H100 80GB" is longer than "H100"
        "NVIDIA H100 PCIe": 2.49,
        "NVIDIA A10": 1.0,  # no gpu:A10: the generic gpu price
    }[s.gpu_model]
    return s.cpu_seconds / 3600 * 0.04 + s.gpu_seconds / 3600 * gpu


def _expected(jobs: list[Synthetic], can_read: set[str], by: str, since: float) -> dict[str, Any]:
    """The report's rows, computed here job by job."""
    readers: dict[str, list[Synthetic]] = defaultdict(list)
    for s in jobs:
        if s.reads and s.owner in can_read:
            readers[s.reads].append(s)
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in jobs:
        if s.owner not in can_read or s.started < since:
            continue
        if by == "project":
            key = s.project
        elif by == "request":
            key = s.request or "-"
        elif (s.owner == "mallory") != (by == "agent"):
            continue
        else:
            key = s.owner
        row = rows[key]
        row["jobs"] += 1
        row["cpu_hours"] += s.cpu_seconds / 3600
        row["gpu_hours"] += s.gpu_seconds / 3600
        row["cost"] += _cost(s)
        if s.output is None:
            continue
        if any(r.started > s.started for r in readers.get(s.output, [])):
            row["read_jobs"] += 1
            row["read_cost"] += _cost(s)
        else:
            row["unread_jobs"] += 1
            row["unread_cost"] += _cost(s)
    return rows


@pytest.fixture(scope="module")
def filled(database: Database, keys: dict[str, Key], client: Client) -> Iterator[list[Synthetic]]:
    glaas_admin(database, "user", "add", "mallory", "--key", keys["mallory"].public_line)
    sql(database, "UPDATE users SET agent = 1 WHERE name = 'mallory'")
    for resource, per_hour in PRICES.items():
        glaas_admin(database, "price", "set", resource, f"{per_hour}/h")
    jobs = _synthetic(time.time())
    # two training requests (alice's, bob reviews) on a dataset and base model alice made
    data, base = hexdigest(), hexdigest()
    prep = make_job(outputs=[("data.csv", data), ("base.pt", base)])  # no usage: not counted
    assert client.ingest(batch(prep, visibility="public")).status_code == 200
    ids = {}
    for name, budget in BUDGETS.items():
        spec = {"dataset": data, "base_model": base, "compute": "2xH100", "hours": 1.0,
                "budget": budget, "reviewer": "bob"}  # fmt: skip
        r = client.request("POST", f"{registry.API}/requests", "alice", msgspec.json.encode(spec))
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
        # approved and claimed by nobody: the runs of alice, bob and mallory are linked to it
        said = msgspec.json.encode({"spec_hash": r.json()["spec_hash"]})
        path = f"{registry.API}/requests/{ids[name]}/approve"
        assert client.request("POST", path, "bob", said).status_code == 200
    jobs = [msgspec.structs.replace(s, request=s.request and ids[s.request]) for s in jobs]
    for owner in OWNERS:
        mine = [_record(s) for s in jobs if s.owner == owner]
        body = registry.Batch(
            jobs=[registry.Registration(canonical.for_registry(j, home=HOME)) for j in mine],
            visibility=VISIBILITY[owner],  # type: ignore[arg-type]
        )
        r = client.ingest(body, owner)
        assert r.status_code == 200, r.text
        assert msgspec.json.decode(r.content, type=registry.Ingested).jobs.new == len(mine)
    yield jobs


def _report(client: Client, user: str | None, **params: str) -> registry.ComputeReport:
    r = client.get("/compute", user, **params)
    assert r.status_code == 200, r.text
    return msgspec.json.decode(r.content, type=registry.ComputeReport)


def _check(report: registry.ComputeReport, expected: dict[str, Any]) -> None:
    got = {r.key: r for r in report.rows}
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        assert row.jobs == want["jobs"]
        assert row.read_jobs == want["read_jobs"] and row.unread_jobs == want["unread_jobs"]
        for name in ("cpu_hours", "gpu_hours", "cost", "read_cost", "unread_cost"):
            assert getattr(row, name) == pytest.approx(want[name], abs=1e-9), (key, name)
    assert report.total.cost == pytest.approx(sum(w["cost"] for w in expected.values()))
    assert sum(p.cost for p in report.series) == pytest.approx(report.total.cost)
    assert [r.cost for r in report.rows] == sorted((r.cost for r in report.rows), reverse=True)


@pytest.mark.parametrize("by", ["person", "agent", "project", "request"])
def test_the_report_adds_up_by_hand(client: Client, filled: list[Synthetic], by: str) -> None:
    """alice reads her own (private), bob's (team ml) and mallory's (public) jobs."""
    report = _report(client, "alice", by=by, since="30d")
    since = report.since
    assert report.until - since == pytest.approx(30 * DAY)
    _check(report, _expected(filled, {"alice", "bob", "mallory"}, by, since))
    assert report.unpriced_gpu_hours == 0
    assert {p.resource: p.per_hour for p in report.prices} == PRICES


def test_a_reader_sees_only_what_is_shared_with_them(
    client: Client, filled: list[Synthetic]
) -> None:
    """carol is in no team: only mallory's public jobs count, and a public job whose only
    reader is private counts as unread for her; unsigned readers see the same."""
    for user in ("carol", None):
        report = _report(client, user, by="agent", since="30d")
        _check(report, _expected(filled, {"mallory"}, "agent", report.since))
        assert _report(client, user, by="person").rows == []


def test_a_request_has_spent_its_runs_cost_and_is_flagged_over_budget(
    client: Client, filled: list[Synthetic]
) -> None:
    """Spent is the cost of the request's runs (every one, also those carol cannot read) at the
    current prices, by hand; the small budget is overspent: flagged, with one event by the
    registry; the report's row of the request is the same sum; the page shows it."""
    from test_web_pages import get, sign_in

    by_request: dict[str, list[Synthetic]] = defaultdict(list)
    for s in filled:
        if s.request is not None:
            by_request[s.request].append(s)
    assert len(by_request) == 2
    report = {r.key: r for r in _report(client, "alice", by="request", since="30d").rows}
    for rid, runs in by_request.items():
        want = sum(_cost(s) for s in runs)
        assert want > 1.0  # the small budget is overspent, the large one is not
        for reader in ("alice", "carol"):
            r = client.get(f"/requests/{rid}", reader)
            assert r.status_code == 200, r.text
            entry = msgspec.json.decode(r.content, type=registry.RequestEntry)
            assert entry.spent == pytest.approx(want, abs=1e-9)
        assert report[rid].cost == pytest.approx(want, abs=1e-9)
        assert report[rid].jobs == len(runs)
        over = entry.spec.budget == BUDGETS["small"]
        assert entry.over_budget is over
        marks = [e for e in entry.events if e.action == "over_budget"]
        assert len(marks) == (1 if over else 0), entry.events
        if over:
            assert marks[0].actor is None and marks[0].state == "approved"
            assert marks[0].comment is not None and "took it over" in marks[0].comment
        listed = client.get("/requests", "bob").json()["requests"]
        assert {x["id"]: x["over_budget"] for x in listed}[rid] is over
        page = get(client, f"/requests/{rid}", sign_in(client, "bob"))
        assert page.status_code == 200
        shown = re.sub(r"<[^>]+>", "", page.text)
        assert f"{want:.2f} of {entry.spec.budget:g}" in shown
        assert ("over budget" in shown) is over
    assert report["-"].jobs == sum(1 for s in filled[:N] if s.request is None)
    # the compute page by request: a row per request, linked to its page, and "-"
    page = get(client, "/compute", sign_in(client, "alice"), params={"by": "request"})
    assert page.status_code == 200
    for rid, runs in by_request.items():
        cells = re.search(rf'<tr><td><a href="/requests/{rid}">{rid}</a></td>(.*?)</tr>', page.text)
        assert cells is not None, page.text
        numbers = re.findall(r'<td class="num"[^>]*>([^<]*)</td>', cells.group(1))
        assert numbers[0] == str(len(runs)) and numbers[3] == f"{report[rid].cost:.2f}"
    assert "<tr><td>-</td>" in page.text


def test_by_hand_for_one_job_and_the_window(client: Client, filled: list[Synthetic]) -> None:
    """One job worked out on paper, and a longer window that takes in the older jobs."""
    first = filled[0]  # alice, vision, 36 CPU-s, 2 x H100 80GB for 900 s, output read by job 1
    assert (first.cpu_seconds, first.gpu_seconds, first.gpu_model) == (
        36.0,
        1800.0,
        "NVIDIA H100 80GB HBM3",
    )
    assert _cost(first) == pytest.approx(0.01 * 0.04 + 0.5 * 3.0)  # 1.5004
    wide = _report(client, "alice", by="project", since="8w")
    narrow = _report(client, "alice", by="project", since="30d")
    assert wide.total.jobs == narrow.total.jobs + 5 == N + 5


def test_price_table_and_bad_input(database: Database, client: Client) -> None:
    from click.testing import CliRunner

    from glaas.cli import main

    listed = glaas_admin(database, "price", "list")
    assert "cpu\t0.04/h" in listed and "gpu:H100\t2.49/h" in listed
    for args in (["tpu", "1/h"], ["cpu", "cheap"], ["gpu:", "1"], ["cpu", "1.5/d"]):
        result = CliRunner().invoke(main, ["admin", "--db", database.url, "price", "set", *args])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.startswith("glaas: ") and len(result.output.splitlines()) <= 2
    assert glaas_admin(database, "price", "list") == listed  # nothing changed
    bad = client.get("/compute", "alice", since="30 days")
    assert bad.status_code == 400
    assert msgspec.json.decode(bad.content, type=registry.Problem).code == "invalid"
    assert client.get("/compute", "alice", by="team").status_code == 400


def test_usage_is_stored_with_the_job(client: Client, filled: list[Synthetic]) -> None:
    """The record keeps its usage; a job from before usage (none in its record) is still
    taken and is left out of the report."""
    job = _record(filled[0])
    with_usage = canonical.for_registry(msgspec.structs.replace(job, id="a" * 12), home=HOME)
    plain = canonical.for_registry(msgspec.structs.replace(job, usage=None), home=HOME)
    before = _report(client, "alice", by="project").total
    r = client.ingest(registry.Batch([registry.Registration(plain)]), "alice")
    assert r.status_code == 200, r.text
    [jid] = msgspec.json.decode(r.content, type=registry.Ingested).ids
    entry = client.get(f"/jobs/{jid}", "alice")
    assert msgspec.json.decode(entry.content, type=registry.JobEntry).job.usage is None
    assert _report(client, "alice", by="project").total == before
    # the same job with its usage is another record, and it counts
    r = client.ingest(registry.Batch([registry.Registration(with_usage)]), "alice")
    [jid] = msgspec.json.decode(r.content, type=registry.Ingested).ids
    entry = client.get(f"/jobs/{jid}", "alice")
    assert msgspec.json.decode(entry.content, type=registry.JobEntry).job.usage == job.usage
    after = _report(client, "alice", by="project").total
    assert after.jobs == before.jobs + 1
    assert after.cost == pytest.approx(before.cost + _cost(filled[0]))


def test_a_usage_out_of_range_is_refused(client: Client, filled: list[Synthetic]) -> None:
    before = _report(client, "alice", by="project").total
    job = _record(filled[1])
    for bad in ({"cpu_seconds": -5.0}, {"gpu_seconds": 1e15}, {"gpus": -1}):
        usage = msgspec.structs.replace(job.usage, **bad)  # type: ignore[type-var]
        sent = canonical.for_registry(msgspec.structs.replace(job, usage=usage), home=HOME)
        r = client.ingest(registry.Batch([registry.Registration(sent)]), "alice")
        assert r.status_code == 400, r.text
        problem = msgspec.json.decode(r.content, type=registry.Problem)
        assert problem.code == "invalid" and "usage out of range" in problem.detail
    assert _report(client, "alice", by="project").total == before  # nothing stored
