"""Training requests, timed: a real `glaas serve --workers 2` on SQLite in its own process, N
requests filed, approved and (half of them) claimed over signed HTTP, then the list and a
request's page; and one approved request claimed by 20 clients at once (exactly one wins).

    python bench/requests.py [--requests 200] [--racers 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _key(folder: Path, name: str) -> tuple[str, Callable[[bytes], bytes]]:
    from roar import registry, sshsig

    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    _, sign = sshsig.key_file_signer(registry.NAMESPACE, str(path))
    return (folder / f"{name}.pub").read_text().strip(), sign


def main() -> None:
    from roar import registry

    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--racers", type=int, default=20)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-requests-"))
    db = f"sqlite://{folder / 'glaas.db'}"
    signers = {}
    for name in ("alice", "bob"):
        public, signers[name] = _key(folder, name)
        subprocess.run(
            [BIN / "glaas", "admin", "--db", db, "user", "add", name, "--key", public],
            check=True,
            capture_output=True,
        )
    port = _port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [BIN / "glaas", "serve", "--db", db, "--port", str(port), "--workers", "2"],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(folder)},
    )
    http = httpx.Client(timeout=60)

    def call(user: str, method: str, path: str, body: Any = None, query: str = "") -> Any:
        content = b"" if body is None else msgspec.json.encode(body)
        auth = registry.authorization(signers[user], method, registry.API + path, query, content)
        target = url + registry.API + path + (f"?{query}" if query else "")
        r = http.request(method, target, content=content, headers={"Authorization": auth})
        assert r.status_code in (200, 201), r.text
        return r.json()

    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "no glaas serve"
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        data, model = os.urandom(32).hex(), os.urandom(32).hex()
        job = {
            "id": "", "command": "prep", "argv": ["prep"], "cwd": "/w", "started": 1.7e9,
            "ended": 1.7e9 + 1, "status": "complete", "exit_code": 0,
            "outputs": [{"path": "/w/d", "hash": data, "size": 1},
                        {"path": "/w/m", "hash": model, "size": 1}],
        }  # fmt: skip
        from roar import canonical
        from roar import model as roar_model

        record = canonical.for_registry(msgspec.convert(job, roar_model.Job), home="/w")
        call("alice", "POST", "/ingest", {"jobs": [{"job": record}], "visibility": "public"})
        spec = {
            "dataset": data[:10], "base_model": model[:10], "compute": "8xH100", "hours": 3.2,
            "budget": 984, "reviewer": "bob", "rationale": "bench",
        }  # fmt: skip
        times: dict[str, list[float]] = {
            k: [] for k in ("file", "approve", "claim", "list", "show")
        }

        def timed(kind: str, *a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = call(*a, **kw)
            times[kind].append(time.perf_counter() - t0)
            return out

        filed = [timed("file", "alice", "POST", "/requests", spec) for _ in range(args.requests)]
        for r in filed:
            timed("approve", "bob", "POST", f"/requests/{r['id']}/approve",
                  {"spec_hash": r["spec_hash"]})  # fmt: skip
        for r in filed[: len(filed) // 2]:
            timed("claim", "alice", "POST", f"/requests/{r['id']}/claim", {})
        for _ in range(20):
            timed("list", "alice", "GET", "/requests", query="state=approved")
            timed("show", "alice", "GET", f"/requests/{filed[-1]['id']}")
        for kind, values in times.items():
            ms = sorted(v * 1000 for v in values)
            print(
                f"{kind:8} n={len(ms):4}  median {statistics.median(ms):6.1f} ms  "
                f"p95 {ms[int(len(ms) * 0.95) - 1]:6.1f} ms"
            )
        target = filed[-1]["id"]
        codes: list[int] = []

        def claim(user: str) -> None:
            path = f"{registry.API}/requests/{target}/claim"
            auth = registry.authorization(signers[user], "POST", path, "", b"{}")
            answer = httpx.post(url + path, content=b"{}", headers={"Authorization": auth})
            codes.append(answer.status_code)

        racers = [
            threading.Thread(target=claim, args=("alice" if i % 2 else "bob",))
            for i in range(args.racers)
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        print(
            f"race: {args.racers} claimers at once -> {codes.count(200)} won, "
            f"{codes.count(409)} refused (409)"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
