"""The compute report's latency: N jobs with usage (each reads the output of the job before it
half of the time) registered in signed batches, then `GET /api/v1/compute` timed (by project
and by request), on SQLite and
on PostgreSQL, with the app in-process (Litestar's test client).

    python bench/compute.py [--backend sqlite|postgres|both] [--jobs 20000]

PostgreSQL: a database is created on 127.0.0.1:5432 (user $PGUSER or postgres) and dropped.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from glaas_bench import bench_user, database

from roar import canonical, model, registry

HOME = "/home/bench"
BY = ("project", "request")  # the report's rows: per project, per request (all "-" here)


def _jobs(n: int, now: float) -> list[model.Job]:
    jobs, previous = [], None
    for i in range(n):
        out = f"{uuid.uuid4().hex}{uuid.uuid4().hex}"
        started = now - 25 * 86400 + i * (25 * 86400 / n)
        root = f"{HOME}/project-{i % 8}"
        gpus = 8 if i % 4 == 0 else 0
        jobs.append(
            model.Job(
                id=f"{i:012d}",
                command=f"python train.py --run {i}",
                argv=["python", "train.py"],
                cwd=root,
                started=started,
                ended=started + 3600.0,
                status="complete",
                project=root,
                inputs=[model.IO(f"{root}/in.bin", previous, 1)] if previous and i % 2 else [],
                outputs=[model.IO(f"{root}/out-{i}.bin", out, 1)],
                usage=model.Usage(
                    cpu_seconds=float(i % 97) * 60,
                    wall_seconds=3600.0,
                    gpus=gpus,
                    gpu_model="NVIDIA H100 80GB HBM3" if gpus else None,
                    gpu_seconds=gpus * 3600.0,
                ),
            )
        )
        previous = out
    return jobs


def run(backend: str, jobs: list[model.Job], base: Path) -> None:
    from litestar.testing import TestClient

    from glaas.app import create_app

    with database(backend, base) as db:
        sign = bench_user(
            db, base, ["price", "set", "gpu:H100", "2.49/h"], ["price", "set", "cpu", "0.04/h"]
        )
        with TestClient(create_app(db, pool_size=4)) as http:

            def send(method: str, path: str, body: bytes = b"", **params: str) -> bytes:
                req = http.build_request(method, registry.API + path, content=body, params=params)
                query = req.url.query.decode()
                req.headers["Authorization"] = registry.authorization(
                    sign, method, req.url.raw_path.split(b"?")[0].decode(), query, body
                )
                r = http.send(req)
                assert r.status_code == 200, r.text
                return bytes(r.content)

            for i in range(0, len(jobs), 1000):
                regs = [
                    registry.Registration(canonical.for_registry(j, home=HOME))
                    for j in jobs[i : i + 1000]
                ]
                send("POST", "/ingest", msgspec.json.encode(registry.Batch(jobs=regs)))
            for by in BY:
                seconds = []
                for _ in range(7):
                    start = time.perf_counter()
                    found = send("GET", "/compute", by=by, since="30d")
                    seconds.append(time.perf_counter() - start)
                report = msgspec.json.decode(found, type=registry.ComputeReport)
                print(
                    f"{backend:9} report by {by} of {report.total.jobs:,} jobs "
                    f"({len(report.rows)} rows, {report.total.read_jobs:,} read): "
                    f"median {statistics.median(seconds) * 1000:.0f} ms, "
                    f"max {max(seconds) * 1000:.0f} ms"
                )


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args()
    jobs = _jobs(args.jobs, time.time())
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
            run(backend, jobs, Path(tmp))


if __name__ == "__main__":
    main()
