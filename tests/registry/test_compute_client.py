"""`roarctl compute report` end to end: real runs under the tracer (as root and as the ordinary
user), registered by the real roard to a real `glaas serve` on SQLite and on PostgreSQL, then
reported through the signed API: the CPU roar measured, priced at the registry's price."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest
from conftest import Roar, git_repo
from registry_support import batch, hexdigest, make_job, make_key
from test_registry_client import Glaas, People, any_glaas, people  # noqa: F401 (fixtures)
from test_usage import BURN

from roar import model, registry

pytest_plugins = ["registry_support"]


def test_compute_report_prices_what_the_tracer_measured(
    roar: Roar,
    people: People,  # noqa: F811
    any_glaas: Glaas,  # noqa: F811
) -> None:
    user = people.join(roar, any_glaas, "alice")
    roar("auth", "login")
    any_glaas.admin("price", "set", "cpu", "3600/h")  # one per CPU-second: cost = CPU-seconds
    repo = git_repo(roar, roar.work / f"proj-{uuid.uuid4().hex[:6]}", {"burn.py": BURN})
    words = f"burned {uuid.uuid4().hex[:8]}"
    burn = roar.run("sh", "-c", f"{sys.executable} burn.py 0.4 && echo {words} > out.txt", cwd=repo)
    count = roar.run("sh", "-c", "wc -c < out.txt > final.txt", cwd=repo)
    roar("register", "final.txt", cwd=repo)
    cpu = burn["usage"]["cpu_seconds"] + count["usage"]["cpu_seconds"]
    assert burn["usage"]["cpu_seconds"] > 0.3

    found = roar.json("compute", "report", "--by", "project", "--since", "1d")
    [row] = [r for r in found["rows"] if r["key"] == repo.name]
    assert row["jobs"] == 2
    assert row["cpu_hours"] * 3600 == pytest.approx(cpu)
    assert row["cost"] == pytest.approx(cpu)
    # the burn's output was read by the count; nothing read the count's
    assert (row["read_jobs"], row["unread_jobs"]) == (1, 1)
    assert row["read_cost"] == pytest.approx(burn["usage"]["cpu_seconds"])
    final = roar.json("show", "final.txt", cwd=repo)["artifact"]["hash"]
    [maker] = roar.json("show", final, "--remote")["artifact"]["produced_by"]
    registered = roar.json("show", maker["id"][:16], "--remote")["job"]  # says what it used
    assert registered["usage"]["cpu_seconds"] == pytest.approx(count["usage"]["cpu_seconds"])
    mine = roar.json("compute", "report")  # by person, 30 days
    assert user in {r["key"] for r in mine["rows"]}

    text = roar("compute", "report", "--by", "project", "--since", "1d").stdout
    assert text.startswith("compute by project, last 1d (prices: cpu 3600/h)")
    assert any(line.startswith(repo.name) for line in text.splitlines())

    bad = roar("compute", "report", "--since", "a month", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("roar: error: not a duration")


def test_what_a_teammate_named_cannot_drive_the_terminal(
    roar: Roar,
    people: People,  # noqa: F811
    any_glaas: Glaas,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A hand-made public job whose project name is a terminal escape (set the window title,
    clear the screen) and a right-to-left override: `compute report` prints them as escapes."""
    people.join(roar, any_glaas, "alice")
    roar("auth", "login")
    mallory = make_key(tmp_path, "mallory")
    any_glaas.admin("user", "add", f"mallory-{uuid.uuid4().hex[:6]}", "--key", mallory.public_line)
    evil = f"x{uuid.uuid4().hex[:4]}\x1b]0;pwned\x07\x1b[2J\u202eevil"
    job = make_job(outputs=[("w.pt", hexdigest())], root=f"/home/tester/{evil}")
    job = msgspec.structs.replace(job, usage=model.Usage(cpu_seconds=36.0))
    content = msgspec.json.encode(batch(job, visibility="public"))
    path = f"{registry.API}/ingest"
    sent = httpx.post(
        any_glaas.url + path,
        content=content,
        headers={"Authorization": registry.authorization(mallory.sign, "POST", path, "", content)},
    )
    assert sent.status_code == 200, sent.text
    found = roar.json("compute", "report", "--by", "project", "--since", "99999w")
    assert evil in {r["key"] for r in found["rows"]}  # the data is what was sent
    text = roar("compute", "report", "--by", "project", "--since", "99999w").stdout
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, text
    assert f"{evil[:5]}\\x1b]0;pwned\\x07" in text
