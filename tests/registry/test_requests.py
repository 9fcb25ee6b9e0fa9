"""Training requests on a real `glaas serve --workers 2` process, on SQLite and on PostgreSQL,
with requests signed by real ed25519 keys made by ssh-keygen: the whole state machine, every
refusal (self-approval, agent approval, approval by someone who is not the reviewer, approval of
a spec that changed, a double claim from two threads at once, an unknown dataset), approvals
that expire, linked runs flagged when their inputs lack the approved hashes, and webhooks
delivered to a real local HTTP receiver (one that fails first is retried)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from registry_support import (
    BIN,
    Database,
    Key,
    at_schema,
    batch,
    drop_database,
    hexdigest,
    make_database,
    make_job,
    sql,
    wait_answering,
)

from roar import model as registry_model
from roar import registry

pytest_plugins = ["registry_support"]

GLAAS = str(BIN / "glaas")
SECRET = "hook-secret-3f9a"


def _recipe() -> Any:
    """The receiver's `verify` exactly as README.md documents it (its python block)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [block] = [
        b.split("\n```", 1)[0] for b in readme.split("```python\n")[1:] if "def verify(" in b
    ]
    scope: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), scope)
    return scope["verify"]


verify = _recipe()


def _signed(headers: dict[str, str], content: bytes) -> bool:
    return bool(verify(SECRET.encode(), headers, content))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A real HTTP server on loopback that keeps each POST; the first `fail_first` answer 500.
    `tries`: the path and headers of every POST, refused ones too."""

    def __init__(self, fail_first: int = 0, port: int = 0) -> None:
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.tries: list[tuple[str, dict[str, str]]] = []
        self.failures = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                content = self.rfile.read(int(self.headers["Content-Length"]))
                owner.tries.append((self.path, dict(self.headers.items())))
                if owner.failures < fail_first:
                    owner.failures += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                owner.bodies.append((dict(self.headers.items()), content))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.bodies]


class Server:
    def __init__(self, db: Database, log: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [GLAAS, "serve", "--db", db.url, "--port", str(self.port), *args],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        wait_answering(self.url, self.proc, log.read_text)

    def stop(self) -> int:
        """0 once it shut down cleanly (uvicorn with one worker re-raises SIGTERM after)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        return (
            0 if code == -signal.SIGTERM and "shutdown complete" in self.log.read_text() else code
        )


class Api:
    """Signed calls as each user (their own key file)."""

    def __init__(self, server: Server, keys: dict[str, Key]) -> None:
        self.server = server
        self.keys = keys

    def call(self, user: str, method: str, path: str, body: Any = None) -> httpx.Response:
        content = b"" if body is None else msgspec.json.encode(body)
        raw, _, query = path.partition("?")
        auth = registry.authorization(
            self.keys[user].sign, method, registry.API + raw, query, content
        )
        return httpx.request(
            method,
            f"{self.server.url}{registry.API}{path}",
            content=content,
            headers={"Authorization": auth, "Content-Type": "application/json"},
            timeout=60,
        )

    def ok(self, user: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        r = self.call(user, method, path, body)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def refused(self, status: int, user: str, path: str, body: Any = None) -> str:
        r = self.call(user, "POST", path, body)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        detail: str = r.json()["detail"]
        return detail


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, flaky = Receiver(), Receiver(fail_first=2)
    yield good, flaky
    good.close()
    flaky.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    keys: dict[str, Key],
    receivers: tuple[Receiver, Receiver],
) -> Iterator[tuple[Api, Database]]:
    tmp = tmp_path_factory.mktemp("requests")
    db = make_database(request.param, tmp)
    env = {**os.environ, "HOME": str(tmp)}

    def admin(*args: str) -> None:
        done = subprocess.run(
            [GLAAS, "admin", "--db", db.url, *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr

    try:
        for name in ("alice", "bob", "carol"):
            admin("user", "add", name, "--key", keys[name].public_line)
        admin("user", "add", "bot", "--kind", "agent", "--key", keys["mallory"].public_line)
        listed = subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "list", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        kinds = {u["name"]: u["kind"] for u in json.loads(listed.stdout)}
        assert kinds == {"alice": "human", "bob": "human", "carol": "human", "bot": "agent"}
        good, flaky = receivers
        server = Server(
            db,
            tmp / "glaas.log",
            "--workers",
            "2",
            "--webhook",
            good.url,
            "--webhook",
            flaky.url,
            "--webhook-secret",
            SECRET,
        )
        try:
            yield Api(server, {**keys, "bot": keys["mallory"]}), db
        finally:
            assert server.stop() == 0
    finally:
        drop_database(db)


def _artifacts(api: Api, user: str = "alice") -> tuple[str, str, str]:
    """A dataset, a base model and another file, registered by a job of `user`."""
    data, model, other = hexdigest(), hexdigest(), hexdigest()
    job = make_job(inputs=[("data.csv", data), ("base.pt", model), ("x.txt", other)])
    r = api.call(user, "POST", "/ingest", batch(job, visibility="public"))
    assert r.status_code == 200, r.text
    return data, model, other


def _spec(data: str, model: str, **change: Any) -> dict[str, Any]:
    spec = {
        "dataset": data[:10],  # a prefix: the registry resolves it
        "base_model": model,
        "compute": "8xH100",
        "hours": 3.2,
        "budget": 984,
        "reviewer": "bob",
        "rationale": "fine-tune on the cleaned set",
    }
    return spec | change


def test_the_whole_state_machine_and_every_refusal(api: tuple[Api, Database]) -> None:
    a, _ = api
    data, model, _ = _artifacts(a)
    new = a.ok("bot", "POST", "/requests", _spec(data, model))  # an agent files it
    rid = new["id"]
    assert rid.startswith("R-") and new["state"] == "pending" and new["requester"] == "bot"
    assert new["spec"]["dataset"] == data  # resolved to the full hash
    assert new["requester_agent"] is True
    path = f"/requests/{rid}"
    spec1 = new["spec_hash"]
    # nobody approves their own; agents never approve; only the reviewer does
    assert "own" in a.refused(403, "bot", f"{path}/approve", {"spec_hash": spec1})
    assert "for bob to review" in a.refused(403, "carol", f"{path}/approve", {"spec_hash": spec1})
    assert "cannot be claimed" in a.refused(409, "carol", f"{path}/claim", {})
    a.ok("carol", "POST", f"{path}/comment", {"comment": "is 3.2 h enough?"})
    # the requester edits: a new revision; an approval of the old one is refused
    revised = a.ok("bot", "POST", f"{path}/revisions", _spec(data, model, hours=4))
    assert revised["revision"] == 2 and revised["spec_hash"] != spec1
    stale = a.refused(409, "bob", f"{path}/approve", {"spec_hash": spec1})
    assert "changed since you read it" in stale
    approved = a.ok("bob", "POST", f"{path}/approve", {"spec_hash": revised["spec_hash"]})
    assert approved["state"] == "approved" and approved["expires"] > time.time() + 13 * 86400
    # an edit after approval dismisses it
    again = a.ok("bot", "POST", f"{path}/revisions", _spec(data, model, hours=5))
    assert again["state"] == "pending" and again["revision"] == 3
    assert again["events"][-1]["comment"] == "approval dismissed"
    a.ok("bob", "POST", f"{path}/approve", {"spec_hash": again["spec_hash"], "comment": "ok"})
    # two claimers at once: exactly one wins
    answers: list[httpx.Response] = []

    def claim(user: str) -> None:
        answers.append(a.call(user, "POST", f"{path}/claim", {}))

    threads = [threading.Thread(target=claim, args=(u,)) for u in ("bot", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    winner = next(r.json()["claimed_by"] for r in answers if r.status_code == 200)
    loser = "carol" if winner == "bot" else "bot"
    assert "claimed" in a.refused(409, loser, f"{path}/claim", {})
    assert "only they complete" in a.refused(
        403, "carol" if winner == "bot" else "alice", f"{path}/complete", {}
    )
    done = a.ok(winner, "POST", f"{path}/complete", {"outcome": "failed", "comment": "OOM"})
    assert done["state"] == "failed"
    shown = a.ok("alice", "GET", path)
    actions = [e["action"] for e in shown["events"]]
    assert actions == [
        "filed", "commented", "revised", "approved", "revised", "approved", "claimed", "failed"
    ]  # fmt: skip
    first = shown["events"][0]
    assert first["actor"] == "bot" and first["agent"] is True and first["key"].startswith("SHA256:")
    assert first["spec_hash"] == spec1 and shown["events"][3]["spec_hash"] != spec1
    # final: nothing moves it any more
    assert "cannot be" in a.refused(409, "bot", f"{path}/withdraw", {})


def test_reject_withdraw_and_bad_input(api: tuple[Api, Database]) -> None:
    a, _ = api
    data, model, _ = _artifacts(a)
    r1 = a.ok("alice", "POST", "/requests", _spec(data, model))
    assert "agent" in a.refused(403, "bot", f"/requests/{r1['id']}/reject", {})
    assert a.ok("bob", "POST", f"/requests/{r1['id']}/reject", {})["state"] == "rejected"
    r2 = a.ok("alice", "POST", "/requests", _spec(data, model))
    assert "only the requester" in a.refused(403, "bob", f"/requests/{r2['id']}/withdraw", {})
    assert a.ok("alice", "POST", f"/requests/{r2['id']}/withdraw", {})["state"] == "withdrawn"
    # an unknown dataset, a reviewer who is the requester, an agent reviewer, unknown fields
    assert "no artifact" in a.refused(400, "alice", "/requests", _spec("ab" * 32, model))
    assert "own" in a.refused(403, "alice", "/requests", _spec(data, model, reviewer="alice"))
    assert "agent" in a.refused(400, "alice", "/requests", _spec(data, model, reviewer="bot"))
    assert a.call("alice", "POST", "/requests", {**_spec(data, model), "gpu": 8}).status_code == 400
    for nul in ({"compute": "8x\x00"}, {"rationale": "a\x00b"}, {"reviewer": "b\x00b"}):
        assert a.call("alice", "POST", "/requests", _spec(data, model, **nul)).status_code == 400
    assert a.call("alice", "GET", "/requests/R-999999").status_code == 404
    assert a.call("alice", "GET", "/requests/R-x").status_code in (400, 404)
    unsigned = httpx.get(f"{a.server.url}{registry.API}/requests", timeout=60)
    assert unsigned.status_code == 401
    pending = a.ok("carol", "GET", "/requests?state=rejected&state=withdrawn")
    ids = {r["id"] for r in pending["requests"]}
    assert {r1["id"], r2["id"]} <= ids


def test_a_linked_run_is_flagged_when_its_inputs_lack_the_approved_hashes(
    api: tuple[Api, Database],
) -> None:
    a, _ = api
    data, model, other = _artifacts(a)
    new = a.ok("alice", "POST", "/requests", _spec(data, model))
    a.ok("bob", "POST", f"/requests/{new['id']}/approve", {"spec_hash": new["spec_hash"]})
    good = make_job(
        inputs=[("data.csv", data), ("base.pt", model)], outputs=[("m.pt", hexdigest())]
    )
    bad = make_job(
        inputs=[("data.csv", other), ("base.pt", model)], outputs=[("n.pt", hexdigest())]
    )
    good = msgspec.structs.replace(good, request=new["id"])
    bad = msgspec.structs.replace(bad, request=new["id"])
    assert a.call("alice", "POST", "/ingest", batch(good, bad)).status_code == 200
    odd = msgspec.structs.replace(good, request="token=abc", started=good.started + 1)
    refused = a.call("alice", "POST", "/ingest", batch(odd))
    assert refused.status_code == 400 and "names no request id" in refused.json()["detail"]
    runs = a.ok("alice", "GET", f"/requests/{new['id']}")["runs"]
    flagged = {tuple(r["missing"]) for r in runs}
    assert flagged == {(), (data,)}, runs


def test_an_approval_expires(tmp_path: Path, keys: dict[str, Key]) -> None:
    db = make_database("sqlite", tmp_path)
    for name in ("alice", "bob"):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "add", name, "--key", keys[name].public_line],
            check=True,
            capture_output=True,
        )
    hook = Receiver()
    server = Server(db, tmp_path / "glaas.log", "--approval-ttl", "1s", "--webhook", hook.url)
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        new = a.ok("alice", "POST", "/requests", _spec(data, model))
        a.ok("bob", "POST", f"/requests/{new['id']}/approve", {"spec_hash": new["spec_hash"]})
        deadline = time.monotonic() + 60
        while a.ok("alice", "GET", f"/requests/{new['id']}")["state"] != "expired":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "cannot be claimed" in a.refused(409, "alice", f"/requests/{new['id']}/claim", {})
        events = a.ok("alice", "GET", f"/requests/{new['id']}")["events"]
        assert events[-1]["action"] == "expired" and events[-1]["actor"] is None
        deadline = time.monotonic() + 60
        while "expired" not in [e["action"] for e in hook.events()]:
            assert time.monotonic() < deadline, hook.events()
            time.sleep(0.1)
        told = [e for e in hook.events() if e["action"] == "expired"]
        assert len(told) == 1 and told[0]["text"].startswith(f"{new['id']} expired by the registry")
    finally:
        hook.close()
        assert server.stop() == 0
        drop_database(db)
    bad = subprocess.run(
        [GLAAS, "serve", "--db", db.url, "--approval-ttl", "soon"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "not a duration" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2


def test_webhooks_are_signed_and_a_failing_receiver_is_retried(
    api: tuple[Api, Database], receivers: tuple[Receiver, Receiver]
) -> None:
    a, db = api
    good, flaky = receivers
    data, model, _ = _artifacts(a)
    token = "ghp_PlantedSecret0123456789abcdefABCDEF99"
    mark = f"hook test {uuid.uuid4().int % 10**6}"  # both backends tell the same receivers
    new = a.ok("alice", "POST", "/requests", _spec(data, model, rationale=f"{mark} use {token}"))
    assert new["spec"]["rationale"] == f"{mark} use <redacted>"
    said = f"api_key=sk-live-4f9a8b7c6d5e4f3a2b1c and {token}"
    a.ok(
        "bob",
        "POST",
        f"/requests/{new['id']}/approve",
        {"spec_hash": new["spec_hash"], "comment": said},
    )

    def seen(receiver: Receiver) -> list[str]:
        return [e["action"] for e in receiver.events() if mark in e["request"]["spec"]["rationale"]]

    deadline = time.monotonic() + 60
    both = ["approved", "filed"]  # a retried delivery may arrive after a later one
    while sorted(seen(good)) != both or sorted(seen(flaky)) != both:
        assert time.monotonic() < deadline, (seen(good), seen(flaky))
        time.sleep(0.1)
    assert flaky.failures == 2  # the first two tries were refused and retried
    for headers, content in good.bodies:
        assert _signed(headers, content), headers
    approved = next(
        e
        for e in good.events()
        if mark in e["request"]["spec"]["rationale"] and e["action"] == "approved"
    )
    assert approved["text"].startswith(f"{new['id']} approved by bob: 8xH100")
    assert approved["text"].endswith("api_key=&lt;redacted&gt; and &lt;redacted&gt;")
    # a secret pasted into a rationale or comment is neither stored nor sent
    assert not any(b"PlantedSecret" in body or b"sk-live" in body for _, body in good.bodies)
    dump = db.raw_dump()
    assert b"8xH100" in dump  # the dump does hold the requests
    assert b"PlantedSecret" not in dump and b"sk-live" not in dump


def test_a_webhook_delivery_survives_a_restart_of_the_server(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """The receiver is down while the change is made and the server stops before it is back:
    the delivery, kept in the database, is made by the server started again."""
    db = make_database("sqlite", tmp_path)
    for name in ("alice", "bob"):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "add", name, "--key", keys[name].public_line],
            check=True,
            capture_output=True,
        )
    port = _free_port()  # nothing listens there yet
    hook = f"http://127.0.0.1:{port}/hook"
    server = Server(db, tmp_path / "glaas.log", "--webhook", hook, "--webhook-secret", SECRET)
    receiver = None
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        new = a.ok("alice", "POST", "/requests", _spec(data, model))
        deadline = time.monotonic() + 60
        while "webhook" not in (tmp_path / "glaas.log").read_text():  # a failed try, logged
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert server.stop() == 0
        receiver = Receiver(port=port)
        server = Server(db, tmp_path / "glaas.log", "--webhook", hook, "--webhook-secret", SECRET)
        deadline = time.monotonic() + 60
        while not receiver.bodies:
            assert time.monotonic() < deadline, (tmp_path / "glaas.log").read_text()
            time.sleep(0.1)
        [(headers, content)] = receiver.bodies
        assert json.loads(content)["request"]["id"] == new["id"]
        assert headers["X-Glaas-Event"] == "request.filed"
        assert _signed(headers, content), headers
    finally:
        assert server.stop() == 0
        if receiver is not None:
            receiver.close()
        drop_database(db)


def test_a_webhook_text_escapes_slack_mentions_and_links(
    api: tuple[Api, Database], receivers: tuple[Receiver, Receiver]
) -> None:
    """Slack reads `<!channel>` and `<http://x|label>` in `text` as a mention and a link: what a
    requester or commenter wrote is escaped there (&, <, > as &amp; &lt; &gt;, Slack's rule)."""
    a, _ = api
    good, _ = receivers
    data, model, _ = _artifacts(a)
    mark = f"slack {uuid.uuid4().int % 10**6}"
    spec = _spec(data, model, compute="8xH100 <!channel>", rationale=mark)
    new = a.ok("alice", "POST", "/requests", spec)
    said = "fine <http://evil.example|click here> & <@U024BE7LH>"
    a.ok("carol", "POST", f"/requests/{new['id']}/comment", {"comment": said})

    def texts() -> dict[str, str]:
        return {
            e["action"]: e["text"]
            for e in good.events()
            if e["request"]["spec"]["rationale"] == mark
        }

    deadline = time.monotonic() + 60
    while set(texts()) != {"filed", "commented"}:
        assert time.monotonic() < deadline, texts()
        time.sleep(0.1)
    told = texts()
    assert "8xH100 &lt;!channel&gt; for 3.2 h" in told["filed"]
    assert told["commented"].endswith(
        ": fine &lt;http://evil.example|click here&gt; &amp; &lt;@U024BE7LH&gt;"
    )
    for text in told.values():
        assert "<" not in text and ">" not in text
    assert (
        next(e for e in good.events() if e["request"]["spec"]["rationale"] == mark)["request"][
            "spec"
        ]["compute"]
        == "8xH100 <!channel>"
    )  # the data itself is kept as written


def test_control_and_bidi_characters_are_refused_in_what_people_write(
    api: tuple[Api, Database],
) -> None:
    """A terminal escape (`request show` prints the text to the reviewer's terminal) or a
    right-to-left override (the queue shows `budget 984` after the compute field, reversed)
    is refused; newlines and tabs in a rationale or comment are fine."""
    a, _ = api
    data, model, _ = _artifacts(a)
    hostile = ["\x1b[2J\x1b[1;1Happroved by bob", "x\u202e489 tegdub", "a\u2066b", "\x9b31m", "\r"]
    for text in hostile:
        for field in ("compute", "rationale"):
            r = a.call("alice", "POST", "/requests", _spec(data, model, **{field: f"8x {text}"}))
            assert r.status_code == 400 and "control character" in r.json()["detail"], r.text
    r = a.call("alice", "POST", "/requests", _spec(data, model, compute="8xH100\nreviewer: x"))
    assert r.status_code == 400, r.text
    new = a.ok("alice", "POST", "/requests", _spec(data, model, rationale="why:\n\t- because"))
    assert new["spec"]["rationale"] == "why:\n\t- because"
    for text in hostile:
        assert "control character" in a.refused(
            400, "carol", f"/requests/{new['id']}/comment", {"comment": text}
        )
    a.ok("carol", "POST", f"/requests/{new['id']}/comment", {"comment": "two\nlines"})


def test_a_webhook_does_not_carry_the_actors_private_runs(
    api: tuple[Api, Database], receivers: tuple[Receiver, Receiver]
) -> None:
    """The request the API answers is read as its actor (their private runs included); what
    goes to the team's channel must not be: a private run's command stays private."""
    a, _ = api
    good, _ = receivers
    data, model, _ = _artifacts(a)
    mark = f"private runs {uuid.uuid4().int % 10**6}"
    new = a.ok("alice", "POST", "/requests", _spec(data, model, rationale=mark))
    a.ok("bob", "POST", f"/requests/{new['id']}/approve", {"spec_hash": new["spec_hash"]})
    a.ok("alice", "POST", f"/requests/{new['id']}/claim", {})
    secret = f"python train.py --data /mnt/hidden-{uuid.uuid4().int % 10**6}"
    run = make_job(inputs=[("data.csv", data), ("base.pt", model)], command=secret)
    run = msgspec.structs.replace(run, request=new["id"])
    assert a.call("alice", "POST", "/ingest", batch(run)).status_code == 200  # private
    done = a.ok("alice", "POST", f"/requests/{new['id']}/complete", {"comment": "done"})
    assert [r["command"] for r in done["runs"]] == [secret]  # alice sees her own run
    assert a.ok("carol", "GET", f"/requests/{new['id']}")["runs"] == []  # carol does not

    def actions() -> list[str]:
        return [e["action"] for e in good.events() if e["request"]["spec"]["rationale"] == mark]

    deadline = time.monotonic() + 60
    while "completed" not in actions():
        assert time.monotonic() < deadline, actions()
        time.sleep(0.1)
    assert not any(secret.encode() in content for _, content in good.bodies)


def test_only_a_run_the_request_allows_is_linked_to_it(api: tuple[Api, Database]) -> None:
    """`run --request` is checked by roarctl, but anyone can send the registry a job that names
    a request: one naming a request never approved, or claimed by someone else, is registered
    but not linked (its cost and lineage are not the request's)."""
    a, _ = api
    data, model, _ = _artifacts(a)
    new = a.ok("alice", "POST", "/requests", _spec(data, model))
    rid = new["id"]

    def run(user: str, command: str) -> None:
        job = make_job(inputs=[("data.csv", data), ("base.pt", model)], command=command)
        job = msgspec.structs.replace(job, request=rid)
        sent = a.call(user, "POST", "/ingest", batch(job, visibility="public"))
        assert sent.status_code == 200, sent.text

    run("carol", "python early.py")  # still pending
    a.ok("bob", "POST", f"/requests/{rid}/approve", {"spec_hash": new["spec_hash"]})
    run("carol", "python meanwhile.py")  # approved, nobody claimed it: anyone may run for it
    a.ok("alice", "POST", f"/requests/{rid}/claim", {})
    run("carol", "python hijack.py")  # claimed by alice
    run("alice", "python train.py --for-it")
    runs = a.ok("bob", "GET", f"/requests/{rid}")["runs"]
    assert [(r["owner"], r["command"]) for r in runs] == [
        ("carol", "python meanwhile.py"),
        ("alice", "python train.py --for-it"),
    ], runs


class Trickler:
    """A receiver that answers 200 with a long body, one byte a second, until closed: each read
    comes well within a read timeout, the answer never ends."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.got.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not owner.stop.wait(1.0):
                    try:
                        self.wfile.write(b".")
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_receiver_that_never_finishes_does_not_hold_up_the_others(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """A try has one deadline for the whole answer (10 s), not only between its bytes: a
    receiver trickling an endless answer is given up on and the other deliveries go on."""
    db = make_database("sqlite", tmp_path)
    for name in ("alice", "bob"):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "add", name, "--key", keys[name].public_line],
            check=True,
            capture_output=True,
        )
    slow, good = Trickler(), Receiver()
    server = Server(db, tmp_path / "glaas.log", "--webhook", slow.url, "--webhook", good.url)
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        new = a.ok("alice", "POST", "/requests", _spec(data, model))
        deadline = time.monotonic() + 60
        while not slow.got:  # the slow receiver is answering, byte by byte
            assert time.monotonic() < deadline
            time.sleep(0.1)
        a.ok("alice", "POST", f"/requests/{new['id']}/comment", {"comment": "still there?"})
        deadline = time.monotonic() + 90
        while "commented" not in [e["action"] for e in good.events()]:
            assert time.monotonic() < deadline, (tmp_path / "glaas.log").read_text()
            time.sleep(0.2)
    finally:
        slow.close()
        good.close()
        assert server.stop() == 0
        drop_database(db)


def test_a_failing_webhook_is_logged_without_its_secret_url(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """A Slack-style webhook URL's last segment is its secret: the log says which hook failed
    without writing that down."""
    db = make_database("sqlite", tmp_path)
    for name in ("alice", "bob"):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "add", name, "--key", keys[name].public_line],
            check=True,
            capture_output=True,
        )
    token = "Zq8mW3vLp0sRt7YxKc2NbF5h"
    hook = f"http://127.0.0.1:{_free_port()}/services/T0AB12CD3/B0EF45GH6/{token}"  # no one there
    log = tmp_path / "glaas.log"
    server = Server(db, log, "--webhook", hook)
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        a.ok("alice", "POST", "/requests", _spec(data, model))
        deadline = time.monotonic() + 60
        while "tried again" not in log.read_text():  # a failed try, logged
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        assert server.stop() == 0
        drop_database(db)
    assert token not in log.read_text()


def _users(db: Database, keys: dict[str, Key]) -> None:
    for name in ("alice", "bob"):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "user", "add", name, "--key", keys[name].public_line],
            check=True,
            capture_output=True,
        )


def _wait(what: Any, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_a_webhook_signature_covers_its_delivery_id_and_time(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """A captured delivery cannot be replayed: the README's receiver accepts what the registry
    sent, and refuses it with the timestamp or the delivery id changed, or once it is stale
    (signed right, but 5 minutes old). Each delivery has its own id, the same on its retries."""
    db = make_database("sqlite", tmp_path)
    _users(db, keys)
    flaky = Receiver(fail_first=2)  # the first delivery is tried three times
    log = tmp_path / "glaas.log"
    server = Server(db, log, "--webhook", flaky.url, "--webhook-secret", SECRET)
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        new = a.ok("alice", "POST", "/requests", _spec(data, model))
        a.ok("alice", "POST", f"/requests/{new['id']}/comment", {"comment": "soon?"})
        _wait(lambda: sorted(e["action"] for e in flaky.events()) == ["commented", "filed"], log)
    finally:
        flaky.close()
        assert server.stop() == 0
        drop_database(db)
    for headers, content in flaky.bodies:
        assert _signed(headers, content), headers
        delivery, sent = headers["X-Glaas-Delivery"], int(headers["X-Glaas-Timestamp"])
        assert abs(time.time() - sent) < 120
        assert not _signed({**headers, "X-Glaas-Timestamp": str(sent + 1)}, content)
        assert not _signed({**headers, "X-Glaas-Timestamp": str(sent - 1)}, content)
        assert not _signed(
            {**headers, "X-Glaas-Delivery": delivery[:-1] + ("1" if delivery[-1] == "0" else "0")},
            content,
        )
        assert not _signed({**headers, "X-Glaas-Delivery": "1"}, content)
        assert not _signed(headers, content + b" ")
        assert not verify(b"another secret", headers, content)
        # what an eavesdropper kept, sent again 6 minutes later: refused though signed right
        old = str(sent - 360)
        signed = f"{delivery}.{old}.".encode() + content
        again = {
            **headers,
            "X-Glaas-Timestamp": old,
            "X-Glaas-Signature": "sha256="
            + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest(),
        }
        assert not _signed(again, content)
        assert verify(SECRET.encode(), again, content, tolerance=3600)  # only its age refused
    # two deliveries, four tries (two refused): a retry keeps its delivery's id, signed anew
    tries: dict[str, list[int]] = {}
    for _, h in flaky.tries:
        tries.setdefault(h["X-Glaas-Delivery"], []).append(int(h["X-Glaas-Timestamp"]))
    assert len(flaky.tries) == 4 and len(tries) == 2, tries
    assert {h["X-Glaas-Delivery"] for h, _ in flaky.bodies} == set(tries)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in tries)
    retried = max(tries.values(), key=len)
    assert len(retried) >= 2 and retried == sorted(retried) and retried[-1] > retried[0]


def test_a_webhook_url_without_a_scheme_is_refused_without_being_shown(tmp_path: Path) -> None:
    """`glaas serve --webhook hooks.slack.com/services/...` (no https://) is refused; the
    message says which --webhook, not its secret path (service logs keep what it prints)."""
    token = "Zq8mW3vLp0sRt7YxKc2NbF5h"
    bad = subprocess.run(
        [GLAAS, "serve", "--db", f"sqlite://{tmp_path / 'g.db'}", "--webhook", "https://ok.example",
         "--webhook", f"hooks.slack.com/services/T0AB12CD3/B0EF45GH6/{token}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "webhook 2 is not an http(s) URL" in bad.stderr, bad.stderr
    assert token not in bad.stderr and "/services/" not in bad.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_webhook_url_is_not_stored_nor_logged(
    backend: str, tmp_path: Path, keys: dict[str, Key]
) -> None:
    """A Slack-style hook URL's path is its secret: once a delivery is made, neither the
    database's files (SQLite) or data (PostgreSQL) nor the log holds it; the delivery's row
    names the hook as `scheme://host [hash of the URL]`."""
    db = make_database(backend, tmp_path)
    _users(db, keys)
    token = "Zq8mW3vLp0sRt7YxKc2NbF5h"
    receiver = Receiver()
    port = receiver.server.server_address[1]
    hook = f"http://127.0.0.1:{port}/services/T0AB12CD3/B0EF45GH6/{token}"
    dead = f"http://127.0.0.1:{_free_port()}/services/T0AB12CD3/B0EF45GH7/Dead{token}"
    log = tmp_path / "glaas.log"
    server = Server(db, log, "--webhook", hook, "--webhook", dead)
    try:
        a = Api(server, keys)
        data, model, _ = _artifacts(a)
        a.ok("alice", "POST", "/requests", _spec(data, model))
        _wait(lambda: bool(receiver.bodies) and "tried again" in log.read_text(), log)
        assert [path for path, _ in receiver.tries] == [f"/services/T0AB12CD3/B0EF45GH6/{token}"]
        # the receiver has it before the server marks it done
        done = "SELECT 1 FROM webhook_deliveries WHERE done IS NOT NULL"
        _wait(lambda: bool(sql(db, done)), log)
        rows = sql(db, "SELECT hook, delivery, done FROM webhook_deliveries")
        names = {
            f"http://127.0.0.1:{url.split('/')[2].split(':')[1]} "
            f"[{hashlib.sha256(url.encode()).hexdigest()[:12]}]": url
            for url in (hook, dead)
        }
        assert {r[0] for r in rows} == set(names)
        [made] = [r for r in rows if names[r[0]] == hook]
        assert made[1] == receiver.tries[0][1]["X-Glaas-Delivery"] and made[2] is not None
        assert b"request.filed" in db.raw_dump()
    finally:
        receiver.close()
        assert server.stop() == 0
        try:
            dump = db.raw_dump()
        finally:
            drop_database(db)
    assert b"8xH100" in dump  # the dump does hold the deliveries' bodies
    assert token.encode() not in dump and b"/services/" not in dump
    said = log.read_text()
    assert "webhook http://127.0.0.1:" in said and token not in said and "/services/" not in said


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_deliveries_kept_by_a_schema_6_registry_lose_their_urls_and_are_still_made(
    backend: str, tmp_path: Path
) -> None:
    """Migration 7 rewrites the URLs of the deliveries a registry kept before it: the one not
    yet made reaches its hook (the SQL of the PostgreSQL migration names it as the server does),
    signed with a new delivery id, and no URL's secret is left in the database."""

    from glaas.store.migrate import migrations

    db = make_database(backend, tmp_path)
    token, other = "Zq8mW3vLp0sRt7YxKc2NbF5h", "Old0sRt7YxKc2NbF5hZq8mW3"
    receiver = Receiver()
    port = receiver.server.server_address[1]
    hook = f"http://127.0.0.1:{port}/services/T0AB12CD3/B0EF45GH6/{token}"
    gone = f"https://user:pw@hooks.example.org/services/T0AB12CD3/B0EF45GH6/{other}"
    rows = [
        ("INSERT INTO webhook_deliveries (url, event, body, created, next_at) "
         f"VALUES ('{hook}', 'request.filed', '{{\"text\": \"kept\"}}', 1, 1)"),
        ("INSERT INTO webhook_deliveries (url, event, body, created, next_at, attempts, done) "
         f"VALUES ('{gone}', 'request.filed', '{{\"text\": \"made\"}}', 1, 1, 1, 2)"),
    ]  # fmt: skip
    try:
        at_schema(db, backend, 6, rows)
        assert token.encode() in db.raw_dump()  # the test can see one where it is
        migrated = subprocess.run(
            [GLAAS, "admin", "--db", db.url, "migrate"], capture_output=True, text=True
        )
        assert migrated.stdout.strip() == f"schema version {len(migrations(backend))}"
        dump = db.raw_dump()  # rewritten: not even left in the file's free space
        assert b"kept" in dump and b"made" in dump
        for secret in (token, other, "user:pw", "/services/"):
            assert secret.encode() not in dump, secret
        log = tmp_path / "glaas.log"
        server = Server(db, log, "--webhook", hook, "--webhook-secret", SECRET)
        try:
            _wait(lambda: bool(receiver.bodies), log)
            [(headers, content)] = receiver.bodies
            assert json.loads(content) == {"text": "kept"}
            assert _signed(headers, content)
            kept = sql(db, "SELECT hook, delivery, done FROM webhook_deliveries ORDER BY id")
        finally:
            assert server.stop() == 0
        digests = [hashlib.sha256(u.encode()).hexdigest()[:12] for u in (hook, gone)]
        assert [k[0] for k in kept] == [
            f"http://127.0.0.1:{port} [{digests[0]}]",
            f"https://hooks.example.org [{digests[1]}]",
        ]
        assert kept[0][1] == headers["X-Glaas-Delivery"] and len({k[1] for k in kept}) == 2
        assert all(len(k[1]) == 32 for k in kept) and all(k[2] for k in kept)
        dump = db.raw_dump()
        assert b"kept" in dump and b"made" in dump
        for secret in (token, other, "user:pw", "/services/"):
            assert secret.encode() not in dump, secret
    finally:
        receiver.close()
        drop_database(db)


def _count_sql(db: Database, statement: str) -> int:
    """One number from the registry's database, behind the server's back."""
    return int(sql(db, statement)[0][0])


def test_a_run_that_takes_a_request_over_budget_flags_it_and_tells_the_webhook_once(
    api: tuple[Api, Database], receivers: tuple[Receiver, Receiver]
) -> None:
    """Prices cpu 1/h and gpu:H100 4/h; budget 10. Run 1: 0.5 CPU-h + 2 GPU-h = 8.50 spent;
    run 2: + 1 CPU-h = 9.50, still within; run 3: + 0.25 GPU-h = 10.50, over: flagged, one
    over_budget event and one request.over_budget delivery per URL; run 4 and run 3 again
    (already registered) flag nothing more. The report by request has the same sum."""
    a, db = api
    good, flaky = receivers
    for resource, per_hour in (("cpu", "1/h"), ("gpu:H100", "4/h"), ("gpu", "100/h")):
        subprocess.run(
            [GLAAS, "admin", "--db", db.url, "price", "set", resource, per_hour],
            check=True,
            capture_output=True,
        )
    data, model, _ = _artifacts(a)
    mark = f"budget test {uuid.uuid4().int % 10**6}"  # both backends tell the same receivers
    spec = _spec(data, model, budget=10, rationale=mark, compute="8xH100 <!channel>")
    new = a.ok("alice", "POST", "/requests", spec)
    rid, path = new["id"], f"/requests/{new['id']}"
    assert (new["spent"], new["over_budget"]) == (0.0, False)
    a.ok("bob", "POST", f"{path}/approve", {"spec_hash": new["spec_hash"]})
    a.ok("alice", "POST", f"{path}/claim", {})

    def run(cpu_seconds: float, gpu_seconds: float) -> Any:
        started = time.time() - 3600  # in the report's window; each run later than the last
        job = make_job(inputs=[("data.csv", data), ("base.pt", model)], started=started)
        usage = registry_model.Usage(
            cpu_seconds=float(cpu_seconds),
            user_seconds=float(cpu_seconds),
            max_rss_bytes=1 << 20,
            wall_seconds=3600.0,
            gpus=2 if gpu_seconds else 0,
            gpu_model="NVIDIA H100 80GB HBM3" if gpu_seconds else None,
            gpu_seconds=float(gpu_seconds),
        )
        return msgspec.structs.replace(job, request=rid, usage=usage)

    def register(*jobs: Any) -> dict[str, Any]:
        r = a.call("alice", "POST", "/ingest", batch(*jobs, visibility="public"))
        assert r.status_code == 200, r.text
        return a.ok("carol", "GET", path)

    def over_events(entry: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in entry["events"] if e["action"] == "over_budget"]

    shown = register(run(1800, 7200))
    assert shown["spent"] == pytest.approx(0.5 * 1 + 2 * 4) and shown["over_budget"] is False
    shown = register(run(3600, 0))
    assert shown["spent"] == pytest.approx(9.5) and not over_events(shown)
    third = run(0, 900)
    shown = register(third)
    assert shown["spent"] == pytest.approx(10.5) and shown["over_budget"] is True
    [over] = over_events(shown)
    assert over["actor"] is None and over["state"] == "claimed"
    assert (
        over["comment"]
        == f"spent 10.50 of budget 10: run {shown['runs'][-1]['job'][:12]} took it over"
    )
    shown = register(run(36, 0), third)  # more, and the one that crossed again: no new mark
    assert shown["spent"] == pytest.approx(10.51) and len(over_events(shown)) == 1
    assert shown["state"] == "claimed"  # the flag moves nothing
    listed = a.ok("bob", "GET", "/requests?state=claimed")["requests"]
    assert next(r for r in listed if r["id"] == rid)["over_budget"] is True
    report = a.ok("alice", "GET", "/compute?by=request&since=30d")
    row = next(r for r in report["rows"] if r["key"] == rid)
    assert row["jobs"] == 4 and row["cost"] == pytest.approx(10.51)

    # the webhook: one request.over_budget per URL, kept once in the database, delivered once
    kept = _count_sql(
        db,
        "SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'request.over_budget' "
        f'AND body LIKE \'%"id":"{rid}"%\'',
    )
    assert kept == 2  # good and flaky

    def told(receiver: Receiver) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [
            (h, json.loads(b))
            for h, b in receiver.bodies
            if mark in b.decode() and json.loads(b)["action"] == "over_budget"
        ]

    deadline = time.monotonic() + 60
    while len(told(good)) < 1 or len(told(flaky)) < 1:
        assert time.monotonic() < deadline, (
            [(e["action"], e["request"]["id"]) for e in good.events()],
            [(e["action"], e["request"]["id"]) for e in flaky.events()],
            _count_sql(db, "SELECT COUNT(*) FROM webhook_deliveries WHERE done IS NULL"),
        )
        time.sleep(0.1)
    for receiver in (good, flaky):
        [(headers, body)] = told(receiver)
        assert headers["X-Glaas-Event"] == "request.over_budget"
        assert body["text"] == (
            f"{rid} went over budget: {over['comment']} (8xH100 &lt;!channel&gt; for 3.2 h); "
            "requested by alice, reviewer bob; now claimed"
        )
        assert body["request"]["over_budget"] is True
        assert body["request"]["spent"] == pytest.approx(10.5)
    assert (
        _count_sql(
            db,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'request.over_budget' "
            f'AND body LIKE \'%"id":"{rid}"%\' AND done IS NOT NULL AND error IS NULL',
        )
        == 2
    )


def test_two_registrations_at_once_that_together_go_over_budget_mark_it_once(
    api: tuple[Api, Database],
) -> None:
    """Each run costs 6 (1.5 GPU-h at gpu:H100 4/h) of a budget of 10: alone neither is over,
    together they are. Registered from two threads at once (by two people), into the two
    workers: the request is marked exactly once, and one over_budget delivery is kept per URL."""
    a, db = api
    subprocess.run(
        [GLAAS, "admin", "--db", db.url, "price", "set", "gpu:H100", "4/h"],
        check=True,
        capture_output=True,
    )
    data, model, _ = _artifacts(a)
    for attempt in range(3):  # three races, each on a request of its own
        new = a.ok("alice", "POST", "/requests", _spec(data, model, budget=10))
        rid = new["id"]
        # approved, claimed by nobody: anyone's run for it is linked
        a.ok("bob", "POST", f"/requests/{rid}/approve", {"spec_hash": new["spec_hash"]})
        runs = []
        for who in ("alice", "carol"):
            job = make_job(inputs=[("data.csv", data)], started=time.time() - 60)
            usage = registry_model.Usage(
                cpu_seconds=0.0,
                max_rss_bytes=1 << 20,
                wall_seconds=2700.0,
                gpus=2,
                gpu_model="NVIDIA H100 SXM",
                gpu_seconds=5400.0,
            )
            runs.append((who, msgspec.structs.replace(job, request=rid, usage=usage)))
        answers: list[httpx.Response] = []
        start = threading.Barrier(2)

        def register(
            who: str, job: Any, start: threading.Barrier, answers: list[httpx.Response]
        ) -> None:
            body = batch(job, visibility="public")
            start.wait()
            answers.append(a.call(who, "POST", "/ingest", body))

        threads = [threading.Thread(target=register, args=(*run, start, answers)) for run in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        shown = a.ok("bob", "GET", f"/requests/{rid}")
        assert shown["spent"] == pytest.approx(12.0) and shown["over_budget"] is True
        marks = [e for e in shown["events"] if e["action"] == "over_budget"]
        assert len(marks) == 1, (attempt, shown["events"])
        kept = _count_sql(
            db,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'request.over_budget' "
            f'AND body LIKE \'%"id":"{rid}"%\'',
        )
        assert kept == 2, attempt  # one per URL
    # a new revision with a larger budget clears the mark: going over that one is told again
    revised = a.ok("alice", "POST", f"/requests/{rid}/revisions", _spec(data, model, budget=20))
    assert (revised["spent"], revised["over_budget"]) == (pytest.approx(12.0), False)
    for expected, told in ((18.0, 1), (24.0, 2)):
        job = make_job(inputs=[("data.csv", data)], started=time.time() - 60)
        job = msgspec.structs.replace(job, request=rid, usage=runs[0][1].usage)
        r = a.call("alice", "POST", "/ingest", batch(job, visibility="public"))
        assert r.status_code == 200, r.text
        shown = a.ok("bob", "GET", f"/requests/{rid}")
        assert shown["spent"] == pytest.approx(expected)
        assert [e["action"] for e in shown["events"]].count("over_budget") == told
    assert shown["events"][-1]["comment"].startswith("spent 24.00 of budget 20: run ")
