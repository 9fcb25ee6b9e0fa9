"""The registry's test harness, loaded by each test module as a plugin (a conftest.py here would
take the name `conftest` from tests/conftest.py, which other tests import): real SSH keys made
with ssh-keygen, a real ssh-agent, a database per backend (a SQLite file, and a PostgreSQL
database created on 127.0.0.1:5432 and dropped afterwards), the app in-process through Litestar's
test client, and accounts made with the real `glaas admin` command."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from click.testing import CliRunner

from roar import canonical, model, registry, sshsig

logging.getLogger("httpx").setLevel(logging.WARNING)
BIN = Path(sys.executable).parent
PG_HOST = "127.0.0.1"
PG_USER = os.environ.get("PGUSER", "postgres")
HOME = "/home/tester"
USERS = ("alice", "bob", "carol", "mallory")  # alice and bob share team "ml"; mallory has no key


def hexdigest(rng: random.Random | None = None) -> str:
    return f"{(rng or random).getrandbits(256):064x}"


# ---------------------------------------------------------------- keys and the agent


class Key:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.public_line = (path.parent / (path.name + ".pub")).read_text().strip()
        self.public = sshsig.parse_public_key(self.public_line)
        _, self.sign = sshsig.key_file_signer(registry.NAMESPACE, str(path))


def make_key(folder: Path, name: str, kind: str = "ed25519") -> Key:
    path = folder / f"{name}_{kind}"
    if not path.exists():
        bits = ["-b", "3072"] if kind == "rsa" else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", name, "-f", str(path)],
            check=True,
        )
    return Key(path)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def keys(key_dir: Path) -> dict[str, Key]:
    return {name: make_key(key_dir, name) for name in USERS}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on its own socket; yields SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, "ssh-agent exited"
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.01)
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


# ---------------------------------------------------------------- databases


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database="test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Database:
    def __init__(self, backend: str, url: str, name: str | None = None) -> None:
        self.backend = backend
        self.url = url
        self.name = name

    def raw_dump(self) -> bytes:
        """Every byte the database holds, to look for what must never be stored."""
        if self.backend == "sqlite":
            path = Path(self.url.removeprefix("sqlite://"))
            return b"".join(
                p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file()
            )
        done = subprocess.run(
            ["pg_dump", "-h", PG_HOST, "-U", PG_USER, "--data-only", self.name or ""],
            capture_output=True,
            check=True,
        )
        return done.stdout


def make_database(backend: str, folder: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", f"sqlite://{folder / 'glaas.db'}")
    name = f"glaas_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    return Database("postgres", f"postgresql://{PG_USER}@{PG_HOST}/{name}", name)


def drop_database(db: Database) -> None:
    if db.backend == "postgres":
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))


def sql(db: Database, statement: str) -> list[tuple[Any, ...]]:
    """One statement on the registry's database, behind the server's back (to age a link, mark
    an account, read what was stored); its rows."""
    if db.backend == "sqlite":
        conn = sqlite3.connect(db.url.removeprefix("sqlite://"))
        try:
            rows = [tuple(r) for r in conn.execute(statement).fetchall()]
            conn.commit()
            return rows
        finally:
            conn.close()

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database=db.name)
        try:
            return [tuple(r) for r in await conn.fetch(statement)]
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_answering(url: str, proc: subprocess.Popen[bytes], output: Callable[[], object]) -> None:
    """Until `glaas serve` at `url` answers its health check. If it exits, or has not answered
    in 60 s (it is killed then), the test fails with `output()`: what it printed."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, output()
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"glaas serve did not answer: {output()}")
        try:
            if httpx.get(f"{url}/api/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)


def at_schema(db: Database, backend: str, version: int, rows: list[str]) -> None:
    """Make `db` as glaas left it at schema `version` (its first migrations, applied as
    glaas.store.migrate does), with these rows in it: what a migration test upgrades."""
    from glaas.hook_names import hook_id
    from glaas.store.migrate import migrations

    old = migrations(backend)[:version]
    if backend == "sqlite":
        conn = sqlite3.connect(db.url.removeprefix("sqlite://"))
        conn.create_function("glaas_hook_id", 1, hook_id)  # as glaas.store.migrate does
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied REAL)")
        for n, _, sql in old:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (n,))
        for sql in rows:
            conn.execute(sql)
        conn.commit()
        conn.close()
        return

    async def build() -> None:
        conn = await asyncpg.connect(db.url)
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "applied DOUBLE PRECISION NOT NULL)"
        )
        for n, _, sql in old:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, 0)", n)
        for sql in rows:
            await conn.execute(sql)
        await conn.close()

    asyncio.run(build())


def glaas_admin(db: Database, *args: str) -> str:
    from glaas.cli import main

    result = CliRunner().invoke(main, ["admin", "--db", db.url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def set_up_accounts(db: Database, keys: dict[str, Key]) -> None:
    for name in ("alice", "bob", "carol"):
        glaas_admin(db, "user", "add", name, "--key", keys[name].public_line)
    glaas_admin(db, "team", "add", "ml", "alice", "bob")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Key]
) -> Iterator[Database]:
    db = make_database(request.param, tmp_path_factory.mktemp("db"))
    try:
        set_up_accounts(db, keys)
        yield db
    finally:
        drop_database(db)


# ---------------------------------------------------------------- the app, in-process


class Client:
    """The app through Litestar's test client; `user=` signs the request with that user's key."""

    def __init__(self, http: Any, keys: dict[str, Key]) -> None:
        self.http = http
        self.keys = keys

    def request(
        self,
        method: str,
        path: str,
        user: str | None = None,
        body: bytes = b"",
        params: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> Any:
        req = self.http.build_request(method, path, content=body, params=params)
        if user is not None:
            req.headers["Authorization"] = registry.authorization(
                self.keys[user].sign,
                method,
                req.url.raw_path.split(b"?")[0].decode(),
                req.url.query.decode(),
                body,
                now,
            )
        return self.http.send(req)

    def get(self, path: str, user: str | None = None, **params: Any) -> Any:
        return self.request("GET", f"{registry.API}{path}", user, params=params or None)

    def ingest(self, batch: registry.Batch, user: str | None = "alice") -> Any:
        body = msgspec.json.encode(batch)
        return self.request("POST", f"{registry.API}/ingest", user, body)


@pytest.fixture(scope="module")
def client(database: Database, keys: dict[str, Key]) -> Iterator[Client]:
    from litestar.testing import TestClient

    from glaas.app import create_app

    with TestClient(create_app(database.url, pool_size=4)) as http:
        yield Client(http, keys)


# ---------------------------------------------------------------- records


def _size(digest: str) -> int:
    return int(digest[:6], 16) if all(c in "0123456789abcdef" for c in digest[:6]) else 1


_CLOCK = itertools.count(random.randrange(170_000_000, 180_000_000))


def make_job(
    inputs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    outputs: list[tuple[str, str]] = (),  # type: ignore[assignment]
    command: str = "python train.py",
    root: str = f"{HOME}/proj",
    started: float | None = None,
    **context: Any,
) -> model.Job:
    if started is None:  # jobs made one after another start one after another (lineage)
        started = next(_CLOCK) * 10.0
    return model.Job(
        id=uuid.uuid4().hex[:12],
        command=command,
        argv=command.split(),
        cwd=root,
        started=started,
        ended=started + 1.5,
        status="complete",
        exit_code=0,
        project=root,
        session=1,
        step=1,
        inputs=[model.IO(f"{root}/{p}", h, _size(h)) for p, h in inputs],
        outputs=[model.IO(f"{root}/{p}", h, _size(h)) for p, h in outputs],
        context=model.RunContext(
            git=model.GitState(root=root, commit="a" * 40, branch="main"), **context
        ),
    )


def batch(
    *jobs: model.Job, session: registry.Session | None = None, **options: Any
) -> registry.Batch:
    return registry.Batch(
        jobs=[
            registry.Registration(
                canonical.for_registry(j, home=HOME), session.hash if session else None
            )
            for j in jobs
        ],
        sessions=[session] if session else [],
        **options,
    )


def new_session() -> registry.Session:
    return canonical.session_record("laptop", random.uniform(1.7e9, 1.8e9), 1, f"{HOME}/proj")
