"""Query latency on a big store: `log`, `show`, `status`, `dag`, `lineage`, `inputs` as a user
runs them (full `roarctl` invocations, wall time), against 10,000 jobs and 100,000 artifacts.

A private HOME/XDG tree keeps this away from your store. The store is filled through roard's
store layer (roard.store: the real schema and the same inserts a run makes), then roard starts.
Targets: <= 100 ms for show/log/status/dag, <= 200 ms for lineage/inputs of a 50-level chain.
The "roard ms" column is the same request sent over an already open connection: the daemon's
share, without the CLI's start-up and rendering.

    python bench/queries.py [--rounds 9] [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import blake3
import msgspec
from common import private_tree

BIN = Path(sys.executable).parent
ROARCTL = str(BIN / "roarctl")

N_JOBS = 10_000
N_ARTIFACTS = 100_000
OTHER_JOBS = 1_000  # a second project's jobs, interleaved in time with the main project's
MAIN_SESSIONS = 20  # the last one is the current session; one other is the chain session
CURRENT_STEPS = 60
CHAIN = 50
VERBS = ["fetch", "clean", "split", "tokenize", "featurize", "train", "tune", "evaluate", "plot"]


@dataclass
class Job:
    id: str
    project: int
    session: tuple[int, int]  # (project, n): mapped to a sessions.id once times are known
    step: int
    argv: list[str]
    cwd: bytes
    inputs: list[tuple[int, int]] = field(default_factory=list)  # (path id, artifact id)
    outputs: list[tuple[int, int]] = field(default_factory=list)
    seq: int = 0
    started: float = 0.0
    duration: float = 1.0


class Builder:
    """Paths and artifacts in memory, ids in insertion order (as the rows will get them)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.paths: dict[bytes, int] = {}
        self.artifacts: list[list[Any]] = []  # [hash, size, first_seen]
        self.job_ids: set[str] = set()

    def path(self, p: bytes) -> int:
        return self.paths.setdefault(p, len(self.paths) + 1)

    def artifact(self, size: int) -> int:
        self.artifacts.append([f"{self.rng.getrandbits(256):064x}", size, None])
        return len(self.artifacts)

    def job_id(self) -> str:
        while True:
            jid = f"{self.rng.getrandbits(48):012x}"
            if jid not in self.job_ids:
                self.job_ids.add(jid)
                return jid


@dataclass
class Project:
    id: int
    root: Path
    code: dict[str, int] = field(default_factory=dict)  # code path -> current artifact
    config: int = 0

    def p(self, rel: str) -> bytes:
        return os.fsencode(self.root / rel)


def _code(b: Builder, proj: Project, rel: str) -> tuple[int, int]:
    """The script a step runs: same path, a new version now and then."""
    if rel not in proj.code or b.rng.random() < 0.05:
        proj.code[rel] = b.artifact(b.rng.randint(1_000, 30_000))
    if not proj.config or b.rng.random() < 0.002:
        proj.config = b.artifact(800)
    return b.path(proj.p(rel)), proj.code[rel]


def gen_session(
    b: Builder, proj: Project, n: int, steps: int, n_jobs: int
) -> tuple[list[Job], dict[int, Job]]:
    """One session: steps 1..N in order, then re-runs (later steps more often), each reading the
    latest output of the step before it (and sometimes of one three back)."""
    rng = b.rng
    order = list(range(1, steps + 1))
    order += rng.choices(range(1, steps + 1), weights=range(1, steps + 1), k=n_jobs - steps)
    latest: dict[int, tuple[int, int]] = {}  # step -> (path id, artifact id) of its main output
    last_job: dict[int, Job] = {}
    jobs: list[Job] = []
    for step in order:
        name = f"step{step:02d}_{VERBS[step % len(VERBS)]}"
        jid = b.job_id()
        argv = ["python", f"src/{name}.py", "--out", f"out/step{step:02d}.parquet"]
        if step > 1:
            argv += ["--in", f"out/step{step - 1:02d}.parquet"]
        argv += [
            "--seed",
            str(rng.randint(0, 9)),
            "--lr",
            f"{rng.choice([1, 3]) * 10 ** -rng.randint(2, 4):g}",
        ]
        job = Job(jid, proj.id, (proj.id, n), step, argv, os.fsencode(proj.root))
        job.inputs.append(_code(b, proj, f"src/{name}.py"))
        job.inputs.append((b.path(proj.p("config.yaml")), proj.config))
        for up in (step - 1, step - 3 if rng.random() < 0.25 else 0):
            if up in latest:
                job.inputs.append(latest[up])
        main = (
            b.path(proj.p(f"out/step{step:02d}.parquet")),
            b.artifact(rng.randint(10**4, 10**8)),
        )
        metrics = (b.path(proj.p(f"runs/{jid}/metrics.json")), b.artifact(rng.randint(200, 5_000)))
        job.outputs += [main, metrics]
        job.duration = rng.uniform(0.5, 600)
        latest[step] = main
        last_job[step] = job
        jobs.append(job)
    return jobs, last_job


def gen_chain(b: Builder, proj: Project, n: int) -> list[Job]:
    """CHAIN jobs, job k reading only job k-1's output (plus code, config and its own data)."""
    jobs: list[Job] = []
    prev: tuple[int, int] | None = None
    for k in range(1, CHAIN + 1):
        jid = b.job_id()
        out = f"out/chain/stage{k:02d}.bin"
        argv = ["python", "src/chain.py", "--stage", str(k), "--out", out]
        if prev is not None:
            argv += ["--in", f"out/chain/stage{k - 1:02d}.bin"]
        job = Job(jid, proj.id, (proj.id, n), k, argv, os.fsencode(proj.root))
        job.inputs.append(_code(b, proj, "src/chain.py"))
        job.inputs.append((b.path(proj.p("config.yaml")), proj.config))
        if prev is not None:
            job.inputs.append(prev)
        prev = (b.path(proj.p(out)), b.artifact(b.rng.randint(10**4, 10**7)))
        job.outputs += [prev, (b.path(proj.p(f"runs/{jid}/log.txt")), b.artifact(3_000))]
        jobs.append(job)
    return jobs


def add_data_inputs(b: Builder, jobs: list[Job], roots: dict[int, Project]) -> None:
    """Raw data files (one artifact each) until the store holds exactly N_ARTIFACTS."""
    need = N_ARTIFACTS - len(b.artifacts)
    weights = [b.rng.randint(1, 15) for _ in jobs]
    total = sum(weights)
    counts = [w * need // total for w in weights]
    for i in b.rng.sample(range(len(jobs)), need - sum(counts)):
        counts[i] += 1
    n = 0
    for job, count in zip(jobs, counts, strict=True):
        proj = roots[job.project]
        for _ in range(count):
            n += 1
            size = b.rng.randint(10**3, 10**7)
            job.inputs.append((b.path(proj.p(f"data/raw/part-{n:06d}.csv")), b.artifact(size)))


def interleave(rng: random.Random, a: list[Job], b: list[Job]) -> list[Job]:
    out: list[Job] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < (len(a) - i) / (len(a) - i + len(b) - j)):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


@dataclass
class Targets:
    """What the timed commands point at."""

    job: str = ""  # the current session's newest job
    artifact_prefix: str = ""  # an output of the current session, read by a later step
    output_path: str = ""  # relative to the project, exists with the recorded content
    hot_prefix: str = ""  # the most read artifact (a config.yaml version)
    hot_readers: int = 0
    chain_start: str = ""
    chain_end: str = ""
    other_root: Path = Path()


def sh(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)


def make_repo(root: Path, env: dict[str, str], files: dict[str, str]) -> None:
    root.mkdir(parents=True)
    (root / ".gitignore").write_text("/data/\n/out/\n/runs/\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    sh([*git, "init", "-q", "-b", "main"], root, env)
    sh([*git, "add", "-A"], root, env)
    sh([*git, "commit", "-q", "-m", "pipeline"], root, env)


def fill(db: Path, main: Project, other: Project, env: dict[str, str]) -> tuple[Targets, dict]:
    """Generate the store's rows and write them in one transaction."""
    b = Builder(random.Random(env["BENCH_SEED"]))
    rng = b.rng
    roots = {main.id: main, other.id: other}
    per_session = (N_JOBS - OTHER_JOBS - CHAIN) // (MAIN_SESSIONS - 1)
    main_jobs: list[Job] = []
    current: dict[int, Job] = {}
    chain: list[Job] = []
    for n in range(1, MAIN_SESSIONS + 1):
        if n == MAIN_SESSIONS // 2:
            chain = gen_chain(b, main, n)
            main_jobs += chain
            continue
        last = n == MAIN_SESSIONS
        size = (
            N_JOBS - OTHER_JOBS - CHAIN - per_session * (MAIN_SESSIONS - 2) if last else per_session
        )
        steps = CURRENT_STEPS if last else rng.randint(20, CURRENT_STEPS)
        jobs, current = gen_session(b, main, n, steps, size)
        main_jobs += jobs
    other_jobs: list[Job] = []
    for n in (1, 2):
        other_jobs += gen_session(b, other, n, 20, OTHER_JOBS // 2)[0]
    jobs = interleave(rng, main_jobs, other_jobs)
    add_data_inputs(b, jobs, roots)

    # times, seqs, sessions (ids in order of their first job), first_seen
    t = time.time() - 90 * 86400
    sessions: dict[tuple[int, int], tuple[int, int, float]] = {}  # key -> (id, project, started)
    for seq, job in enumerate(jobs, start=1):
        t += rng.uniform(300, 1000)
        job.seq, job.started = seq, t
        if job.session not in sessions:
            sessions[job.session] = (len(sessions) + 1, job.project, t - 1)
        for _, aid in job.inputs + job.outputs:
            art = b.artifacts[aid - 1]
            if art[2] is None:
                art[2] = t

    # the current session's latest outputs exist, with the content recorded for them
    cache: list[tuple[int, int, int, int, int, str]] = []
    by_id = {i: p for p, i in b.paths.items()}
    for job in current.values():
        for pid, aid in job.outputs:
            path = by_id[pid]
            data = f"{job.id} {path.decode()}\n".encode() * 20
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            st = os.stat(path)
            digest = blake3.blake3(data).hexdigest()
            b.artifacts[aid - 1][:2] = [digest, len(data)]
            cache.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest))

    newest = max(current.values(), key=lambda j: j.seq)
    readers = Counter(aid for j in jobs for _, aid in j.inputs)
    hot = readers.most_common(1)[0][0]
    mid = current[CURRENT_STEPS // 2]
    hashes = [a[0] for a in b.artifacts]
    targets = Targets(
        job=newest.id,
        artifact_prefix=_prefix(hashes, b.artifacts[mid.outputs[0][1] - 1][0], b.job_ids),
        output_path=f"out/step{mid.step:02d}.parquet",
        hot_prefix=_prefix(hashes, b.artifacts[hot - 1][0], b.job_ids),
        hot_readers=readers[hot],
        chain_start=b.artifacts[chain[0].outputs[0][1] - 1][0],
        chain_end=b.artifacts[chain[-1].outputs[0][1] - 1][0],
        other_root=other.root,
    )

    anyio.run(write, db, list(roots.values()), sessions, jobs, b, cache)
    n_in = sum(len(j.inputs) for j in jobs)
    n_out = sum(len(j.outputs) for j in jobs)
    stats = {
        "jobs": len(jobs),
        "artifacts": len(b.artifacts),
        "paths": len(b.paths),
        "io": n_in + n_out,
        "in": n_in / len(jobs),
        "out": n_out / len(jobs),
        "sessions": len(sessions),
        "current_jobs": sum(1 for j in jobs if j.session == (main.id, MAIN_SESSIONS)),
    }
    return targets, stats


async def write(
    db: Path,
    projects: list[Project],
    sessions: dict[tuple[int, int], tuple[int, int, float]],
    jobs: list[Job],
    b: Builder,
    cache: list[tuple[int, int, int, int, int, str]],
) -> None:
    """The generated rows, written through roard's store layer in one transaction."""
    from roar.model import FilteredSummary
    from roard.store import Store, hashcache
    from roard.store import jobs as job_rows
    from roard.store import sessions as session_rows

    by_id = {i: p for p, i in b.paths.items()}
    store = await Store.open(db)
    try:
        project_ids = {
            p.id: await job_rows.project_id(store, os.fsencode(p.root)) for p in projects
        }
        async with store.write() as tx:
            session_ids = {
                key: await session_rows.create(tx, project_ids[proj], started)
                for key, (_, proj, started) in sessions.items()
            }
            for j in jobs:
                await job_rows.insert(
                    tx,
                    job_id=j.id,
                    project_id=project_ids[j.project],
                    status="running",
                    command=shlex.join(j.argv),
                    argv=j.argv,
                    cwd=j.cwd,
                    started=j.started,
                    kind="run",
                    session=session_ids[j.session],
                    step=j.step,
                )
                io = [
                    (role, by_id[pid], *b.artifacts[aid - 1][:2], None)
                    for role, rows in ((0, j.inputs), (1, j.outputs))
                    for pid, aid in rows
                ]
                await job_rows.add_io(tx, j.id, io, j.started)
                await job_rows.settle(
                    tx,
                    j.id,
                    status="complete",
                    ended=j.started + j.duration,
                    exit_code=0,
                    signal=None,
                    inputs=len(j.inputs),
                    outputs=len(j.outputs),
                    packages={},
                    processes=[],
                    blind_spots=[],
                    filtered=FilteredSummary(),
                    trackers=[],
                    external=[],
                )
            await hashcache.put(tx, cache)
    finally:
        await store.close()


def _prefix(hashes: list[str], digest: str, job_ids: set[str], n: int = 10) -> str:
    prefix = digest[:n]
    clashes = sum(h.startswith(prefix) for h in hashes) + sum(j.startswith(prefix) for j in job_ids)
    return prefix if clashes == 1 else digest


@dataclass
class Case:
    label: str
    argv: list[str]
    target_ms: float | None
    request: Callable[[], Any] | None  # the same request, for the roard-only timing
    cwd: Path | None = None


def cases(t: Targets, root: Path) -> list[Case]:
    from roar.protocol import GetDag, GetInputs, GetLineage, GetLog, GetStatus, Ping, Show

    cwd = os.fsencode(root)
    other = os.fsencode(t.other_root)
    return [
        Case("daemon status (CLI fixed cost)", ["daemon", "status"], None, Ping),
        Case("log", ["log"], 100, lambda: GetLog(cwd=cwd)),
        Case("log --json", ["log", "--json"], 100, lambda: GetLog(cwd=cwd)),
        Case(
            "show <job id>", ["show", t.job], 100, lambda: Show(target=os.fsencode(t.job), cwd=cwd)
        ),
        Case(
            "show <artifact prefix>",
            ["show", t.artifact_prefix],
            100,
            lambda: Show(target=os.fsencode(t.artifact_prefix), cwd=cwd),
        ),
        Case(
            "show <path>",
            ["show", t.output_path],
            100,
            lambda: Show(target=os.fsencode(t.output_path), cwd=cwd),
        ),
        Case("status", ["status"], 100, lambda: GetStatus(cwd=cwd)),
        Case("dag", ["dag"], 100, lambda: GetDag(cwd=cwd)),
        Case("dag --json", ["dag", "--json"], 100, lambda: GetDag(cwd=cwd)),
        Case(
            f"lineage <chain end> ({CHAIN} levels)",
            ["lineage", t.chain_end[:12]],
            200,
            lambda: GetLineage(target=os.fsencode(t.chain_end[:12]), cwd=cwd),
        ),
        Case(
            "lineage <chain start> --downstream",
            ["lineage", t.chain_start[:12], "--downstream"],
            200,
            lambda: GetLineage(target=os.fsencode(t.chain_start[:12]), cwd=cwd, downstream=True),
        ),
        Case(
            "inputs <chain end>",
            ["inputs", t.chain_end[:12]],
            200,
            lambda: GetInputs(target=os.fsencode(t.chain_end[:12]), cwd=cwd),
        ),
        # beyond the list: heavier but ordinary questions
        Case(
            f"show <config.yaml, {t.hot_readers} readers>",
            ["show", t.hot_prefix],
            100,
            lambda: Show(target=os.fsencode(t.hot_prefix), cwd=cwd),
        ),
        Case(
            f"lineage out/step{CURRENT_STEPS}.parquet",
            ["lineage", f"out/step{CURRENT_STEPS}.parquet"],
            200,
            lambda: GetLineage(target=os.fsencode(f"out/step{CURRENT_STEPS}.parquet"), cwd=cwd),
        ),
        Case("log (small project)", ["log"], 100, lambda: GetLog(cwd=other), t.other_root),
    ]


def cli_ms(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run([ROARCTL, *argv], cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - began) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"roarctl {shlex.join(argv)} exited {proc.returncode}: {proc.stderr!r}")
    return elapsed


def roard_ms(client: Any, request: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds + 1):  # the first is a warm-up
        began = time.perf_counter()
        client.call(request(), expect=msgspec.Struct)  # any reply but an Error
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--keep", action="store_true", help="Keep the temp tree (roard stopped).")
    args = parser.parse_args()
    base, env = private_tree("roar-bench-q-")
    runtime = base / "run"
    env |= {
        "GIT_CONFIG_NOSYSTEM": "1",
        "BENCH_SEED": args.seed,
    }
    root = base / "project"
    db = base / "data/roar/roar.db"
    try:
        steps = {f"src/step{s:02d}_{VERBS[s % len(VERBS)]}.py": "print()\n" for s in range(1, 61)}
        make_repo(root, env, {**steps, "src/chain.py": "print()\n", "config.yaml": "lr: 0.01\n"})
        make_repo(base / "other", env, {"config.yaml": "lr: 0.1\n"})
        began = time.perf_counter()
        targets, st = fill(db, Project(1, root), Project(2, base / "other"), env)
        gen_s = time.perf_counter() - began
        db_mb = sum(f.stat().st_size for f in db.parent.glob("roar.db*")) / 1e6
        print(
            f"store: {st['jobs']} jobs, {st['artifacts']} artifacts, {st['paths']} paths,"
            f" {st['io']} job_io rows ({st['in']:.1f} in / {st['out']:.1f} out per job),"
            f" {st['sessions']} sessions (current: {CURRENT_STEPS} steps, {st['current_jobs']}"
            f" jobs); {db_mb:.1f} MB on disk; generated in {gen_s:.1f} s",
            flush=True,
        )
        sh([ROARCTL, "daemon", "start"], base, env)
        first = cli_ms(["status"], root, env)  # roard's first request: cold caches, imports

        from roar.paths import Paths
        from roarctl.client import Client

        where = Paths(
            runtime=runtime / "roar",
            data=db.parent,
            state=base / "state/roar",
            config_dir=base / "config/roar",
        )
        print(f"{'command':<38} {'median':>7} {'max':>7} {'roard':>7} {'target':>7}")
        print(f"{'status (roard first request)':<38} {first:>7.1f} {'-':>7} {'-':>7} {'-':>7}")
        over = 0
        with Client.connect(autostart=False, where=where) as client:
            for case in cases(targets, root):
                cwd = case.cwd or root
                cli_ms(case.argv, cwd, env)  # warm-up, and a check that it works
                times = [cli_ms(case.argv, cwd, env) for _ in range(args.rounds)]
                server = roard_ms(client, case.request, args.rounds) if case.request else None
                med = statistics.median(times)
                verdict = ""
                if case.target_ms is not None:
                    verdict = "OK" if med <= case.target_ms else "over"
                    over += verdict == "over"
                target = f"{case.target_ms:.0f}" if case.target_ms else "-"
                print(
                    f"{case.label:<38} {med:>7.1f} {max(times):>7.1f}"
                    f" {'-' if server is None else f'{server:.1f}':>7} {target:>7} {verdict}",
                    flush=True,
                )
        print("(ms; median and max of full `roarctl` runs; roard: the request alone)")
        return 1 if over else 0
    finally:
        subprocess.run([ROARCTL, "daemon", "stop"], env=env, capture_output=True, check=False)
        if args.keep:
            print(f"kept {base} (env: HOME={base} XDG_RUNTIME_DIR={runtime} XDG_*=...)")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
