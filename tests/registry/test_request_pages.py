"""The training requests' pages in a real browser (Debian's Chromium through Playwright) against
a real `glaas serve`: the reviewer signs in with a one-time link, finds the request in the queue
and approves it with the page's form; the requester sees no such form, and a forged approval
from them (with their own valid CSRF token) is refused and changes nothing. Screenshots of both
pages go to docs/ with `make screenshots`."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from registry_support import (
    BIN,
    Key,
    batch,
    hexdigest,
    make_database,
    make_job,
    set_up_accounts,
    wait_answering,
)
from test_web_browser import ARGS, CHROMIUM, SHOTS, _free_port

from roar import registry

pytest_plugins = ["registry_support"]


class Site:
    def __init__(self, url: str, keys: dict[str, Key]) -> None:
        self.url = url
        self.keys = keys

    def call(self, user: str, method: str, path: str, body: Any = None) -> Any:
        content = b"" if body is None else msgspec.json.encode(body)
        auth = registry.authorization(
            self.keys[user].sign, method, registry.API + path, "", content
        )
        r = httpx.request(
            method, self.url + registry.API + path, content=content,
            headers={"Authorization": auth}, timeout=60,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Key]) -> Iterator[Site]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: run `make test-deps` (as root it installs it)")
    base = tmp_path_factory.mktemp("web-requests")
    db = make_database("sqlite", base)
    set_up_accounts(db, keys)
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "glaas"), "serve", "--db", db.url, "--port", str(port)],
        env={"PATH": os.environ["PATH"], "HOME": str(base)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url, server, lambda: server.stderr.read() if server.stderr else "")
        yield Site(url, keys)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) in (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser: Any, site: Site, user: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(site.call(user, "POST", "/auth/web-link")["url"])
    page.wait_for_url(site.url + "/")
    return page


def _shot(page: Any, name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"web-{name}.png"), full_page=True)


def test_the_reviewer_approves_in_the_browser_and_the_requester_is_refused(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    shots = Path(SHOTS).resolve() if SHOTS else tmp_path
    data, model, other = hexdigest(), hexdigest(), hexdigest()
    prep = make_job(inputs=[("raw.csv", other)], outputs=[("data.csv", data), ("base.pt", model)])
    ingest = msgspec.to_builtins(batch(prep, visibility="public"))
    site.call("alice", "POST", "/ingest", ingest)
    spec = {
        "dataset": data[:8], "base_model": model[:8], "compute": "8xH100", "hours": 3.2,
        "budget": 984, "reviewer": "bob", "rationale": "fine-tune on the cleaned rows",
    }  # fmt: skip
    filed = site.call("alice", "POST", "/requests", spec)
    rid = filed["id"]

    # the requester: no form, and a forged approval with her own valid token is refused
    alice = _signed_in(browser, site, "alice")
    assert alice.goto(f"{site.url}/requests/{rid}").status == 200
    assert alice.locator("#approve").count() == 0
    assert "This is your request: bob must review it" in alice.inner_text("#review-note")
    # spent vs budget: no run is linked before it is approved, so nothing spent; not over budget
    assert alice.inner_text("#spent").startswith("0.00 of 984")
    assert alice.locator("#over-budget").count() == 0
    _shot(alice, "request-requester", shots)
    token = alice.get_attribute("header input[name=csrf]", "value")
    forged = alice.context.request.post(
        f"{site.url}/requests/{rid}/approve",
        form={"csrf": token, "spec_hash": filed["spec_hash"]},
    )
    assert forged.status == 403 and "own request" in forged.text()
    assert site.call("bob", "GET", f"/requests/{rid}")["state"] == "pending"

    # the reviewer: the queue says it is theirs, the page's form approves it
    bob = _signed_in(browser, site, "bob")
    bob.click("header a[href='/requests']")
    bob.wait_for_url(f"{site.url}/requests")
    row = bob.locator("tr", has_text=rid)
    assert "yours to review" in row.inner_text() and "8xH100 for 3.2 h" in row.inner_text()
    _shot(bob, "requests-queue", shots)
    row.locator(f"a[href='/requests/{rid}']").click()
    bob.wait_for_url(f"{site.url}/requests/{rid}")
    # alice edits it while bob reads: his approval of what he read is refused
    site.call("alice", "POST", f"/requests/{rid}/revisions", {**spec, "hours": 4})
    bob.click("#approve")
    assert "changed since you read it" in bob.inner_text("main")
    assert site.call("bob", "GET", f"/requests/{rid}")["state"] == "pending"
    assert bob.goto(f"{site.url}/requests/{rid}").status == 200
    assert "8xH100 for 4 h" in bob.inner_text("main")
    bob.fill("input[name=comment]", "go ahead")
    bob.click("#approve")
    bob.wait_for_url(f"{site.url}/requests/{rid}")
    assert bob.inner_text("#state") == "approved"
    events = bob.inner_text("#events")
    assert "approved by bob" in events and "go ahead" in events
    assert bob.locator("#approve").count() == 0  # decided
    # a run for it (linked once it is approved), flagged: its inputs lack the base model
    run = make_job(inputs=[("data.csv", data)], outputs=[("m.pt", hexdigest())])
    run = msgspec.structs.replace(run, request=rid)
    site.call("alice", "POST", "/ingest", msgspec.to_builtins(batch(run, visibility="public")))
    assert bob.goto(f"{site.url}/requests/{rid}").status == 200
    assert "inputs lack the approved base model" in bob.inner_text("#runs")
    _shot(bob, "request-approved", shots)
    shown = site.call("alice", "GET", f"/requests/{rid}")
    assert shown["state"] == "approved"
    assert shown["events"][-1]["key"] == site.keys["bob"].public.fingerprint
    assert alice.errors == [] and bob.errors == []
