"""Registration, timed: `roarctl register --all` of N jobs already in roard's store, and the
outbox's latency after a run (a run's finish to the registry's answer, from roard's log).

The store is filled through roard.store as a run's finish fills it (each job reads 2 earlier
outputs and writes 3 files; a 40-variable environment, 120 packages, a process tree); the
registry is a real `glaas serve` on SQLite in its own process; `roarctl` and `roard` are the
real ones, in a private HOME.

    python bench/registration.py [--jobs 1000] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import anyio
import httpx

BIN = Path(sys.executable).parent


async def _fill(db: Path, n: int) -> None:
    from roar.model import FilteredSummary, GitState, Hardware, Package, Process
    from roard.store import Store, jobs
    from roard.store import sessions as session_rows

    store = await Store.open(db)
    try:
        env = {f"VAR_{i}": f"value-{i}" for i in range(40)}
        env_blob = await jobs.put_blob(store, env)
        hw = Hardware("Linux", "6.1", "x86_64", "bench", "AMD EPYC", 2, 8 << 30)
        hw_blob = await jobs.put_blob(store, hw)
        pkgs = [Package(f"pkg{i}", f"1.{i}.0") for i in range(120)]
        pkg_blob = await jobs.put_blob(store, pkgs)
        root = b"/home/bench/proj"
        project = await jobs.project_id(store, root)
        git = GitState(root="/home/bench/proj", commit="a" * 40, branch="main")
        outputs: list[tuple[str, str]] = [
            (f"/home/bench/proj/raw{i}.csv", f"{i:064x}") for i in range(2)
        ]
        session = 0
        for i in range(n):
            if i % 100 == 0:
                async with store.write() as tx:
                    session = await session_rows.create(tx, project, 1.7e9 + i)
            started = 1.7e9 + i
            ins = outputs[-2:]
            outs = [
                (f"/home/bench/proj/out/{i}/{k}.bin", f"{(i + 1) * 10 + k:064x}") for k in range(3)
            ]
            rows = [(0, p.encode(), h, 1000, None) for p, h in ins]
            rows += [(1, p.encode(), h, 2000, None) for p, h in outs]
            outputs += outs
            job_id = f"{i:012x}"
            async with store.write() as tx:
                await jobs.insert(
                    tx,
                    job_id=job_id,
                    project_id=project,
                    status="running",
                    command=f"python step.py --seed {i}",
                    argv=["python", "step.py", "--seed", str(i)],
                    cwd=root,
                    started=started,
                    kind="run",
                    session=session,
                    step=i % 100 + 1,
                    git=git,
                    env_blob=env_blob,
                    hardware_blob=hw_blob,
                )
                await jobs.add_io(tx, job_id, rows, started)
                await jobs.settle(
                    tx,
                    job_id,
                    status="complete",
                    ended=started + 0.5,
                    exit_code=0,
                    signal=None,
                    inputs=2,
                    outputs=3,
                    packages={"/usr/bin/python3": pkg_blob},
                    processes=[Process(1, 0, ["python", "step.py"], "/usr/bin/python3", 0)],
                    blind_spots=[],
                    filtered=FilteredSummary(count=120, by_rule={"python": 120}),
                    trackers=[],
                    external=[],
                )
    finally:
        await store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="roar-bench-reg-"))
    home = tmp / "home"
    runtime = tmp / "run"
    for d in (home, runtime):
        d.mkdir(mode=0o700)
    env = {
        "HOME": str(home),
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "XDG_RUNTIME_DIR": str(runtime),
        "LANG": "C.UTF-8",
    }
    os.environ.update(env)  # roard.store below, roar.paths
    glaas = None
    try:
        key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        db = f"sqlite://{tmp / 'glaas.db'}"
        subprocess.run(
            [
                BIN / "glaas",
                "admin",
                "--db",
                db,
                "user",
                "add",
                "bench",
                "--key-file",
                f"{key}.pub",
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        glaas = subprocess.Popen(
            [BIN / "glaas", "serve", "--db", db, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        store = home / ".local/share/roar/roar.db"
        t = time.monotonic()
        anyio.run(_fill, store, args.jobs)
        print(f"filled roard's store with {args.jobs} jobs in {time.monotonic() - t:.1f}s")

        def roarctl(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [BIN / "roarctl", *argv], env=env, capture_output=True, text=True, check=True
            )

        roarctl("config", "set", "registry.url", url)
        roarctl("config", "set", "registry.key", str(key))
        roarctl("status")  # roard up: its start-up is not part of the number
        t = time.monotonic()
        done = json.loads(roarctl("register", "--all", "--json").stdout)
        took = time.monotonic() - t
        print(
            f"register --all: {done['sent']} jobs sent in {took:.2f}s "
            f"({done['sent'] / took:.0f} jobs/s; {done['new']} new to the registry)"
        )
        t = time.monotonic()
        again = json.loads(roarctl("register", "--all", "--json").stdout)
        print(f"again: {again['sent']} sent, {again['jobs']} known, in {time.monotonic() - t:.2f}s")

        roarctl("config", "set", "registry.auto", "true")
        time.sleep(1)  # roard reloads its config
        for _ in range(args.runs):
            roarctl("run", "-q", "true")
            time.sleep(1.0)
        log = home / ".local/state/roar/roard.log"
        events = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        finishes = [e for e in events if e.get("event") == "run.finish"]
        sent = [e for e in events if e.get("event") == "registry.sent"]

        def at(e: dict) -> float:
            return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()

        waits = []
        for f in finishes:
            after = [at(s) for s in sent if at(s) >= at(f)]
            if after:
                waits.append(after[0] - at(f))
        print(
            f"outbox latency after a run (finish -> registry's answer), {len(waits)} runs: "
            f"median {statistics.median(waits) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms"
        )
    finally:
        subprocess.run([BIN / "roarctl", "daemon", "stop"], env=env, capture_output=True)
        if glaas is not None:
            glaas.send_signal(signal.SIGTERM)
            glaas.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
