"""The web pages, in-process on both backends: search (full, prefix, ambiguous, unknown, not a
hash), the artifact, job and session pages, the login (a signed request's one-time link, the
session cookie, its expiry, CSRF on sign-out), visibility (what is not yours reads as not found
on every page), hostile text kept as text, and the headers."""

from __future__ import annotations

import re
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
    sql,
)

from glaas import login
from roar import model, registry

pytest_plugins = ["registry_support"]  # the fixtures

HOSTILE = "<script>alert('x')</script>\"'><img src=x onerror=alert(1)>"


def web_link(client: Client, user: str) -> dict[str, Any]:
    r = client.request("POST", f"{registry.API}/auth/web-link", user)
    assert r.status_code == 200, r.text
    link: dict[str, Any] = msgspec.json.decode(r.content)
    return link


def sign_in(client: Client, user: str) -> str:
    """The session cookie a one-time link of `user`'s gives."""
    link = web_link(client, user)
    r = client.http.get(link["url"], follow_redirects=False)
    client.http.cookies.clear()
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    m = re.match(rf"{login.COOKIE}=([A-Za-z0-9_-]+);", r.headers["set-cookie"])
    assert m is not None, r.headers["set-cookie"]
    return m.group(1)


def get(client: Client, path: str, cookie: str | None = None, **kw: Any) -> Any:
    headers = {"Cookie": f"{login.COOKIE}={cookie}"} if cookie else {}
    return client.http.get(path, headers=headers, follow_redirects=False, **kw)


def _ids(client: Client, data: registry.Batch, user: str = "alice") -> list[str]:
    r = client.ingest(data, user)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()["ids"]
    return ids


# ---------------------------------------------------------------- search and pages


def test_search_finds_by_hash_or_prefix_and_says_what_to_try(client: Client) -> None:
    raw, clean = hexdigest(), hexdigest()
    session = new_session()
    [job] = _ids(client, batch(
        make_job([("raw.csv", raw)], [("clean.csv", clean)]), session=session, visibility="public"
    ))  # fmt: skip
    for q, where in (
        (clean, f"/artifacts/{clean}"),
        (clean[:8].upper() + "  ", f"/artifacts/{clean}"),
        (job[:10], f"/jobs/{job}"),
        (session.hash, f"/sessions/{session.hash}"),
    ):
        r = get(client, "/search", params={"q": q})
        assert (r.status_code, r.headers["location"]) == (303, where)

    twins = ["abcdef" + hexdigest()[6:] for _ in range(2)]
    _ids(client, batch(make_job(outputs=[("a", twins[0]), ("b", twins[1])]), visibility="public"))
    r = get(client, "/search", params={"q": "abcdef"})
    assert r.status_code == 200 and "records start with" in r.text
    for t in twins:
        assert f'href="/artifacts/{t}"' in r.text

    r = get(client, "/search", params={"q": "0123456789" * 3})
    assert r.status_code == 404 and "Nothing you can read matches" in r.text
    assert "roarctl auth web" in r.text and "roarctl register" in r.text

    for bad in ("hello", "abc", "<script>"):
        r = get(client, "/search", params={"q": bad})
        assert r.status_code == 400 and "not a hash or id" in r.text
        assert "<script>" not in r.text.split("<main>", 1)[1]
    assert get(client, "/search", params={"q": " "}).headers["location"] == "/"

    # a page's URL takes a prefix too (and says where the full one is)
    assert get(client, f"/jobs/{job[:12]}").headers["location"] == f"/jobs/{job}"
    assert get(client, "/artifacts/abcdef").status_code == 409  # ambiguous: the candidates
    assert get(client, "/jobs/not-hex").status_code == 400
    r = get(client, "/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    r = get(client, f"{registry.API}/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_the_pages_of_an_artifact_a_job_and_a_session(client: Client) -> None:
    raw, clean, model_, metrics, code = (hexdigest() for _ in range(5))
    session = new_session()
    prep = make_job([("raw.csv", raw), ("prep.py", code)], [("clean.csv", clean)], "python prep.py")
    train = make_job([("clean.csv", clean)], [("model.pkl", model_)], "python train.py --lr 0.1")
    evaluate = make_job([("model.pkl", model_)], [("metrics.json", metrics)], "python eval.py")
    train.context.git = model.GitState(
        root=train.cwd,
        commit="c" * 40,
        branch="main",
        remotes={"origin": "https://github.com/example/proj.git"},
        dirty=[model.DirtyFile("train.py", "modified", hexdigest())],
        clean=False,
    )
    for n, j in enumerate((prep, train, evaluate), 1):
        j.step, j.started, j.ended = n, 1.75e9 + n, 1.75e9 + n + 2.5
    ids = _ids(client, batch(prep, train, evaluate, session=session, visibility="public"))

    r = get(client, f"/artifacts/{metrics}")
    assert r.status_code == 200
    page = r.text
    assert metrics in page and "metrics.json" in page
    assert f"roarctl reproduce {metrics}" in page
    assert f'href="/jobs/{ids[2]}"' in page  # made by
    sources = page.split('id="sources"')[1].split("Lineage around it")[0]
    assert raw in sources and code in sources and clean not in sources  # inputs --unsourced
    assert f'data-key="a{metrics}"' in page and f'data-key="j{ids[2]}"' in page  # the graph

    page = get(client, f"/jobs/{ids[1]}").text
    assert "python train.py --lr 0.1" in page and "2.50 s" in page
    assert f'href="https://github.com/example/proj/commit/{"c" * 40}"' in page
    assert "train.py" in page.split("uncommitted file")[1]
    assert f'href="/artifacts/{clean}"' in page and f'href="/artifacts/{model_}"' in page
    assert f'href="/jobs/{ids[0]}"' in page  # who made its input
    assert f'href="/sessions/{session.hash}"' in page

    page = get(client, f"/sessions/{session.hash}").text
    assert page.count('class="n job') == 3
    steps = page.split('aria-label="Steps of this session"')[1]
    for i, name in zip(ids, ("prep.py", "train.py", "eval.py"), strict=True):
        assert f'href="/jobs/{i}"' in steps and name in steps
    assert "superseded" not in steps and "stale" not in steps


def test_a_session_marks_superseded_and_stale_steps_and_folds_big_nodes(client: Client) -> None:
    raw, old, new, model_ = (hexdigest() for _ in range(4))
    session = new_session()
    prep = make_job([("raw.csv", raw)], [("clean.csv", old)], "python prep.py")
    train = make_job([("clean.csv", old)], [("model.pkl", model_)], "python train.py")
    again = make_job([("raw.csv", raw)], [("clean.csv", new)], "python prep.py --fixed")
    many = make_job([("model.pkl", model_)], [(f"plots/{i}.png", hexdigest()) for i in range(9)])
    for started, step, j in ((1, 1, prep), (2, 2, train), (3, 1, again), (4, 3, many)):
        j.started, j.step = 1.75e9 + started, step
    ids = _ids(client, batch(prep, train, again, many, session=session, visibility="public"))

    page = get(client, f"/sessions/{session.hash}").text
    assert re.search(rf'class="n job superseded" data-key="j{ids[0]}"', page)
    assert re.search(rf'class="n job stale" data-key="j{ids[1]}"', page)
    assert "@1 re-ran and changed clean.csv" in page
    assert re.search(rf'class="n job" data-key="j{ids[2]}"', page)
    # 9 leaves of one job: 3 shown, 6 folded; the fold's link opens them
    assert page.count('class="n artifact"') == 4 + 3
    m = re.search(r'<a href="([^"]+)" class="n more"', page)
    assert m is not None and "+6 more outputs" in page
    expanded = get(client, m.group(1).replace("&amp;", "&")).text
    assert expanded.count('class="n artifact"') == 4 + 9 and 'class="n more"' not in expanded
    # the list beside the graph has every file, folded or not
    steps = page.split('aria-label="Steps of this session"')[1]
    assert steps.count("plots/") == 9


# ---------------------------------------------------------------- login and visibility


def test_a_one_time_link_opens_a_session_once(client: Client, database: Database) -> None:
    r = client.request("POST", f"{registry.API}/auth/web-link")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"

    link = web_link(client, "alice")
    assert link["expires"] - time.time() == pytest.approx(login.LINK_TTL, abs=30)
    token = link["url"].rsplit("/", 1)[1]
    assert link["url"] == f"http://testserver.local/login/{token}"
    r = client.http.get(link["url"], follow_redirects=False)
    client.http.cookies.clear()
    cookie = r.headers["set-cookie"]
    assert r.status_code == 303
    for part in ("HttpOnly", "SameSite=lax", f"Max-Age={login.SESSION_TTL}", "Path=/"):
        assert part.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https public URLs get Secure
    value = cookie.split(";")[0].split("=", 1)[1]
    assert "signed in as <strong>alice</strong>" in get(client, "/", value).text

    again = client.http.get(link["url"], follow_redirects=False)
    assert again.status_code == 400 and "already used" in again.text
    assert "set-cookie" not in again.headers
    assert get(client, "/login/not-a-token").status_code == 400

    late = web_link(client, "alice")
    sql(database, "UPDATE web_links SET expires = 1")
    assert client.http.get(late["url"], follow_redirects=False).status_code == 400

    # the database holds digests of the tokens, never the tokens
    dump = database.raw_dump()
    assert token.encode() not in dump and value.encode() not in dump

    # a session ends when it expires
    sql(database, "UPDATE web_sessions SET expires = 1")
    assert "signed in" not in get(client, "/", value).text


def test_signing_out_needs_the_csrf_token_and_ends_the_session(client: Client) -> None:
    cookie = sign_in(client, "alice")
    page = get(client, "/", cookie).text
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert m is not None
    token = m.group(1)
    headers = {"Cookie": f"{login.COOKIE}={cookie}"}

    for form in ({}, {"csrf": "0" * 64}, {"csrf": login.csrf_token(sign_in(client, "bob"))}):
        r = client.http.post("/logout", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403, form
        assert "signed in as <strong>alice</strong>" in get(client, "/", cookie).text
    anonymous = client.http.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert anonymous.status_code == 403

    r = client.http.post("/logout", data={"csrf": token}, headers=headers, follow_redirects=False)
    client.http.cookies.clear()
    assert r.status_code == 303 and f'{login.COOKIE}=""' in r.headers["set-cookie"]
    assert "signed in" not in get(client, "/", cookie).text  # the old cookie is dead too


def test_what_is_not_yours_reads_as_not_found_on_every_page(
    client: Client, database: Database, keys: dict[str, Key]
) -> None:
    secret_in, secret_out, team_out = hexdigest(), hexdigest(), hexdigest()
    private_session, team_session = new_session(), new_session()
    [private] = _ids(client, batch(
        make_job([("notes.txt", secret_in)], [("plan.txt", secret_out)], "python secret.py"),
        session=private_session, visibility="private",
    ), user="bob")  # fmt: skip
    [team] = _ids(client, batch(
        make_job(outputs=[("team.txt", team_out)], command="python team.py"),
        session=team_session, visibility="team",
    ), user="bob")  # fmt: skip
    bob, alice = sign_in(client, "bob"), sign_in(client, "alice")
    glaas_admin(database, "user", "add", "dave", "--key", keys["mallory"].public_line)
    client.keys["dave"] = keys["mallory"]
    dave = sign_in(client, "dave")

    secret_pages = [
        f"/jobs/{private}",
        f"/artifacts/{secret_in}",
        f"/artifacts/{secret_out}",
        f"/sessions/{private_session.hash}",
    ]
    team_pages = [f"/jobs/{team}", f"/artifacts/{team_out}", f"/sessions/{team_session.hash}"]
    for path in secret_pages + team_pages:
        assert get(client, path, bob).status_code == 200, path
    for who in (None, alice, dave):
        for path in secret_pages + ([] if who == alice else team_pages):
            r = get(client, path, who)
            assert r.status_code == 404, (path, who)
            assert "Not found" in r.text and "python secret.py" not in r.text
            short = get(client, path[: path.index("/", 1) + 11], who)  # by prefix: the same
            assert short.status_code == 404, path
        r = get(client, "/search", who, params={"q": private[:10]})
        assert r.status_code == 404
        home = get(client, "/", who).text
        assert private not in home and (team in home) == (who == alice)
    for path in team_pages:  # alice is in bob's team
        assert get(client, path, alice).status_code == 200
    assert private in get(client, "/", bob).text

    # removing a key ends the web sessions it opened
    glaas_admin(database, "user", "key", "remove", "dave", keys["mallory"].public.fingerprint)
    assert "signed in" not in get(client, "/", dave).text


# ---------------------------------------------------------------- hostile content, headers


def test_hostile_text_stays_text(client: Client) -> None:
    job = make_job(
        [(f"in/{HOSTILE}.csv", hexdigest())],
        [("out.txt", hexdigest())],
        command=f"python x.py --note {HOSTILE} javascript:alert(1)",
        env={"NOTE": HOSTILE, "URL": "javascript:alert(1)"},
        trackers=[
            model.TrackerRun("wandb", HOSTILE, "javascript:alert(1)", HOSTILE, "wandb/"),
            model.TrackerRun("mlflow", "r", "data:text/html,<script>alert(1)</script>", None, "m"),
            model.TrackerRun("mlflow", "ok", "https://mlflow.example.org/#/runs/1", None, "m"),
        ],
        blind_spots=[HOSTILE],
    )
    job.context.git = model.GitState(
        root=job.cwd,
        commit="d" * 40,
        remotes={"origin": 'https://github.com/a/b"onmouseover="alert(1)'},
    )
    [jid] = _ids(client, batch(job, visibility="public"))
    r = get(client, f"/jobs/{jid}")
    assert r.status_code == 200
    page = r.text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert not [h for h in hrefs if not h.startswith(("/", "#", "?", "https://"))], hrefs
    assert "https://mlflow.example.org/#/runs/1" in hrefs
    assert not [h for h in hrefs if "github.com" in h]  # a remote that is not a clean URL
    assert "<script" not in re.sub(
        r'<script src="/static/[a-z]+\.js\?v=[0-9a-f]+" defer>', "", page
    )
    io = next(iter(job.inputs)).hash
    art = get(client, f"/artifacts/{io}").text
    assert "&lt;script&gt;" in art and "<script>alert" not in art


def test_pages_carry_a_strict_policy_and_static_files_come_from_glaas(client: Client) -> None:
    r = get(client, "/")
    csp = r.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe" not in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"app;dur=[0-9.]+", r.headers["server-timing"])
    links = re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text)
    assert len(links) == 3  # the stylesheet, the script, the icon
    for link in links:
        s = get(client, link)
        assert s.status_code == 200 and s.headers["cache-control"].startswith("public")
        assert s.headers["x-content-type-options"] == "nosniff"
    assert "http" not in get(client, links[0]).text.replace("http://www.w3.org", "")
    assert get(client, "/static/nothing.js").status_code == 404
    api = get(client, f"{registry.API}/health")
    assert "script-src" not in api.headers["content-security-policy"]
