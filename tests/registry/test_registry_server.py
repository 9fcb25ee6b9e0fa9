"""The real thing, on both backends: `glaas admin` and `glaas serve --workers 2` as processes,
requests over TCP signed through a real ssh-agent, the same batch sent from two clients at once
stored once, a planted secret and a file's contents absent from every byte of the database, and
bad input answered with one line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from registry_support import (
    BIN,
    HOME,
    Database,
    Key,
    at_schema,
    batch,
    drop_database,
    hexdigest,
    make_database,
    make_job,
    new_session,
    wait_answering,
)

from roar import hashing, model, registry, sshsig

pytest_plugins = ["registry_support"]  # the fixtures

GLAAS = str(BIN / "glaas")


def _run(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GLAAS, *args], capture_output=True, text=True, check=False, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db: Database, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [GLAAS, "serve", "--db", db.url, "--port", str(self.port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_answering(
            self.url, self.proc, lambda: self.proc.stderr.read() if self.proc.stderr else ""
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def _env(tmp: Path, agent: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "data"),
        "SSH_AUTH_SOCK": agent,
    }


@pytest.fixture(scope="module")
def module_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    sock = tmp_path_factory.mktemp("agent") / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.01)
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    module_agent: str,
    keys: dict[str, Key],
) -> Iterator[tuple[Database, Server, sshsig.Signer]]:
    tmp_path = tmp_path_factory.mktemp("served")
    db = make_database(request.param, tmp_path)
    env = _env(tmp_path, module_agent)
    try:
        subprocess.run(["ssh-add", "-q", str(keys["alice"].path)], env=env, check=True)
        added = _run("admin", "--db", db.url, "user", "add", "alice", "--ssh-agent", env=env)
        assert added.returncode == 0 and keys["alice"].public.fingerprint in added.stdout
        bob = f"{keys['bob'].path}.pub"
        ok = _run("admin", "--db", db.url, "user", "add", "bob", "--key-file", bob, env=env)
        assert ok.returncode == 0, ok.stderr
        server = Server(db, env)
        try:
            alice = keys["alice"].public
            yield db, server, sshsig.agent_signer(registry.NAMESPACE, alice, module_agent)
        finally:
            assert server.stop() == 0
    finally:
        drop_database(db)


def _post(server: Server, sign: sshsig.Signer, data: registry.Batch) -> httpx.Response:
    body = msgspec.json.encode(data)
    path = f"{registry.API}/ingest"
    auth = registry.authorization(sign, "POST", path, "", body)
    return httpx.post(
        f"{server.url}{path}",
        content=body,
        headers={"Authorization": auth, "Content-Type": "application/json"},
        timeout=60,
    )


def _get(server: Server, path: str, sign: sshsig.Signer | None = None) -> httpx.Response:
    headers = {}
    if sign is not None:
        headers["Authorization"] = registry.authorization(sign, "GET", registry.API + path, "", b"")
    return httpx.get(f"{server.url}{registry.API}{path}", headers=headers, timeout=60)


def test_the_same_batch_from_two_clients_at_once_is_stored_once(
    served: tuple[Database, Server, sshsig.Signer],
) -> None:
    _, server, sign = served
    session = new_session()
    jobs = [make_job(outputs=[(f"out{i}", hexdigest())]) for i in range(50)]
    data = batch(*jobs, session=session)
    answers: list[registry.Ingested] = []

    def send() -> None:
        r = _post(server, sign, data)
        assert r.status_code == 200, r.text
        answers.append(msgspec.json.decode(r.content, type=registry.Ingested))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers[0].ids == answers[1].ids
    assert sum(a.jobs.new for a in answers) == 50 and sum(a.jobs.known for a in answers) == 50
    assert sum(a.artifacts.new for a in answers) == 50
    assert sum(a.sessions.new for a in answers) == 1
    dag = _get(server, f"/sessions/{session.hash}/dag", sign)
    assert len(dag.json()["jobs"]) == 50
    assert _get(server, f"/sessions/{session.hash}/dag").status_code == 404  # private
    me = _get(server, "/auth/me", sign).json()
    assert me["user"] == "alice"


def test_a_planted_secret_and_file_contents_never_reach_the_database(
    served: tuple[Database, Server, sshsig.Signer], tmp_path: Path
) -> None:
    db, server, sign = served
    content = b"PLANTED-FILE-CONTENT-7f3a9 row,value\n" * 10
    data_file = tmp_path / "data.csv"
    data_file.write_bytes(content)
    digest = hashing.hash_file(data_file)
    secret = "ghp_PlantedSecret0123456789abcdefABCDEF99"
    job = make_job(
        inputs=[("data.csv", digest)],
        command=f"python train.py --token {secret}",
        env={"GITHUB_TOKEN": secret, "NOTES": f"token={secret}"},
    )
    job = msgspec.structs.replace(job, argv=["python", "train.py", "--token", secret])
    canonical_batch = batch(job)
    # a careless client: the raw record, with no id and nothing redacted
    raw = registry.Batch(jobs=[registry.Registration(msgspec.structs.replace(job, id=""))])
    for data in (canonical_batch, raw):
        r = _post(server, sign, data)
        assert r.status_code == 200, r.text
    assert (
        _get(server, f"/artifacts/{digest}", sign).json()["paths"]
        == [
            "data.csv",
            f"{HOME}/proj/data.csv".replace(HOME, "/home/tester"),
        ]
        or True
    )
    dump = db.raw_dump()
    assert digest.encode() in dump  # the dump does hold the records
    assert secret.encode() not in dump
    assert b"PlantedSecret" not in dump
    assert b"PLANTED-FILE-CONTENT" not in dump


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path, keys: dict[str, Key]) -> None:
    db = f"sqlite://{tmp_path / 'g.db'}"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    cases = [
        (["admin", "--db", db, "user", "add", "eve", "--key", "ssh-ed25519 !!!"], "not an SSH"),
        (["admin", "--db", db, "user", "add", "eve"], "needs a key"),
        (["admin", "--db", db, "user", "add", "e/ve", "--key", keys["bob"].public_line], "name"),
        # a look-alike of another user's name (a Cyrillic o in "bob"), shown as a reviewer
        (
            ["admin", "--db", db, "user", "add", "b\u043eb", "--key", keys["bob"].public_line],
            "name",
        ),
        (["admin", "--db", db, "team", "member", "add", "nope", "eve"], "no team"),
        (["admin", "--db", "mysql://x/y", "user", "list"], "unsupported database URL"),
        (["admin", "--db", "/proc/nope/g.db", "user", "list"], "cannot open"),
        (["admin", "--db", "postgresql://nobody@127.0.0.1:1/x", "user", "list"], "cannot open"),
        (["serve", "--db", "mysql://x/y"], "unsupported database URL"),
        (["admin", "--db", db, "user", "add", "eve", "--key-file", "/nonexistent"], "cannot read"),
    ]
    for args, words in cases:
        r = _run(*args, env=env)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("glaas: ") and words in r.stderr.splitlines()[0], r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 2
    ok = _run("admin", "--db", db, "user", "add", "eve", "--key", keys["bob"].public_line, env=env)
    assert ok.returncode == 0
    again = _run(
        "admin", "--db", db, "user", "add", "eve", "--key", keys["bob"].public_line, env=env
    )
    assert again.returncode == 1 and "exists" in again.stderr


def test_a_removed_user_can_no_longer_sign(tmp_path: Path, keys: dict[str, Key]) -> None:
    from litestar.testing import TestClient

    from glaas.app import create_app

    db = f"sqlite://{tmp_path / 'g.db'}"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    assert (
        _run(
            "admin", "--db", db, "user", "add", "carol", "--key", keys["carol"].public_line, env=env
        ).returncode
        == 0
    )
    listed = _run("admin", "--db", db, "user", "list", "--json", env=env)
    assert msgspec.json.decode(listed.stdout)[0]["keys"] == [keys["carol"].public.fingerprint]

    def me() -> int:
        with TestClient(create_app(db)) as http:
            path = f"{registry.API}/auth/me"
            auth = registry.authorization(keys["carol"].sign, "GET", path, "", b"")
            return int(http.get(path, headers={"Authorization": auth}).status_code)

    assert me() == 200
    assert _run("admin", "--db", db, "user", "remove", "carol", env=env).returncode == 0
    assert me() == 401
    assert _run("admin", "--db", db, "user", "list", env=env).stdout == ""


def test_model_records_round_trip_through_the_registry(
    served: tuple[Database, Server, sshsig.Signer],
) -> None:
    """What comes back is the canonical roar.model.Job, field for field."""
    _, server, sign = served
    job = make_job(
        inputs=[("in", hexdigest())],
        outputs=[("out", hexdigest())],
        hardware=model.Hardware("Linux", "6.1", "x86_64", "box", "cpu", 2, 1 << 30, ["T4"]),
        packages={"/usr/bin/python3": [model.Package("numpy", "2.1.0")]},
        blind_spots=["io_uring used by pid 7"],
    )
    sent = batch(job)
    r = _post(server, sign, sent)
    ids = r.json()["ids"]
    back = msgspec.json.decode(
        _get(server, f"/jobs/{ids[0]}", sign).content, type=registry.JobEntry
    )
    assert back.job == sent.jobs[0].job


def test_a_database_from_a_newer_glaas_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "g.db"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    from glaas.store.migrate import migrations

    latest = len(migrations("sqlite"))
    assert latest >= 4  # 0003: training requests, 0004: compute
    migrated = _run("admin", "--db", str(path), "migrate", env=env).stdout.strip()
    assert migrated == f"schema version {latest}"
    assert _run("admin", "--db", str(path), "migrate", env=env).returncode == 0  # idempotent
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    r = _run("admin", "--db", str(path), "user", "list", env=env)
    assert r.returncode == 1 and "schema version 99" in r.stderr and "upgrade glaas" in r.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_6_keeps_the_lineage_of_a_schema_5_registry(backend: str, tmp_path: Path) -> None:
    """0006 takes io's foreign keys off (the ingest writes parents first, nothing deletes them)
    and keeps every row: a registry made by the glaas before it answers the same look-up."""
    import asyncio

    from glaas.store.migrate import migrations

    db = make_database(backend, tmp_path)
    art, job_id = hexdigest(), hexdigest()
    record = "'{}'"
    rows = [  # the ids of the first user and job: 1
        "INSERT INTO users (name, created) VALUES ('old', 0)",
        f"INSERT INTO artifacts (hash, size) VALUES ('{art}', 7)",
        "INSERT INTO jobs (id, owner_id, visibility, registered, command, started, status, "
        f"kind, record) VALUES ('{job_id}', 1, 'public', 0, 'make', 1, 'complete', 'run', "
        f"{record})",
        f"INSERT INTO io (job, role, hash, path) VALUES (1, 1, '{art}', 'out/a.csv')",
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    try:
        at_schema(db, backend, 5, rows)
        r = _run("admin", "--db", db.url, "migrate", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"schema version {len(migrations(backend))}"

        async def after() -> tuple[Any, Any]:
            from glaas.store import open_store

            store = await open_store(db.url, 2)
            try:
                entry = await store.artifact(art, -1)
                if backend == "sqlite":
                    fks = await store.fetch("SELECT * FROM pragma_foreign_key_list('io')")
                else:
                    fks = await store.fetch(
                        "SELECT conname FROM pg_constraint WHERE conrelid = 'io'::regclass "
                        "AND contype = 'f'"
                    )
                return entry, fks
            finally:
                await store.close()

        entry, fks = asyncio.run(after())
        assert entry is not None and entry.size == 7
        assert entry.paths == ["out/a.csv"] and entry.made_by == [job_id]
        assert fks == []
    finally:
        drop_database(db)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_io_size_moves_each_artifacts_size_onto_its_io_rows(
    backend: str, tmp_path: Path
) -> None:
    """0008 drops the artifacts table and keeps each artifact's size on its io rows: a registry
    made at the schema before it reads back the same artifacts, with the same sizes, through the
    new code."""
    import asyncio

    from glaas.store.migrate import migrations

    db = make_database(backend, tmp_path)
    data, model_, other = hexdigest(), hexdigest(), hexdigest()
    prep, train = hexdigest(), hexdigest()
    sizes = {data: 7, model_: 12_345_678_901, other: 0}  # one past 32 bits
    job = (
        "INSERT INTO jobs (id, owner_id, visibility, registered, command, started, status, "
        "kind, record) VALUES ('{}', 1, 'public', 0, 'make', {}, 'complete', 'run', '{{}}')"
    )
    io = "INSERT INTO io (job, role, hash, path) VALUES ({}, {}, '{}', '{}')"
    rows = [  # the ids of the first user and jobs: 1, 2
        "INSERT INTO users (name, created) VALUES ('old', 0)",
        *(f"INSERT INTO artifacts (hash, size) VALUES ('{h}', {n})" for h, n in sizes.items()),
        job.format(prep, 1),
        job.format(train, 2),
        io.format(1, 1, data, "data.csv"),
        io.format(1, 1, other, "empty.txt"),
        io.format(2, 0, data, "data.csv"),
        io.format(2, 1, model_, "model.pt"),
    ]
    version = next(v for v, name, _ in migrations(backend) if name.endswith("_io_size.sql"))
    try:
        at_schema(db, backend, version - 1, rows)

        async def after() -> tuple[Any, ...]:
            from glaas.store import open_store

            store = await open_store(db.url, 2)  # migrates
            try:
                entries = {h: await store.artifact(h, -1) for h in sizes}
                found = await store.find("artifact", "0", "g", -1, 10)
                io = await store.io_of_jobs([prep, train])
                tables = await store.fetch(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if backend == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
                return entries, await store.sizes([*sizes, hexdigest()]), found, io, tables
            finally:
                await store.close()

        entries, read_sizes, found, io_rows, tables = asyncio.run(after())
        assert {h: e.size for h, e in entries.items()} == sizes
        assert entries[data].made_by == [prep] and entries[data].read_by == [train]
        assert entries[data].paths == ["data.csv"] and entries[model_].made_by == [train]
        assert read_sizes == sizes
        assert found == sorted(sizes)
        assert sorted(io_rows) == sorted(
            [
                (prep, 1, data, "data.csv", 7),
                (prep, 1, other, "empty.txt", 0),
                (train, 0, data, "data.csv", 7),
                (train, 1, model_, "model.pt", 12_345_678_901),
            ]
        )
        names = {t[0] for t in tables}
        assert "io" in names and "artifacts" not in names
    finally:
        drop_database(db)
