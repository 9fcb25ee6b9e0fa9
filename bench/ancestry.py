"""Reproducing from the registry: how long `GET artifacts/{ref}/ancestry` takes for an artifact
whose lineage is a chain of N jobs (the deepest kind: one level per job), on a real `glaas serve`
on each backend, and how long roard's planner takes on that answer (`registry_source`, the same
`_Planner` as for the local store), with the size of the plan request that carries it.

Each job reads the previous one's output and a config, writes one output, with 16 variables and
a machine in its context (as bench/registry.py's jobs).

    python bench/ancestry.py [--backend sqlite|postgres|both] [--jobs 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import msgspec
from glaas_bench import bench_user, database, served
from registry import ENV, _ingest, batches

from roar import model, registry, sshsig
from roar.protocol import GetPlan, RemoteLineage


def _chain(n: int) -> list[model.Job]:
    root = "/home/bench/proj"
    hashes = [f"{i:064x}" for i in range(1, n + 2)]
    config = "c" * 64
    jobs = []
    for i in range(n):
        started = 1.7e9 + 10 * i
        jobs.append(
            model.Job(
                id=f"{i:012x}",
                command=f"python step.py --seed {i}",
                argv=["python", "step.py", "--seed", str(i)],
                cwd=root,
                started=started,
                ended=started + 2.0,
                status="complete",
                exit_code=0,
                project=root,
                session=1,
                step=i + 1,
                inputs=[
                    model.IO(f"{root}/f{i}", hashes[i], 1000),
                    model.IO(f"{root}/config.toml", config, 100),
                ],
                outputs=[model.IO(f"{root}/f{i + 1}", hashes[i + 1], 1000)],
                context=model.RunContext(
                    git=model.GitState(root=root, commit="a" * 40, branch="main"),
                    env=ENV,
                    hardware=model.Hardware("Linux", "6.1", "x86_64", "bench", "cpu", 2, 1 << 34),
                ),
            )
        )
    return jobs


async def _plan(base: Path, ancestry: registry.Ancestry) -> tuple[float, int, int]:
    from roard import plan
    from roard.store import Store

    store = await Store.open(base / "roar.db")
    try:
        req = GetPlan(
            target=ancestry.root,
            cwd=b"/tmp",
            into=b"/nonexistent/x",
            remote=RemoteLineage("http://registry", ancestry),
        )
        size = len(msgspec.msgpack.encode(req))
        start = time.perf_counter()
        reply = await plan.make(store, req)
        return time.perf_counter() - start, len(reply.jobs), size
    finally:
        await store.close()


def run(backend: str, args: argparse.Namespace, jobs: list[model.Job], base: Path) -> None:
    with database(backend, base) as db:
        sign = bench_user(db, base, ["visibility", "public"])
        with served(db, base) as (url, _):
            measure(backend, args, jobs, base, url, sign)


def measure(
    backend: str,
    args: argparse.Namespace,
    jobs: list[model.Job],
    base: Path,
    url: str,
    sign: sshsig.Signer,
) -> None:
    asyncio.run(_ingest(url, batches(jobs, 500), sign))
    target = jobs[-1].outputs[0].hash
    times, body = [], b""
    for _ in range(args.rounds):
        start = time.perf_counter()
        r = httpx.get(f"{url}/api/v1/artifacts/{target}/ancestry", timeout=600)
        times.append(time.perf_counter() - start)
        if r.status_code != 200:
            raise SystemExit(f"ancestry failed: {r.status_code} {r.text[:300]}")
        body = r.content
    found = msgspec.json.decode(body, type=registry.Ancestry)
    ms = statistics.median(times) * 1000
    print(f"{backend:9} ancestry of a {len(jobs):,}-job chain: {len(found.jobs):,} jobs "
          f"({len(body) / 1e6:.1f} MB{', truncated' if found.truncated else ''}) "
          f"in {ms:,.0f} ms (median of {args.rounds})")  # fmt: skip
    seconds, planned, size = anyio.run(_plan, base, found)
    print(f"{backend:9} plan from it: {planned:,} jobs in {seconds * 1000:,.0f} ms "
          f"(request {size / 1e6:.1f} MB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    jobs = _chain(args.jobs)
    base = Path(tempfile.mkdtemp(prefix="glaas-bench-"))
    try:
        for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
            run(backend, args, jobs, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
