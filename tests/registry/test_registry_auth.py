"""Who may do what, on both backends: refused signatures get 401 with the reason (unsigned
write, replayed, tampered body or path, expired, wrong namespace, unknown key, malformed), and a
record is never readable by someone it was not shared with, through any read path."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import msgspec
import pytest
from registry_support import (
    Client,
    Database,
    Key,
    batch,
    glaas_admin,
    hexdigest,
    make_job,
    new_session,
)

from roar import registry, sshsig

pytest_plugins = ["registry_support"]  # the fixtures


def _problem(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]


def _signed(client: Client, user: Key, method: str, url: str, sent: bytes, **kw: Any) -> Any:
    """A request carrying `sent`, signed over kw's path/body/sign/now where given."""
    req = client.http.build_request(method, url, content=sent)
    req.headers["Authorization"] = registry.authorization(
        kw.pop("sign", user.sign), method, kw.pop("path", url), "", kw.pop("body", sent), **kw
    )
    return req


def test_refused_signatures_say_why(client: Client, keys: dict[str, Key]) -> None:
    body = msgspec.json.encode(batch(make_job(outputs=[("x", hexdigest())])))
    url = f"{registry.API}/ingest"
    alice = keys["alice"]

    _problem(client.request("POST", url, None, body), 401, "must be signed")

    req = _signed(client, alice, "POST", url, body)
    assert client.http.send(req).status_code == 200
    _problem(client.http.send(req), 401, "replayed")

    tampered = _signed(client, alice, "POST", url, body.replace(b'"x"', b'"y"'), body=body)
    _problem(client.http.send(tampered), 401, "does not match")
    other_path = _signed(client, alice, "GET", f"{registry.API}/auth/me", b"", path="/other")
    _problem(client.http.send(other_path), 401, "does not match")

    for skew in (-301, 301):
        stale = _signed(client, alice, "POST", url, body, now=time.time() + skew)
        _problem(client.http.send(stale), 401, "expired")

    git = sshsig.key_file_signer("git", str(alice.path))[1]
    _problem(
        client.http.send(_signed(client, alice, "POST", url, body, sign=git)), 401, "namespace"
    )

    stranger = keys["mallory"]
    _problem(client.http.send(_signed(client, stranger, "POST", url, body)), 401, "unknown key")

    for header in ("Bearer abc", "SSHSIG t=1,s=abc", "SSHSIG t=1,n=00112233445566778899,s=!!"):
        req = client.http.build_request("GET", f"{registry.API}/auth/me")
        req.headers["Authorization"] = header
        _problem(client.http.send(req), 401, "malformed")
    assert client.get("/health").status_code == 200  # unsigned reads are fine


def _reencoded(header: str) -> str:
    """The same signature in another SSHSIG blob: its unsigned `reserved` field filled in."""
    t, n, blob = registry.parse_authorization(header) or (0, "", b"")
    p = sshsig.parse(blob)
    inner = _string(p.sig_alg.encode()) + _string(p.sig)
    other = (
        sshsig.MAGIC
        + struct.pack(">I", sshsig.VERSION)
        + b"".join(
            _string(f) for f in (p.key.blob, p.namespace.encode(), b"x", p.hash_alg.encode(), inner)
        )
    )
    assert other != blob
    return f"SSHSIG t={t},n={n},s={base64.b64encode(other).decode()}"


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def test_a_captured_request_is_not_accepted_again_in_another_envelope(
    client: Client, keys: dict[str, Key]
) -> None:
    """Whoever saw a signed `auth web-link` request must not get a login link of their own by
    sending it again with the signature wrapped differently (each signed message counts once)."""
    url = f"{registry.API}/auth/web-link"
    req = _signed(client, keys["alice"], "POST", url, b"")
    assert client.http.send(req).status_code == 200
    again = client.http.build_request("POST", url, content=b"")
    again.headers["Authorization"] = _reencoded(req.headers["Authorization"])
    _problem(client.http.send(again), 401, "replayed")


def test_auth_me_names_the_signer(client: Client, keys: dict[str, Key]) -> None:
    me = msgspec.json.decode(client.get("/auth/me", "alice").content, type=registry.Me)
    assert me.user == "alice" and me.teams == ["ml"] and me.key == keys["alice"].public.fingerprint
    assert me.default_visibility == "private"
    carol = msgspec.json.decode(client.get("/auth/me", "carol").content, type=registry.Me)
    assert carol.teams == []
    _problem(client.get("/auth/me"), 401, "must be signed")


def _paths(session: str, job: str, digest: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"/jobs/{job}", {}),
        (f"/jobs/{job[:8]}", {}),
        (f"/artifacts/{digest}", {}),
        (f"/artifacts/{digest[:8]}", {}),
        (f"/sessions/{session}", {}),
        (f"/sessions/{session[:8]}/dag", {}),
        (f"/lineage/{digest}", {}),
        (f"/lineage/{digest}", {"direction": "down"}),
        (f"/lineage/{job}", {}),
    ]


def test_a_private_record_is_not_found_by_anyone_else(client: Client) -> None:
    session = new_session()
    raw, out = hexdigest(), hexdigest()
    job = make_job(inputs=[("raw.csv", raw)], outputs=[("secret-model.pt", out)])
    ids = client.ingest(batch(job, session=session), "alice").json()["ids"]
    for path, params in _paths(session.hash, ids[0], out):
        assert client.get(path, "alice", **params).status_code == 200, path
        for reader in (None, "bob", "carol"):
            r = client.get(path, reader, **params)
            _problem(r, 404, "no ")
    for q in (ids[0][:10], out[:10], session.hash[:10], raw[:10]):
        assert client.get("/search", "alice", q=q).json()["matches"]
        for reader in (None, "bob", "carol"):
            assert client.get("/search", reader, q=q).json()["matches"] == [], q


def test_team_records_are_read_by_the_team_only(client: Client) -> None:
    out = hexdigest()
    ids = client.ingest(batch(make_job(outputs=[("m", out)]), visibility="team"), "alice")
    job = ids.json()["ids"][0]
    assert client.get(f"/jobs/{job}", "bob").json()["team"] == "ml"
    assert client.get(f"/artifacts/{out}", "bob").status_code == 200
    for reader in (None, "carol"):
        assert client.get(f"/jobs/{job}", reader).status_code == 404
        assert client.get(f"/artifacts/{out}", reader).status_code == 404
    _problem(client.ingest(batch(make_job(), visibility="team"), "carol"), 400, "no team")
    named = batch(make_job(), visibility="team", team="other")
    _problem(client.ingest(named, "alice"), 400, "not in team")


def test_lineage_does_not_pass_through_what_you_cannot_see(client: Client) -> None:
    """Bob's public job read a file that Alice's private job wrote: Bob's lineage of his output
    stops at that file, and the file does not say who made it."""
    raw, shared, result = hexdigest(), hexdigest(), hexdigest()
    hidden = make_job(inputs=[("raw.csv", raw)], outputs=[("features.npy", shared)])
    hidden_id = client.ingest(batch(hidden), "alice").json()["ids"][0]
    public = make_job(inputs=[("features.npy", shared)], outputs=[("result.json", result)])
    public_id = client.ingest(batch(public, visibility="public"), "bob").json()["ids"][0]

    for reader in (None, "bob", "carol"):
        up = msgspec.json.decode(
            client.get(f"/lineage/{result}", reader, depth=5).content, type=registry.Graph
        )
        assert [j.id for j in up.jobs] == [public_id]
        assert {a.hash for a in up.artifacts} == {shared, result}
        entry = client.get(f"/artifacts/{shared}", reader).json()
        assert entry["made_by"] == [] and entry["read_by"] == [public_id]
        down = client.get(f"/lineage/{raw}", reader, direction="down")
        assert down.status_code == 404
    full = msgspec.json.decode(
        client.get(f"/lineage/{result}", "alice", depth=5).content, type=registry.Graph
    )
    assert {j.id for j in full.jobs} == {public_id, hidden_id}
    assert {a.hash for a in full.artifacts} == {raw, shared, result}


def test_the_default_visibility_is_the_admins(client: Client, database: Database) -> None:
    assert glaas_admin(database, "visibility").strip() == "private"
    glaas_admin(database, "visibility", "public")
    try:
        job = client.ingest(batch(make_job(outputs=[("p", hexdigest())])), "alice").json()
        assert client.get(f"/jobs/{job['ids'][0]}").json()["visibility"] == "public"
    finally:
        glaas_admin(database, "visibility", "private")


@pytest.mark.parametrize("size", [registry.MAX_BATCH + 1])
def test_a_batch_has_a_limit(client: Client, size: int) -> None:
    job = make_job()
    big = batch(*[job] * size)
    _problem(client.ingest(big, "alice"), 400, "at most")
