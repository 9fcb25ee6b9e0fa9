"""The registry's client side, end to end: real `roarctl run` under the tracer, the real roard
registering in the background (or on `roarctl register`), a real `glaas serve` process on SQLite
and on PostgreSQL, real keys made with ssh-keygen in a real ssh-agent of each user; as root and
as the ordinary user (tests/conftest.py's `roar` fixture). The registry is killed mid-batch, its
answer is lost on the wire (a real TCP proxy in front of it drops it), roard is killed with a full
outbox: nothing is lost and nothing is stored twice. A planted secret and a file's contents are
looked for in every byte of the registry's database."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROARCTL, Roar, git_repo, reap, wait_for
from registry_support import (
    BIN,
    PG_HOST,
    PG_USER,
    Database,
    drop_database,
    make_database,
    wait_answering,
)

from roar import registry, sshsig

pytest_plugins = ["registry_support"]

GLAAS = str(BIN / "glaas")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Glaas:
    """A `glaas serve` process on a database; stopped, killed and started again at will."""

    def __init__(self, db: Database, log: Path, port: int | None = None) -> None:
        self.db = db
        self.log = log
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Glaas:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [GLAAS, "serve", "--db", self.db.url, "--port", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_answering(self.url, self.proc, lambda: self.log.read_text())
        return self

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig == signal.SIGTERM:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(60)
        self.proc = None

    def admin(self, *args: str) -> str:
        done = subprocess.run(
            [GLAAS, "admin", "--db", self.db.url, *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def job_ids(self) -> list[str]:
        """Every job the registry holds (a list: a record stored twice would show twice)."""
        if self.db.backend == "sqlite":
            with sqlite3.connect(self.db.url.removeprefix("sqlite://")) as conn:
                return [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY seq")]

        async def fetch() -> list[str]:
            import asyncpg

            conn = await asyncpg.connect(host=PG_HOST, user=PG_USER, database=self.db.name)
            try:
                return [r[0] for r in await conn.fetch("SELECT id FROM jobs ORDER BY seq")]
            finally:
                await conn.close()

        return asyncio.run(fetch())


def _glaas(db: Database, folder: Path) -> Iterator[Glaas]:
    server = Glaas(db, folder / "glaas.log").start()
    try:
        yield server
    finally:
        server.stop()
        drop_database(db)


@pytest.fixture(scope="module")
def glaas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glaas]:
    """One registry on SQLite for the module's tests (each test adds its own users)."""
    folder = tmp_path_factory.mktemp("glaas")
    yield from _glaas(make_database("sqlite", folder), folder)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def any_glaas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Glaas]:
    folder = tmp_path_factory.mktemp("glaas")
    yield from _glaas(make_database(request.param, folder), folder)


@pytest.fixture
def own_glaas(tmp_path: Path) -> Iterator[Glaas]:
    """A registry of the test's own, to kill (not started yet)."""
    server = Glaas(make_database("sqlite", tmp_path), tmp_path / "glaas.log")
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


# ---------------------------------------------------------------- people: keys, agents, homes


class People:
    """Users of one registry: each a roar home (the test's `roar` is the first), an ed25519 key
    made by ssh-keygen as that user, and that user's own ssh-agent holding it."""

    def __init__(self, roar: Roar) -> None:
        self.first = roar
        self.others: list[Roar] = []
        self.agents: list[subprocess.Popen[bytes]] = []

    def home(self) -> Roar:
        """Another user's roar (a teammate), of the same kind as the test's."""
        base = Path(tempfile.mkdtemp(prefix="roar-e2e-", dir="/tmp"))
        os.chmod(base, 0o755)
        other = Roar(base, self.first.user)
        self.others.append(other)
        return other

    def key(self, roar: Roar, name: str, passphrase: str = "") -> Path:
        key = roar.home / ".ssh" / name
        roar.exec(["mkdir", "-p", "-m", "700", str(key.parent)])
        roar.exec(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(key)]
        )
        return key

    def agent(self, roar: Roar, *keys: Path) -> str:
        sock = roar.base / f"agent-{len(self.agents)}.sock"
        proc = subprocess.Popen(
            [*roar.prefix(), "ssh-agent", "-D", "-a", str(sock)],
            env=roar.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.agents.append(proc)
        assert wait_for(sock.exists, 30), "ssh-agent did not start"
        roar.env["SSH_AUTH_SOCK"] = str(sock)
        for key in keys:
            roar.exec(["ssh-add", "-q", str(key)])
        return str(sock)

    def join(self, roar: Roar, glaas: Glaas, name: str) -> str:
        """`name` (made unique) registered at `glaas` with a key in its running agent."""
        user = f"{name}-{uuid.uuid4().hex[:6]}"
        key = self.key(roar, "id_ed25519")
        self.agent(roar, key)
        glaas.admin("user", "add", user, "--key", Path(f"{key}.pub").read_text().strip())
        roar("config", "set", "registry.url", glaas.url)
        return user

    def close(self) -> None:
        for other in self.others:
            other.stop()
        for proc in self.agents:
            proc.terminate()
            proc.wait()
        for other in self.others:
            reap(other.base)
            shutil.rmtree(other.base, ignore_errors=True)


@pytest.fixture
def people(roar: Roar) -> Iterator[People]:
    found = People(roar)
    try:
        yield found
    finally:
        found.close()


# ---------------------------------------------------------------- helpers


def _pipeline(roar: Roar, secret: str, contents: str) -> tuple[Path, dict[str, Any]]:
    """Two steps in a git repository: clean.csv from data.csv, then out.csv from clean.csv;
    a secret in the environment (by name) and in argv (a --password flag)."""
    repo = git_repo(roar, roar.work / f"proj-{uuid.uuid4().hex[:6]}", {"data.csv": contents})
    env = {"MY_API_TOKEN": secret}
    roar("run", "--", "sh", "-c", "cat data.csv > clean.csv", cwd=repo, env=env)
    roar(
        "run",
        "--",
        "sh",
        "-c",
        "sort clean.csv > out.csv",
        "sh",
        f"--password={secret}",
        cwd=repo,
        env=env,
    )
    return repo, roar.json("show", "out.csv", cwd=repo)["artifact"]


def _outbox(roar: Roar) -> dict[str, Any]:
    return roar.json("status")["registry"]


def _delivered(roar: Roar) -> bool:
    box = _outbox(roar)
    return box["queued"] == 0 and box["last_success"] is not None


def _registered_ids(roar: Roar) -> dict[str, str]:
    """Local job id -> registry id, from roard's store."""
    with sqlite3.connect(f"file:{roar.db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT j.id, r.id FROM registered r JOIN jobs j ON j.seq = r.job"
        ).fetchall()
    return dict(rows)


def _log_events(roar: Roar, event: str) -> list[dict[str, Any]]:
    log = roar.home / ".local/state/roar/roard.log"
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == event]


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith("roar: error: "), proc.stderr
    assert len(lines) <= 2 and all(x.startswith("  hint: ") for x in lines[1:]), proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)
    return proc.stderr


# ---------------------------------------------------------------- background registration


def test_finished_runs_are_registered_in_the_background_and_no_secret_leaves(
    roar: Roar, people: People, any_glaas: Glaas
) -> None:
    user = people.join(roar, any_glaas, "alice")
    before = any_glaas.job_ids()
    login = roar("auth", "login")
    assert f"logged in to {any_glaas.url} as {user}" in login.stdout
    roar("config", "set", "registry.auto", "true")
    secret = "hunter" + uuid.uuid4().hex[:10]
    contents = f"zz-{uuid.uuid4().hex}\naa-contents\n"  # sort changes it: out.csv is new
    repo, out = _pipeline(roar, secret, contents)
    assert wait_for(lambda: _delivered(roar), 60), _outbox(roar)
    local = _registered_ids(roar)
    assert len(local) == 2
    added = any_glaas.job_ids()[len(before) :]  # in arrival order
    assert sorted(added) == sorted(local.values())  # each job once
    # what the registry holds reads back: the output, its producer, with the job's command
    shown = roar.json("show", out["hash"], "--remote")
    assert shown["artifact"]["paths"] == ["out.csv"]  # relative to the git root
    [producer] = shown["artifact"]["produced_by"]
    assert producer["command"].startswith("sh -c 'sort clean.csv > out.csv'")
    job = roar.json("show", producer["id"][:16], "--remote")
    assert job["job"]["env"]["MY_API_TOKEN"] == "<redacted>"
    assert job["registry"]["owner"] == user and job["job"]["git"]["branch"] == "main"
    assert any(i["path"] == "clean.csv" for i in job["job"]["inputs"])
    # never a secret, never a file's contents, in any byte the registry stored
    dump = any_glaas.db.raw_dump()
    assert secret.encode() not in dump
    assert contents.split()[0].encode() not in dump
    assert repo.name.encode() in dump  # the project's name, sent; the dump is not empty


def test_a_run_never_waits_for_a_registry_that_is_down(
    roar: Roar, people: People, own_glaas: Glaas
) -> None:
    """Nothing listens at registry.url: runs finish as usual, the outbox keeps the jobs and
    status says why; `roarctl run` itself never loads the HTTP client."""
    roar("config", "set", "registry.key", str(people.key(roar, "id_ed25519")))
    roar("config", "set", "registry.url", own_glaas.url)
    roar("config", "set", "registry.auto", "true")
    trace = roar.exec(
        [str(Path(ROARCTL).parent / "python"), "-X", "importtime", str(ROARCTL), "run", "true"]
    )
    assert trace.returncode == 0
    assert "roar: job " in trace.stderr and "httpx" not in trace.stderr
    assert " roar.remote" not in trace.stderr
    assert wait_for(lambda: _outbox(roar)["last_error"] is not None, 30)
    box = _outbox(roar)
    assert box["queued"] == 1 and box["auto"] and box["url"] == own_glaas.url
    assert "cannot reach the registry" in box["last_error"] and box["retry_at"] is not None
    text = roar("status").stdout
    assert "outbox:   1 queued" in text and "last error" in text


def test_a_drain_begun_before_a_config_change_leaves_no_stale_error(
    roar: Roar, people: People
) -> None:
    """A background send is under way when `auth logout` lands: its failure answers settings
    that no longer hold, so the outbox neither keeps it nor backs off for it; the next try, with
    the config as it is now, says what is wrong now (CI once saw the stale error in its place)."""
    held: list[socket.socket] = []
    got = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))

    def hold() -> None:  # a registry that takes the request and says nothing until told
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if _read_http(conn) is not None:
                held.append(conn)
                got.set()

    threading.Thread(target=hold, daemon=True).start()
    try:
        roar("config", "set", "registry.key", str(people.key(roar, "id_ed25519")))
        roar("config", "set", "registry.url", f"http://127.0.0.1:{server.getsockname()[1]}")
        roar("config", "set", "registry.auto", "true")
        roar("run", "true")
        assert got.wait(30), "roard never sent the job"
        roar("auth", "logout")
        assert _outbox(roar)["last_error"] is None  # the request (and config reload) is taken
    finally:
        server.close()
        for conn in held:
            conn.close()  # the send fails now, under the old settings
    assert wait_for(lambda: _outbox(roar)["last_error"] is not None, 30)
    box = _outbox(roar)
    assert "logged out" in box["last_error"], box["last_error"]
    assert box["queued"] == 1


class LossyProxy:
    """A TCP proxy in front of the registry: passes each HTTP request on, and loses the next
    `lose` answers (the registry did the work; the client never hears of it)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.lose = 0
        self.forwarded = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            conn.close()
            return
        with conn, upstream:
            try:
                while (request := _read_http(conn)) is not None:
                    upstream.sendall(request)
                    self.forwarded.set()
                    answer = _read_http(upstream)
                    if answer is None:
                        return  # the registry died: so does the connection
                    if self.lose:
                        self.lose -= 1
                        return  # answered, but the answer is lost
                    conn.sendall(answer)
            except OSError:
                return

    def close(self) -> None:
        self.server.close()


def _read_http(sock: socket.socket) -> bytes | None:
    """One HTTP/1.1 message (headers and a Content-Length body), or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def test_registry_killed_mid_batch_and_a_lost_answer_lose_and_duplicate_nothing(
    roar: Roar, people: People, own_glaas: Glaas
) -> None:
    own_glaas.start()
    proxy = LossyProxy(own_glaas.port)
    try:
        people.join(roar, own_glaas, "alice")
        roar("config", "set", "registry.url", proxy.url)
        roar("config", "set", "registry.auto", "true")
        roar("run", "true")
        assert wait_for(lambda: _delivered(roar), 30), _outbox(roar)
        proxy.forwarded.clear()
        own_glaas.send(signal.SIGSTOP)  # the batch will be taken in, never answered
        for i in range(3):
            roar("run", "--", "sh", "-c", f"echo {i} > f{i}.txt")
        assert proxy.forwarded.wait(30), "no batch was sent"
        own_glaas.stop(signal.SIGKILL)  # killed with the batch in flight
        assert wait_for(lambda: _outbox(roar)["last_error"] is not None, 30)
        assert _outbox(roar)["queued"] >= 3  # nothing dropped
        proxy.lose = 1  # the next batch is stored, its answer lost
        own_glaas.start()
        assert wait_for(lambda: _delivered(roar), 60), _outbox(roar)
        local = _registered_ids(roar)
        assert len(local) == 4
        ids = own_glaas.job_ids()
        assert sorted(ids) == sorted(local.values())  # all there, each once
        sent = _log_events(roar, "registry.sent")
        assert sent[-1]["known"] >= 3 and sent[-1]["new"] == 0  # the retry found them stored
    finally:
        proxy.close()


def test_roard_killed_with_a_full_outbox_delivers_after_restart(
    roar: Roar, people: People, own_glaas: Glaas
) -> None:
    people.join(roar, own_glaas, "alice")  # the registry is not running yet
    roar("config", "set", "registry.auto", "true")
    for i in range(3):
        roar("run", "--", "sh", "-c", f"echo {i} > f{i}.txt")
    assert wait_for(lambda: _outbox(roar)["last_error"] is not None, 30)
    assert _outbox(roar)["queued"] == 3
    pid = roar.daemon_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    own_glaas.start()
    assert wait_for(lambda: _delivered(roar), 60), _outbox(roar)  # status starts a new roard
    assert roar.daemon_pid() != pid
    assert sorted(own_glaas.job_ids()) == sorted(_registered_ids(roar).values())
    assert len(own_glaas.job_ids()) == 3


# ---------------------------------------------------------------- roarctl register


def test_register_sends_a_targets_whole_upstream_and_prints_its_url(
    roar: Roar, people: People, glaas: Glaas
) -> None:
    people.join(roar, glaas, "alice")
    roar("auth", "login")
    repo, out = _pipeline(roar, "s3cr3t-" + uuid.uuid4().hex[:6], "b\na\n")
    roar("run", "--", "sh", "-c", "echo unrelated > u.txt", cwd=repo)
    before = set(glaas.job_ids())
    proc = roar.exec(  # on a terminal (script), to see the progress bar
        ["script", "-qec", f"{ROARCTL} register out.csv", "/dev/null"],
        cwd=repo,
        env={"ROAR_PROGRESS_AFTER": "0"},
    )
    assert "roar: registering [" in proc.stdout and "2/2 jobs" in proc.stdout
    assert f"out.csv  {glaas.url}/artifacts/{out['hash']}" in proc.stdout
    assert "registered 2 job(s)" in proc.stdout and "2 sent (2 new to it)" in proc.stdout
    new = set(glaas.job_ids()) - before
    assert len(new) == 2  # the two upstream jobs, not the unrelated one
    assert new == set(_registered_ids(roar).values())
    # again: nothing is sent twice; --session adds the third and names the session
    again = roar("register", "out.csv", cwd=repo)
    assert "0 sent" in again.stderr and "2 registered before" in again.stderr
    session = roar.json("register", "--session", cwd=repo)
    assert (session["jobs"], session["sent"]) == (3, 1)
    [target] = session["targets"]
    assert target["kind"] == "session" and target["url"].startswith(f"{glaas.url}/sessions/")
    dag = roar("dag", target["id"][:10], "--artifacts", cwd=repo).stdout
    assert "@1" in dag and "@2" in dag and "@3" in dag and "out.csv" in dag


def test_a_register_right_after_config_set_uses_the_new_registry(
    roar: Roar, people: People, glaas: Glaas
) -> None:
    # roard's file watcher hears of a config change a moment late (or never, without inotify:
    # ROARD_WATCH_CONFIG=0 here, which makes the race certain): each request checks first
    roar("daemon", "start", env={"ROARD_WATCH_CONFIG": "0"})
    people.join(roar, glaas, "alice")
    repo, out = _pipeline(roar, "s3cr3t-" + uuid.uuid4().hex[:6], "b\na\n")
    nowhere = f"http://127.0.0.1:{_free_port()}"
    for _ in range(3):
        roar("config", "set", "registry.url", nowhere)
        refused = roar("register", "out.csv", cwd=repo, check=False)
        assert refused.returncode != 0 and nowhere in refused.stderr, refused.stderr
        roar("config", "set", "registry.url", glaas.url)
        sent = roar("register", "out.csv", cwd=repo)
        assert f"out.csv  {glaas.url}/artifacts/{out['hash']}" in sent.stdout, sent.stderr


def test_the_registrys_lineage_and_dag_follow_roards_producer_rule(
    roar: Roar, people: People, any_glaas: Glaas
) -> None:
    """`wc -c < a.txt > n.txt`, then `cp a.txt b.txt`, then `sort b.txt > s.txt`, registered:
    read back from the registry, the cp is no maker of what wc read (lineage up and down), the
    session's first step depends on nothing later, and s.txt comes through the cp."""
    people.join(roar, any_glaas, "alice")
    roar("auth", "login")
    # sort changes a.txt's bytes: s.txt is a content of its own
    repo = git_repo(roar, roar.work / f"proj-{uuid.uuid4().hex[:6]}", {"a.txt": "b\na\n"})
    roar("run", "--", "sh", "-c", "wc -c < a.txt > n.txt", cwd=repo)
    roar("run", "cp", "a.txt", "b.txt", cwd=repo)
    roar("run", "--", "sh", "-c", "sort b.txt > s.txt", cwd=repo)
    done = roar.json("register", "--session", cwd=repo)
    assert done["jobs"] == 3
    [target] = done["targets"]
    n, a, s = (
        roar.json("show", f, cwd=repo)["artifact"]["hash"] for f in ("n.txt", "a.txt", "s.txt")
    )

    up = roar("lineage", n, "--remote", cwd=repo).stdout
    assert "wc -c < a.txt > n.txt" in up and "cp a.txt b.txt" not in up
    up = roar("lineage", s, "--remote", cwd=repo).stdout
    assert "sort b.txt > s.txt" in up and "cp a.txt b.txt" in up and "wc -c" not in up
    wc = roar.json("show", n, "--remote")["artifact"]["produced_by"][0]["id"]
    down = roar("lineage", wc[:12], "--downstream", "--remote", cwd=repo).stdout
    assert "wc -c" in down and "cp a.txt b.txt" not in down and "sort" not in down
    down = roar("lineage", a, "--downstream", "--remote", cwd=repo).stdout
    assert "wc -c" in down and "cp a.txt b.txt" in down and "sort b.txt" in down
    lines = roar("dag", target["id"][:10], cwd=repo).stdout.splitlines()
    steps = {x.split()[0]: x for x in lines if x.strip().startswith("@")}
    assert "<-" not in steps["@1"] and "<-" not in steps["@2"], lines
    assert steps["@3"].endswith("<- @2"), lines
    # the same as roard says here
    local = {x.split()[0]: x for x in roar("dag", cwd=repo).stdout.splitlines() if "@" in x}
    assert "<-" not in local["@1"] and local["@3"].endswith("<- @2")


def test_a_store_from_before_registration_registers(
    roar: Roar, people: People, glaas: Glaas
) -> None:
    """tests/data/store-v3.db (schema 3): its jobs get an outbox and reach the registry."""
    roar.db.parent.mkdir(parents=True, mode=0o700)
    shutil.copy(Path(__file__).parents[1] / "data" / "store-v3.db", roar.db)
    roar.chown(roar.home)
    people.join(roar, glaas, "alice")
    model = "82b0249db5a1501bddeb89d5f211f5accb349243fd9ea4d9c76a4a822ee1a284"
    # public: the same two jobs come from the other test user too, and a job's first owner
    # keeps it (the registry stores it once)
    done = roar.json("register", model[:12], "--visibility", "public")
    assert (done["jobs"], done["sent"]) == (2, 2)
    assert done["targets"][0]["url"] == f"{glaas.url}/artifacts/{model}"
    tree = roar("lineage", model, "--remote").stdout
    assert "sort clean.csv > model.txt" in tree and "cp raw.csv clean.csv" in tree


# ---------------------------------------------------------------- reading a teammate's records


def test_a_teammates_artifact_is_one_command_away(roar: Roar, people: People, glaas: Glaas) -> None:
    alice = people.join(roar, glaas, "alice")
    bob_home = people.home()
    bob = people.join(bob_home, glaas, "bob")
    team = f"ml-{uuid.uuid4().hex[:6]}"
    glaas.admin("team", "add", team, alice, bob)
    _, out = _pipeline(roar, "pw-" + uuid.uuid4().hex[:6], "y\nx\n")
    roar("register", out["hash"], "--visibility", "team")
    # bob has never seen it: his roar falls back to the registry (signed: the team's records)
    shown = bob_home("show", out["hash"][:16])
    assert f"registry {glaas.url}/artifacts/{out['hash']}" in shown.stdout
    assert "sort clean.csv > out.csv" in shown.stdout
    tree = bob_home("lineage", out["hash"][:16]).stdout
    assert "sort clean.csv > out.csv" in tree and "cat data.csv > clean.csv" in tree
    job_id = bob_home.json("show", out["hash"])["artifact"]["produced_by"][0]["id"]
    job = bob_home.json("show", job_id[:12])
    assert job["registry"]["owner"] == alice and job["registry"]["visibility"] == "team"
    dag = bob_home("dag", job_id[:12]).stdout  # a job's session, from the registry
    assert "@1" in dag and "@2" in dag and "<- @1" in dag
    # logged out, bob reads unsigned: the team's records are not found
    bob_home("auth", "logout")
    gone = bob_home("show", out["hash"][:16], check=False)
    _one_line_error(gone, "nothing matches", "nor in the registry")
    # a public record is found by anyone
    roar("run", "--", "sh", "-c", "echo public > pub.txt")
    pub = roar.json("show", "pub.txt")["artifact"]["hash"]
    roar("register", pub, "--visibility", "public")
    assert "echo public > pub.txt" in bob_home("show", pub, "--remote").stdout


# ---------------------------------------------------------------- errors, said once


def test_auth_errors_are_one_line_with_what_to_do(roar: Roar, people: People, glaas: Glaas) -> None:
    _one_line_error(roar("auth", "login", check=False), "registry.url is not set")
    roar("config", "set", "registry.url", glaas.url)
    # no agent, no key file
    err = _one_line_error(roar("auth", "whoami", check=False), "SSH_AUTH_SOCK is not set")
    assert "systemctl --user set-environment SSH_AUTH_SOCK" in err
    roar("run", "true")
    _one_line_error(
        roar("register", "--all", check=False), "SSH_AUTH_SOCK is not set", "stay queued"
    )
    # a key the registry does not know: the admin's command to add it
    stranger = people.key(roar, "id_stranger")
    err = _one_line_error(
        roar("auth", "login", "--key", str(stranger), check=False), "does not accept the key"
    )
    assert "glaas admin user add NAME --key 'ssh-ed25519 " in err
    # an encrypted key with no agent to hold it
    locked = people.key(roar, "id_locked", passphrase="correct horse")
    _one_line_error(
        roar("auth", "login", "--key", str(locked), check=False), "encrypted", "ssh-add"
    )
    # a .pub whose private half is in no agent
    people.agent(roar)
    _one_line_error(
        roar("auth", "login", "--key", f"{stranger}.pub", check=False), "not in ssh-agent"
    )
    # logged out: registration is refused by the registry, and status says so
    people.join(roar, glaas, "alice")
    roar("auth", "login")
    assert roar.json("auth", "whoami")["url"] == glaas.url
    roar("auth", "logout")
    _one_line_error(roar("auth", "whoami", check=False), "not logged in")
    roar("config", "set", "registry.auto", "true")
    roar("run", "true")
    assert wait_for(lambda: _outbox(roar)["last_error"] is not None, 30)
    assert "logged out" in _outbox(roar)["last_error"]
    _one_line_error(roar("register", "--all", check=False), "logged out", "auth login")


def test_auth_web_signs_its_request_and_signs_the_browser_in(
    roar: Roar, people: People, glaas: Glaas
) -> None:
    key = people.key(roar, "id_web")
    public = sshsig.parse_public_key(Path(f"{key}.pub").read_text())
    seen: list[tuple[str, str, str | None, bytes]] = []

    class WebLogin(BaseHTTPRequestHandler):  # what the web pages' server will answer
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, self.headers.get("Authorization"), body))
            answer = json.dumps({"url": "/web/login?token=abc123", "expires": 1.9e9}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), WebLogin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        roar("config", "set", "registry.url", url)
        roar("config", "set", "registry.key", str(key))
        link = roar.json("auth", "web")
        assert link == {"url": f"{url}/web/login?token=abc123", "expires": 1.9e9}
        [(method, path, header, body)] = seen
        assert (method, path, body) == ("POST", "/api/v1/auth/web-link", b"")
        assert header is not None
        parsed = registry.parse_authorization(header)
        assert parsed is not None
        t, nonce, blob = parsed
        message = registry.request_message(method, path, "", t, nonce, body)
        assert sshsig.verify(blob, message, registry.NAMESPACE) == public
        assert roar("auth", "web").stdout.strip() == f"{url}/web/login?token=abc123"
    finally:
        server.shutdown()
        server.server_close()
    # The real registry: an unknown key is told what to do; a known one gets a link that signs
    # the browser in once.
    roar("config", "set", "registry.url", glaas.url)
    _one_line_error(roar("auth", "web", check=False), "unknown key", "glaas admin user add")
    glaas.admin("user", "add", f"web-{uuid.uuid4().hex[:6]}", "--key-file", f"{key}.pub")
    link = roar.json("auth", "web")
    assert link["url"].startswith(f"{glaas.url}/login/")

    with httpx.Client() as browser:
        first = browser.get(link["url"], follow_redirects=False)
        assert first.status_code in (302, 303) and "httponly" in first.headers["set-cookie"].lower()
        again = browser.get(link["url"], follow_redirects=False)  # a link works once
        assert again.status_code >= 400


# ---------------------------------------------------------------- the outbox, in-process


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _fill(store: Any, n: int, refused: int) -> list[str]:
    """`n` finished jobs in one session, written as a run's finish writes them; job number
    `refused` has an output the registry refuses (a negative size)."""
    from roar.model import FilteredSummary
    from roard.store import jobs
    from roard.store import sessions as session_rows

    async with store.write() as tx:
        session = await session_rows.create(tx, None, 1.7e9)
    ids = []
    for i in range(n):
        job_id = f"{i:012x}"
        rows = [(0, f"/w/in{i}".encode(), f"{i:064x}", 10, None)]
        rows.append((1, f"/w/out{i}".encode(), f"{i + 1000:064x}", -1 if i == refused else 5, None))
        async with store.write() as tx:
            await jobs.insert(
                tx,
                job_id=job_id,
                project_id=None,
                status="running",
                command=f"step {i}",
                argv=["step", str(i)],
                cwd=b"/w",
                started=1.7e9 + i,
                kind="run",
                session=session,
                step=i + 1,
            )
            await jobs.add_io(tx, job_id, rows, 1.7e9 + i)
            await jobs.settle(
                tx,
                job_id,
                status="complete",
                ended=1.7e9 + i + 0.5,
                exit_code=0,
                signal=None,
                inputs=1,
                outputs=1,
                packages={},
                processes=[],
                blind_spots=[],
                filtered=FilteredSummary(),
                trackers=[],
                external=[],
            )
        ids.append(job_id)
    return ids


@pytest.mark.anyio
async def test_a_job_the_registry_refuses_is_held_and_the_rest_go(
    tmp_path: Path, glaas: Glaas
) -> None:
    """A batch refused as invalid (400) is split until the job at fault is found: it is held
    with the registry's reason, every other job is registered, and `register` says why."""
    from roar.config import RegistryConfig
    from roar.errors import Invalid
    from roar.protocol import Register
    from roard import registration
    from roard.store import Store
    from roard.store import outbox as rows

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    glaas.admin("user", "add", f"outbox-{uuid.uuid4().hex[:6]}", "--key-file", f"{key}.pub")
    store = await Store.open(tmp_path / "roar.db")
    outbox = registration.Outbox(RegistryConfig(url=glaas.url, key=str(key)))
    try:
        ids = await _fill(store, 10, refused=6)
        seqs = await rows.seqs_of(store, ids)
        async with store.write() as tx:
            await rows.queue(tx, seqs.values(), None, 0.0)
        before = set(glaas.job_ids())
        sent, new = await outbox.drain(store, None)
        assert (sent, new) == (9, 9)
        [(seq, reason)] = await rows.held(store, list(seqs.values()))
        assert seq == seqs[ids[6]] and "negative size" in reason
        registered = await rows.registered(store, glaas.url, list(seqs.values()))
        assert set(registered) == set(seqs.values()) - {seq}
        assert set(glaas.job_ids()) - before == set(registered.values())
        summary = await rows.summary(store, glaas.url)
        assert (summary.queued, summary.held) == (0, 1) and summary.last_success
        with pytest.raises(Invalid, match=r"refused 1 job.*negative size"):
            await registration.register(store, outbox, Register(cwd=b"/", all=True), None)
    finally:
        if outbox.http is not None:
            await outbox.http.aclose()
        await store.close()
