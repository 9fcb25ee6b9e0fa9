"""The web pages in a real browser: Debian's Chromium driven by Playwright, against a real
`glaas serve` filled with real `roarctl run` jobs (web_fill.register). The paths people take:
search a hash -> the artifact -> the job that made it -> its session's DAG -> another artifact,
with JavaScript and without it (the HTML list beside the graph); signing in with a one-time
link; a private record staying hidden from another user; hostile text staying text; and a
1,000-job session DAG that pans and zooms. Screenshots of each page go to docs/.

Chromium comes from Debian (`make test` installs it when run as root); these tests skip only
where it cannot be had (not installed, not root)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from conftest import Roar, git_repo
from registry_support import (
    BIN,
    Key,
    batch,
    hexdigest,
    make_database,
    make_job,
    new_session,
    set_up_accounts,
    wait_answering,
)
from web_fill import register

from roar import model, registry

pytest_plugins = ["registry_support"]  # the fixtures

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# `make screenshots` sets SCREENSHOTS=docs to keep them; otherwise they go to a temporary folder
SHOTS = os.environ.get("SCREENSHOTS")
HOSTILE = "<script>window.__pwned=1</script>\"'><img src=x onerror=window.__pwned=2>"
HOSTILE_FILE = "\"'><img src=x onerror=window.__pwned=4>.txt"  # no "/": a file name

if not os.path.exists(CHROMIUM) and os.getuid() != 0:
    pytest.skip(
        "Chromium is not installed (make test-deps installs it as root)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    def __init__(self, url: str, keys: dict[str, Key]) -> None:
        self.url = url
        self.keys = keys
        self.ids: dict[str, str] = {}  # name -> registry job id
        self.hashes: dict[str, str] = {}  # file name -> artifact hash
        self.session = ""
        self.big_session = ""
        self.db = ""  # the database's URL (glaas admin)

    def web_link(self, user: str) -> dict[str, Any]:
        path = f"{registry.API}/auth/web-link"
        auth = registry.authorization(self.keys[user].sign, "POST", path, "", b"")
        r = httpx.post(self.url + path, headers={"Authorization": auth})
        assert r.status_code == 200, r.text
        link: dict[str, Any] = r.json()
        return link

    def ingest(self, data: registry.Batch, user: str = "alice") -> list[str]:
        body = msgspec.json.encode(data)
        path = f"{registry.API}/ingest"
        auth = registry.authorization(self.keys[user].sign, "POST", path, "", body)
        r = httpx.post(self.url + path, content=body, headers={"Authorization": auth}, timeout=60)
        assert r.status_code == 200, r.text
        ids: list[str] = r.json()["ids"]
        return ids


PREP = "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n"
TRAIN = (
    "import sys\n"
    "open(sys.argv[2], 'w').write('model of %d bytes' % len(open(sys.argv[1]).read()))\n"
)
EVALUATE = (
    "import json, sys\n"
    "m, d = open(sys.argv[1]).read(), open(sys.argv[2]).read()\n"
    "json.dump({'score': len(m) / (1 + len(d))}, open(sys.argv[3], 'w'))\n"
)


def _fill(site: Site, roar: Roar) -> None:
    """A hostile job and a big session as a client could send them; then a real pipeline, run
    by roarctl and registered: three steps, then step 1 again on new data (so it is superseded
    once and the steps after it are stale), a hostile job, and a private job of bob's."""
    # a job whose tracker URL, env and argv are hostile, as a client could send it
    tricky = make_job(
        [("in.txt", hexdigest())],
        [(f"out/{i:02d}.txt", hexdigest()) for i in range(12)],
        command=f"python x.py {HOSTILE}",
        trackers=[
            model.TrackerRun("wandb", "run-1", "javascript:window.__pwned=3", "p", "wandb/"),
            model.TrackerRun("mlflow", "run-2", "https://mlflow.example.org/#/runs/2", None, "m"),
        ],
        env={"NOTE": HOSTILE, "LINK": "javascript:alert(1)"},
    )
    [site.ids["tricky"]] = site.ingest(batch(tricky, visibility="public"))

    # 1,000 jobs in one session: each reads the two files of the job before it and one of a
    # job seven before, and writes two files
    session = new_session()
    jobs: list[model.Job] = []
    made: list[list[tuple[str, str]]] = [[("data/raw.bin", hexdigest())]]
    for i in range(1000):
        ins = made[-1] + (made[-7][:1] if len(made) > 7 else [])
        outs = [(f"out/{i}-{x}", hexdigest()) for x in "ab"]
        made.append(outs)
        j = make_job(ins, outs, f"python step.py {i}")
        j.started, j.step = 1.7e9 + i, i + 1
        jobs.append(j)
    site.ingest(batch(*jobs, session=session, visibility="public"))
    site.big_session = session.hash

    # the real pipeline, registered last: the newest records on the home page
    repo = git_repo(
        roar,
        roar.work / "pipeline",
        {"prep.py": PREP, "train.py": TRAIN, "evaluate.py": EVALUATE, "raw.csv": "a,b\n1,2\n"},
    )
    roar.exec(["git", "remote", "add", "origin", "git@github.com:example/pipeline.git"], cwd=repo)
    py = "python3"
    names = {}
    names["prep"] = roar.run(py, "prep.py", "raw.csv", "clean.csv", cwd=repo)["job"]["id"]
    names["train"] = roar.run(py, "train.py", "clean.csv", "model.txt", cwd=repo)["job"]["id"]
    names["evaluate"] = roar.run(
        py, "evaluate.py", "model.txt", "clean.csv", "metrics.json", cwd=repo
    )["job"]["id"]
    (repo / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    names["prep2"] = roar.run(py, "prep.py", "raw.csv", "clean.csv", cwd=repo)["job"]["id"]
    names["hostile"] = roar.run(
        "sh", "-c", 'cat clean.csv > "$1"', "sh", HOSTILE_FILE, HOSTILE,
        cwd=repo, env={"HOSTILE_NOTE": HOSTILE},
    )["job"]["id"]  # fmt: skip
    secret = "echo bob plans a new model > bobs-notes.txt"
    names["secret"] = roar.run("sh", "-c", secret, cwd=repo)["job"]["id"]
    public = [names[n] for n in ("prep", "train", "evaluate", "prep2", "hostile")]
    for name, rid in zip(
        ("prep", "train", "evaluate", "prep2", "hostile"),
        register(roar, site.url, site.keys["alice"], public),
        strict=True,
    ):
        site.ids[name] = rid
    [site.ids["secret"]] = register(
        roar, site.url, site.keys["bob"], [names["secret"]], visibility="private"
    )
    for name in ("metrics.json", "model.txt", "clean.csv", "bobs-notes.txt"):
        site.hashes[name] = roar.json("show", str(repo / name))["artifact"]["hash"]
    job = httpx.get(f"{site.url}{registry.API}/jobs/{site.ids['evaluate']}").json()
    site.session = job["session"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Key]) -> Iterator[Site]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: run `make test-deps` (as root it installs it)")
    base = tmp_path_factory.mktemp("web")
    db = make_database("sqlite", base)
    set_up_accounts(db, keys)
    port = _free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(base)}
    server = subprocess.Popen(
        [str(BIN / "glaas"), "serve", "--db", db.url, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    roar_base = Path(os.path.realpath(tmp_path_factory.mktemp("roar")))
    os.chmod(roar_base, 0o755)
    roar = Roar(roar_base, None)
    try:
        wait_answering(url, server, lambda: server.stderr.read() if server.stderr else "")
        s = Site(url, keys)
        s.db = db.url
        _fill(s, roar)
        yield s
    finally:
        roar.stop()
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, shots: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 860}, color_scheme="light")
    p = context.new_page()
    p.shots = shots  # type: ignore[attr-defined]
    p.errors = []  # type: ignore[attr-defined]
    p.on("pageerror", lambda e: p.errors.append(str(e)))  # type: ignore[attr-defined]
    p.on("dialog", lambda d: (p.errors.append(f"dialog: {d.message}"), d.dismiss()))  # type: ignore[attr-defined]

    def console(m: Any) -> None:  # a blocked script or style shows as a console error
        if m.type == "error" and "Failed to load resource" not in m.text:  # (a 404 we asked for)
            p.errors.append(m.text)  # type: ignore[attr-defined]

    p.on("console", console)
    try:
        yield p
    finally:
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(SHOTS).resolve() if SHOTS else tmp_path_factory.mktemp("screenshots")


def shot(p: Any, name: str, full: bool = False) -> None:
    folder: Path = p.shots
    folder.mkdir(exist_ok=True)
    path = folder / f"web-{name}.png"
    p.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size > 0


# ---------------------------------------------------------------- the paths people take


def test_search_artifact_job_session_and_another_artifact(site: Site, page: Any) -> None:
    metrics = site.hashes["metrics.json"]
    assert page.goto(f"{site.url}/search?q=0000000000").status == 404
    assert "Nothing you can read matches" in page.inner_text("h1")
    shot(page, "search-unknown")
    page.goto(site.url + "/")
    shot(page, "home")
    page.fill("input[name=q]", metrics[:10])
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/artifacts/{metrics}")
    assert "metrics.json" in page.inner_text("h1")
    assert page.get_attribute(".full-hash", "data-full") == metrics
    assert f"roarctl reproduce {metrics}" in page.inner_text("main")
    page.wait_for_selector(".dag[data-ready]")
    shot(page, "artifact", full=True)

    page.click("#made-by + ul a")
    page.wait_for_url(f"**/jobs/{site.ids['evaluate']}")
    assert "evaluate.py" in page.inner_text("h1")
    commit = page.get_attribute("a[href^='https://github.com/example/pipeline/commit/']", "href")
    assert commit is not None and len(commit.rsplit("/", 1)[1]) == 40
    assert "clean.csv" in page.inner_text("#inputs + .table-wrap")
    shot(page, "job", full=True)

    page.click(f"a[href='/sessions/{site.session}']")
    page.wait_for_url(f"**/sessions/{site.session}")
    page.wait_for_selector(".dag[data-ready]")
    assert page.locator(".n.job.superseded").count() == 1  # prep, before it ran again
    assert page.locator(".n.job.stale").count() == 2  # train and evaluate read the old clean.csv
    shot(page, "session")

    model_txt = site.hashes["model.txt"]
    page.click(f"svg a.n.artifact[data-key='a{model_txt}']")
    page.wait_for_url(re.compile(f"/artifacts/{model_txt}$"))
    assert "model.txt" in page.inner_text("h1")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_same_path_without_javascript(site: Site, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        p = context.new_page()
        p.goto(site.url + "/")
        p.fill("input[name=q]", site.hashes["metrics.json"][:12])
        p.click("form.search button")
        p.wait_for_url("**/artifacts/*")
        p.click("#made-by + ul a")
        p.wait_for_url("**/jobs/*")
        p.click(f"a[href='/sessions/{site.session}']")
        p.wait_for_url(f"**/sessions/{site.session}")
        assert p.locator(".dag[data-ready]").count() == 0  # no script ran
        steps = p.locator("nav.graph-list")
        assert "@1" in steps.inner_text() and "superseded" in steps.inner_text()
        steps.locator(f"a[href='/artifacts/{site.hashes['model.txt']}']").first.click()
        p.wait_for_url(f"**/artifacts/{site.hashes['model.txt']}")
        assert "model.txt" in p.inner_text("h1")
        # the graph's nodes are links too
        p.go_back()
        p.locator(f"svg a.n.artifact[data-key='a{site.hashes['clean.csv']}']").click()
        p.wait_for_url(re.compile(f"/artifacts/{site.hashes['clean.csv']}$"))
    finally:
        context.close()


def test_sign_in_with_a_one_time_link_and_a_private_record_stays_hidden(
    site: Site, page: Any
) -> None:
    secret_job = f"{site.url}/jobs/{site.ids['secret']}"
    secret_file = f"{site.url}/artifacts/{site.hashes['bobs-notes.txt']}"
    for url in (secret_job, secret_file):  # anonymous
        assert page.goto(url).status == 404

    link = site.web_link("alice")
    assert link["url"].startswith(f"{site.url}/login/") and link["expires"] > time.time()
    page.goto(link["url"])
    page.wait_for_url(site.url + "/")
    assert "signed in as alice" in page.inner_text("header")
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert time.time() < cookie["expires"] < time.time() + 13 * 3600
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    for url in (secret_job, secret_file):  # alice is not bob
        response = page.goto(url)
        assert response.status == 404 and "not found" in page.inner_text("main").lower()
    page.goto(f"{site.url}/search?q={site.ids['secret'][:10]}")
    assert "Nothing you can read" in page.inner_text("h1")

    # a form that changes state, posted without the session's CSRF token, changes nothing
    forged = page.context.request.post(f"{site.url}/logout", form={"csrf": "0" * 64})
    assert forged.status == 403
    page.goto(site.url + "/")
    assert "signed in as alice" in page.inner_text("header")

    again = page.context.new_page()  # the link works once
    assert again.goto(link["url"]).status == 400
    assert "already used" in again.inner_text("main")
    again.close()

    page.click("header form button")
    page.wait_for_url(site.url + "/")
    assert "signed in" not in page.inner_text("header")
    assert page.context.cookies() == []

    page.goto(site.web_link("bob")["url"])
    page.wait_for_url(site.url + "/")
    assert page.goto(secret_job).status == 200
    assert "bobs-notes.txt" in page.inner_text("main")
    assert page.errors == []  # type: ignore[attr-defined]


def test_hostile_content_is_shown_as_text(site: Site, page: Any) -> None:
    for name in ("hostile", "tricky"):
        response = page.goto(f"{site.url}/jobs/{site.ids[name]}")
        assert response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert HOSTILE[:30] in page.inner_text("main")  # shown, as text
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main img").count() == 0
        assert page.locator("a[href^='javascript:' i]").count() == 0
    assert page.locator("a[href='https://mlflow.example.org/#/runs/2']").count() == 1
    assert "javascript:window.__pwned=3" in page.inner_text("main")  # text, not a link
    page.goto(f"{site.url}/sessions/{site.session}")
    page.wait_for_selector(".dag[data-ready]")
    assert page.evaluate("window.__pwned") is None
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_thousand_job_session_pans_zooms_and_expands(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/sessions/{site.big_session}")
    page.wait_for_selector(".dag[data-ready]")
    assert page.locator("svg a.n.job").count() == 1000
    assert page.locator("nav.graph-list > ol > li").count() == 1000
    assert page.locator("svg a.n.stale").count() == 0
    shot(page, "session-big")
    box = page.locator(".dag")
    before = box.get_attribute("data-view")
    zoom = float(box.get_attribute("data-zoom"))
    bounds = box.bounding_box()
    page.mouse.move(bounds["x"] + 300, bounds["y"] + 200)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"+document.querySelector('.dag').dataset.zoom > {zoom}")
    zoomed = box.get_attribute("data-view")
    assert zoomed != before
    page.mouse.down()
    page.mouse.move(bounds["x"] + 150, bounds["y"] + 120, steps=5)
    page.mouse.up()
    after = box.get_attribute("data-view").split(",")
    x, y, k = (round(float(v) - float(w), 1) for v, w in zip(after, zoomed.split(","), strict=True))
    assert (x, y, k) == (-150, -80, 0)  # dragged 150 px left, 80 up: the picture followed

    # a job with 12 outputs shows 3 of them and "+9 more outputs", which opens the rest
    page.goto(f"{site.url}/jobs/{site.ids['tricky']}")
    page.wait_for_selector(".dag[data-ready]")
    assert page.locator("svg a.n.artifact").count() == 1 + 3  # its input, 3 outputs
    more = page.locator("svg a.n.more")
    assert more.locator("text").text_content() == "+9 more outputs"
    more.click()
    page.wait_for_url(re.compile(r"\?expand=j[0-9a-f]{16}#graph$"))
    page.wait_for_selector(".dag[data-ready]")
    assert page.locator("svg a.n.artifact").count() == 1 + 12
    assert page.locator("svg a.n.more").count() == 0
    # the neighbourhood of an artifact: who made it, who read it
    page.goto(f"{site.url}/artifacts/{site.hashes['model.txt']}")
    page.wait_for_selector(".dag[data-ready]")
    for name in ("train", "evaluate"):
        assert page.locator(f"svg a.n.job[data-key='j{site.ids[name]}']").count() == 1
    assert page.locator("svg a.n.focus").get_attribute("data-key") == "a" + site.hashes["model.txt"]
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_compute_page_has_the_report_and_its_chart(site: Site, page: Any) -> None:
    """The real pipeline's jobs (their usage measured by the tracer) on /compute: the same
    numbers as the API's report, a server-drawn chart, and a form to change the grouping."""
    subprocess.run(
        [str(BIN / "glaas"), "admin", "--db", site.db, "price", "set", "cpu", "3600/h"],
        check=True,
    )
    api = httpx.get(f"{site.url}{registry.API}/compute", params={"by": "project"}).json()
    [want] = [r for r in api["rows"] if r["key"] == "pipeline"]
    assert want["jobs"] == 5 and want["cost"] > 0  # the public ones; bob's is private
    assert page.goto(f"{site.url}/compute?by=project&since=30d").status == 200
    assert "Where the compute went" in page.inner_text("h1")
    row = page.locator("table.compute tbody tr", has_text="pipeline").inner_text().split("\t")
    assert row[:2] == ["pipeline", "5"] and row[4] == f"{want['cost']:.2f}"
    assert page.locator("svg.chart rect.s0").count() >= 1
    assert "pipeline" in page.inner_text(".legend")
    shot(page, "compute", full=True)
    page.select_option("select[name=by]", "person")
    page.click("form.filters button")
    page.wait_for_url("**/compute?by=person&since=30d")
    assert page.locator("table.compute tbody tr").first.inner_text().startswith("alice")
    assert page.errors == []  # type: ignore[attr-defined]
    page.goto(f"{site.url}/jobs/{site.ids['train']}")  # a job's page says what it used
    assert "peak memory" in page.inner_text("#usage + dl")
    assert page.goto(f"{site.url}/compute?by=team").status == 400
    assert page.goto(f"{site.url}/compute?since=forever").status == 400
    assert page.goto(f"{site.url}/compute?since=99999w").status == 200  # charts its last 400 days
    assert page.locator("svg.chart rect.s0").count() >= 1


def test_dark_theme_and_a_phone(site: Site, browser: Any, shots: Path) -> None:
    dark = browser.new_context(viewport={"width": 1366, "height": 860}, color_scheme="dark")
    try:
        p = dark.new_page()
        p.shots = shots
        p.goto(f"{site.url}/sessions/{site.session}")
        p.wait_for_selector(".dag[data-ready]")
        background = p.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 22, 26)"
        shot(p, "session-dark")
        p.goto(f"{site.url}/jobs/{site.ids['evaluate']}")
        shot(p, "job-dark")
    finally:
        dark.close()
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True, color_scheme="light",
    )  # fmt: skip
    try:
        p = phone.new_page()
        p.shots = shots
        for path, name in (
            (f"/artifacts/{site.hashes['metrics.json']}", "phone-artifact"),
            (f"/jobs/{site.ids['evaluate']}", "phone-job"),
        ):
            p.goto(site.url + path)
            # nothing wider than the screen: the page does not scroll sideways
            assert p.evaluate("document.documentElement.scrollWidth") <= 390
            shot(p, name)
    finally:
        phone.close()
