"""The API in-process, on both backends: ingest is idempotent and counts what was new; records
are found by full hash or prefix; lineage walks up and down to a depth; a session's DAG; errors
are problem details; every response carries the security headers."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
import pytest
from registry_support import Client, Database, batch, hexdigest, make_job, new_session

from roar import canonical, registry

pytest_plugins = ["registry_support"]  # the fixtures


def _decode(response, kind):  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=kind)


def test_ingest_stores_a_job_once_and_says_what_was_new(client: Client) -> None:
    raw, clean = hexdigest(), hexdigest()
    session = new_session()
    job = make_job(inputs=[("data/raw.csv", raw)], outputs=[("data/clean.csv", clean)])
    first = _decode(client.ingest(batch(job, session=session)), registry.Ingested)
    assert first.jobs == registry.Counts(new=1, known=0)
    assert first.artifacts == registry.Counts(new=2, known=0)
    assert first.sessions == registry.Counts(new=1, known=0)
    assert first.ids == [canonical.for_registry(job, home="/home/tester").id]

    again = _decode(client.ingest(batch(job, session=session)), registry.Ingested)
    assert again.ids == first.ids
    assert again.jobs == registry.Counts(new=0, known=1)
    assert again.artifacts == registry.Counts(new=0, known=2)
    assert again.sessions == registry.Counts(new=0, known=1)

    entry = _decode(client.get(f"/jobs/{first.ids[0]}", "alice"), registry.JobEntry)
    assert entry.owner == "alice" and entry.visibility == "private"
    assert entry.session == session.hash
    assert [io.path for io in entry.job.inputs] == ["data/raw.csv"]
    assert entry.job.cwd == "." and entry.job.project == "proj"


def test_an_artifact_keeps_the_size_it_was_first_registered_with(client: Client) -> None:
    """The size lives on each io row (no artifacts table): a later batch that sends another size
    for a hash the registry has counts it known, and every read still answers the first size."""
    data, out = hexdigest(), hexdigest()
    first = make_job(outputs=[("data.csv", data)])
    sent = _decode(client.ingest(batch(first, visibility="public")), registry.Ingested)
    assert sent.artifacts == registry.Counts(new=1, known=0)
    size = first.outputs[0].size
    later = make_job(inputs=[("data.csv", data)], outputs=[("out.csv", out)])
    later = msgspec.structs.replace(
        later, inputs=[msgspec.structs.replace(later.inputs[0], size=size + 5)]
    )
    again = _decode(client.ingest(batch(later, visibility="public")), registry.Ingested)
    assert again.artifacts == registry.Counts(new=1, known=1)

    entry = _decode(client.get(f"/artifacts/{data}"), registry.ArtifactEntry)
    assert entry.size == size and entry.made_by == sent.ids and entry.read_by == again.ids
    up = _decode(client.get(f"/lineage/{out}", depth=2), registry.Graph)
    assert {a.hash: a.size for a in up.artifacts} == {data: size, out: later.outputs[0].size}
    down = _decode(client.get(f"/lineage/{data}", direction="down"), registry.Graph)
    assert {a.hash: a.size for a in down.artifacts} == {data: size, out: later.outputs[0].size}
    found = _decode(client.get("/search", q=data[:8]), registry.SearchResult)
    assert found.matches == [registry.Match("artifact", data)]


def test_a_path_a_job_lists_twice_is_stored_once_with_its_first_hash(client: Client) -> None:
    """The io rows are keyed by (job, input or output, path): the second listing of a path is
    left out on both backends (PostgreSQL writes io rows by COPY, which cannot skip a duplicate
    key), and its hash is not counted as stored."""
    data, first, second = hexdigest(), hexdigest(), hexdigest()
    job = make_job(
        inputs=[("data.csv", data), ("data.csv", data)],
        outputs=[("out.csv", first), ("out.csv", second)],
    )
    sent = _decode(client.ingest(batch(job, visibility="public")), registry.Ingested)
    assert sent.jobs == registry.Counts(new=1, known=0)
    assert sent.artifacts == registry.Counts(new=2, known=0)
    entry = _decode(client.get(f"/jobs/{sent.ids[0]}"), registry.JobEntry)
    assert [io.hash for io in entry.job.outputs] == [first, second]  # the record as sent
    made = _decode(client.get(f"/artifacts/{first}"), registry.ArtifactEntry)
    assert made.made_by == sent.ids and made.paths == ["out.csv"]
    read = _decode(client.get(f"/artifacts/{data}"), registry.ArtifactEntry)
    assert read.read_by == sent.ids
    assert client.get(f"/artifacts/{second}").status_code == 404


def test_postgres_compresses_job_records_with_lz4(client: Client, database: Database) -> None:
    """A record (~2.5 KB) is over PostgreSQL's TOAST threshold: migration 0009 has it compressed
    by lz4, not pglz (half the database's CPU for a job's row at ingest)."""
    if database.backend != "postgres":
        pytest.skip("PostgreSQL's column compression")
    job = make_job(outputs=[("big.csv", hexdigest())], env={f"V{i}": "x" * 80 for i in range(40)})
    sent = _decode(client.ingest(batch(job, visibility="public")), registry.Ingested)

    async def method() -> Any:
        conn = await asyncpg.connect(database.url)
        try:
            return await conn.fetchval(
                "SELECT pg_column_compression(record) FROM jobs WHERE id = $1", sent.ids[0]
            )
        finally:
            await conn.close()

    assert asyncio.run(method()) == "lz4"


def test_an_artifact_is_found_by_hash_and_by_prefix(client: Client) -> None:
    out = hexdigest()
    ids = _decode(
        client.ingest(batch(make_job(outputs=[("model.pt", out)]), visibility="public")),
        registry.Ingested,
    ).ids
    for ref in (out, out[:6], out[:20]):
        entry = _decode(client.get(f"/artifacts/{ref}"), registry.ArtifactEntry)
        assert entry.hash == out and entry.size == int(out[:6], 16)
        assert entry.paths == ["model.pt"] and entry.made_by == ids and entry.read_by == []
    found = _decode(client.get("/search", q=out[:8]), registry.SearchResult)
    assert found.matches == [registry.Match("artifact", out)]
    job = _decode(client.get("/search", q=ids[0][:10]), registry.SearchResult)
    assert job.matches == [registry.Match("job", ids[0])]


def test_an_ambiguous_prefix_lists_its_candidates(client: Client) -> None:
    a = "abcdef" + hexdigest()[6:]
    b = "abcdef" + hexdigest()[6:]
    client.ingest(batch(make_job(outputs=[("a", a), ("b", b)]), visibility="public"))
    r = client.get("/artifacts/abcdef")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    problem = msgspec.json.decode(r.content, type=registry.Problem)
    assert problem.code == "ambiguous"
    assert {m.id for m in problem.candidates or []} >= {a, b}
    assert client.get(f"/artifacts/{a[:40]}").status_code == 200


def test_lineage_walks_up_and_down_to_a_depth(client: Client) -> None:
    raw, clean, model_, metrics = (hexdigest() for _ in range(4))
    prep = make_job(inputs=[("raw.csv", raw)], outputs=[("clean.csv", clean)], command="prep")
    train = make_job(inputs=[("clean.csv", clean)], outputs=[("model.pt", model_)], command="tr")
    score = make_job(inputs=[("model.pt", model_)], outputs=[("m.json", metrics)], command="ev")
    ids = _decode(
        client.ingest(batch(prep, train, score, visibility="public")), registry.Ingested
    ).ids

    up = _decode(client.get(f"/lineage/{metrics}", depth=10), registry.Graph)
    assert {j.id for j in up.jobs} == set(ids)
    assert {a.hash for a in up.artifacts} == {raw, clean, model_, metrics}
    assert registry.Edge(ids[0], raw, "input") in up.edges
    assert registry.Edge(ids[2], metrics, "output") in up.edges and not up.truncated

    near = _decode(client.get(f"/lineage/{metrics}", depth=1), registry.Graph)
    assert [j.id for j in near.jobs] == [ids[2]]
    assert {a.hash for a in near.artifacts} == {model_, metrics}

    down = _decode(client.get(f"/lineage/{raw[:12]}", direction="down"), registry.Graph)
    assert {j.id for j in down.jobs} == set(ids)
    from_job = _decode(client.get(f"/lineage/{ids[1]}", depth=1), registry.Graph)
    assert [j.id for j in from_job.jobs] == [ids[1]]
    assert [a.hash for a in from_job.artifacts] == [clean]


def test_a_sessions_dag_has_its_jobs_and_their_files(client: Client) -> None:
    session = new_session()
    a, b, c = hexdigest(), hexdigest(), hexdigest()
    one = make_job(inputs=[("a", a)], outputs=[("b", b)])
    two = make_job(inputs=[("b", b)], outputs=[("c", c)])
    ids = _decode(
        client.ingest(batch(one, two, session=session, visibility="public")), registry.Ingested
    ).ids
    entry = _decode(client.get(f"/sessions/{session.hash[:10]}"), registry.SessionEntry)
    assert entry.session == session and {j.id for j in entry.jobs} == set(ids)
    assert all(j.session == session.hash for j in entry.jobs)
    dag = _decode(client.get(f"/sessions/{session.hash}/dag"), registry.Graph)
    assert {j.id for j in dag.jobs} == set(ids)
    assert len(dag.edges) == 4 and {x.hash for x in dag.artifacts} == {a, b, c}


def test_errors_are_problem_details_with_security_headers(client: Client) -> None:
    cases = [
        (client.get("/artifacts/xyz"), 400, "invalid"),
        (client.get("/artifacts/12345"), 400, "invalid"),  # shorter than 6
        (client.get(f"/jobs/{hexdigest()}"), 404, "not-found"),
        (client.get("/lineage/abcdef0", depth=0), 400, "invalid"),
        (client.get("/lineage/abcdef0", direction="sideways"), 400, "invalid"),
        (client.request("GET", "/api/v1/no-such-thing"), 404, "not-found"),
        (client.request("POST", "/api/v1/ingest", "alice", b"{not json"), 400, "invalid"),
        (client.request("POST", "/api/v1/ingest"), 401, "unauthorized"),
        (client.request("DELETE", "/api/v1/health"), 405, "invalid"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = msgspec.json.decode(response.content, type=registry.Problem)
        assert (problem.status, problem.code) == (status, code) and problem.detail
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.headers["x-frame-options"] == "DENY"
    # the ingest body is decoded by glaas.api.BatchBody, straight into a Batch, which says where
    wrong = client.request("POST", "/api/v1/ingest", "alice", b'{"jobs": [{"job": 3}]}')
    detail = wrong.json()["detail"]
    assert wrong.status_code == 400 and detail.startswith("the batch is not valid"), detail
    assert "$.jobs[0].job" in detail


def test_a_bad_batch_is_refused_whole(client: Client) -> None:
    good = make_job(outputs=[("x", hexdigest())])
    bad = make_job(outputs=[("y", "not-a-hash")])
    r = client.ingest(batch(good, bad))
    assert r.status_code == 400 and "not a 64-digit" in r.json()["detail"]
    entry = canonical.for_registry(good, home="/home/tester")
    assert client.get(f"/jobs/{entry.id}", "alice").status_code == 404

    lying = batch(good)
    lying.jobs[0].job = msgspec.structs.replace(lying.jobs[0].job, id="0" * 64)
    r = client.ingest(lying)
    assert r.status_code == 400 and "but its record's is" in r.json()["detail"]

    orphan = registry.Batch(jobs=[registry.Registration(entry, session=hexdigest())])
    r = client.ingest(orphan)
    assert r.status_code == 400 and "unknown session" in r.json()["detail"]


def test_the_schema_is_served(client: Client) -> None:
    r = client.request("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/ingest" in schema["paths"] and "Job" in schema["components"]["schemas"]


def test_an_artifacts_ancestry_is_every_job_upstream_whole_and_only_for_who_may_see(
    client: Client,
) -> None:
    """A chain prep -> train -> score, a build step of their session, a later re-run of prep
    (it wrote the same clean.csv after train had started: not upstream), a later build step and
    an unrelated job: the ancestry of the metrics is the chain and the first build, as whole
    records, in start order; a reader outside the team gets 404, as for any record."""
    raw, clean, model_, metrics, other = (hexdigest() for _ in range(5))
    session = new_session()

    def at(job, started, kind="run"):  # type: ignore[no-untyped-def]
        return msgspec.structs.replace(job, started=started, ended=started + 1.0, kind=kind)

    build = at(make_job(command="pip install -e ."), 1.70e9, "build")
    prep = at(make_job(inputs=[("raw.csv", raw)], outputs=[("clean.csv", clean)]), 1.70e9 + 10)
    train = at(make_job(inputs=[("clean.csv", clean)], outputs=[("m.pt", model_)]), 1.70e9 + 20)
    score = at(make_job(inputs=[("m.pt", model_)], outputs=[("s.json", metrics)]), 1.70e9 + 30)
    rerun = at(make_job(inputs=[("raw.csv", raw)], outputs=[("clean.csv", clean)]), 1.70e9 + 40)
    late_build = at(make_job(command="make"), 1.70e9 + 50, "build")
    unrelated = at(make_job(outputs=[("x", other)]), 1.70e9 + 25)
    ids = _decode(
        client.ingest(
            batch(
                build,
                prep,
                train,
                score,
                rerun,
                late_build,
                unrelated,
                session=session,
                visibility="team",
                team="ml",
            )
        ),
        registry.Ingested,
    ).ids
    found = _decode(client.get(f"/artifacts/{metrics[:10]}/ancestry", "bob"), registry.Ancestry)
    assert found.root == metrics and not found.truncated
    assert [e.id for e in found.jobs] == ids[:4]  # build, prep, train, score
    whole = found.jobs[3]
    assert whole.job.inputs[0].path == "m.pt" and whole.job.context.git is not None
    assert whole.session == session.hash and whole.owner == "alice"
    # from a job: the job and what made its inputs
    of_job = _decode(client.get(f"/jobs/{ids[2][:10]}/ancestry", "bob"), registry.Ancestry)
    assert of_job.root == ids[2] and [e.id for e in of_job.jobs] == ids[:3]
    # what is not yours reads as not found, as in every other look-up
    assert client.get(f"/artifacts/{metrics}/ancestry", "carol").status_code == 404
    assert client.get(f"/jobs/{ids[2]}/ancestry", "carol").status_code == 404
    assert client.get(f"/artifacts/{metrics}/ancestry").status_code == 404
    assert client.get(f"/artifacts/{hexdigest()}/ancestry", "alice").status_code == 404


def test_an_ancestry_longer_than_the_limits_says_it_is_cut(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glaas import ancestry

    chain = [hexdigest() for _ in range(5)]
    jobs = [
        msgspec.structs.replace(
            make_job(inputs=[(f"f{i}", chain[i])], outputs=[(f"f{i + 1}", chain[i + 1])]),
            started=1.7e9 + 10 * i,
            ended=1.7e9 + 10 * i + 1,
        )
        for i in range(4)
    ]
    client.ingest(batch(*jobs, visibility="public"))
    whole = _decode(client.get(f"/artifacts/{chain[-1]}/ancestry"), registry.Ancestry)
    assert len(whole.jobs) == 4 and not whole.truncated
    monkeypatch.setattr(ancestry, "MAX_JOBS", 3)
    cut = _decode(client.get(f"/artifacts/{chain[-1]}/ancestry"), registry.Ancestry)
    assert len(cut.jobs) == 3 and cut.truncated
    monkeypatch.setattr(ancestry, "MAX_JOBS", 1000)
    monkeypatch.setattr(ancestry, "MAX_LEVELS", 4)  # exactly deep enough
    exact = _decode(client.get(f"/artifacts/{chain[-1]}/ancestry"), registry.Ancestry)
    assert len(exact.jobs) == 4 and not exact.truncated
    monkeypatch.setattr(ancestry, "MAX_LEVELS", 2)
    shallow = _decode(client.get(f"/artifacts/{chain[-1]}/ancestry"), registry.Ancestry)
    assert len(shallow.jobs) == 2 and shallow.truncated
