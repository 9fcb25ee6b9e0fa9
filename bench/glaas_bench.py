"""What the registry's benchmarks share: a database of either backend made for the run and
dropped after it, a bench user with an SSH key, and `glaas serve` in its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from roar import registry, sshsig

BIN = Path(sys.executable).parent
GLAAS = str(BIN / "glaas")
PG_USER = os.environ.get("PGUSER", "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg(sql: str, check: bool = True) -> None:
    """One statement in PostgreSQL's `test` database (127.0.0.1, user $PGUSER or postgres)."""
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", PG_USER, "-d", "test", "-c", sql],
        check=check,
        capture_output=True,
    )


@contextmanager
def database(backend: str, base: Path) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in `base`, or a PostgreSQL database
    dropped when the block ends."""
    if backend == "sqlite":
        yield f"sqlite://{base / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    name = f"glaas_bench_{uuid.uuid4().hex[:10]}"
    pg(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@127.0.0.1/{name}"
    finally:
        pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


def env_of(base: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(base)}


def bench_user(db: str, base: Path, *admin: list[str]) -> sshsig.Signer:
    """User `bench` (its key made in `base` once), then each further `glaas admin` command;
    the signer of bench's requests."""
    key = base / "key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text()
    for args in (["user", "add", "bench", "--key", pub], *admin):
        subprocess.run(
            [GLAAS, "admin", "--db", db, *args], env=env_of(base), check=True, capture_output=True
        )
    _, sign = sshsig.key_file_signer(registry.NAMESPACE, str(key))
    return sign


@contextmanager
def served(db: str, base: Path, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`glaas serve` on `db` at a free port, answering its health check: (URL, process)."""
    port = free_port()
    args = [GLAAS, "serve", "--db", db, "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    server = subprocess.Popen(args, env=env_of(base), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("glaas serve did not start") from None
                time.sleep(0.1)
        yield url, server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
