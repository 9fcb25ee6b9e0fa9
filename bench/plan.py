"""The reproduction plan's latency: `roarctl reproduce TARGET --dry-run` for a target whose
ancestry is 1,000 jobs, in a store of 5,000 (4,000 of them other pipelines' jobs).

The ancestry is a pipeline of one real git repository (the script is committed; each job's
git state names the commit): job k reads job k-1's output, every fifth job also job k-3's (a
fan-in), the script, a config and now and then one of 50 raw data files (real files, found by
hash). Each job ran a real virtualenv's python with 40 packages, and used 20 system packages.
Rows are written through roard's store layer (the same inserts a run makes), then roard starts.

"roard ms" is GetPlan over an already open connection (roard's share: the recursive producer
query, the bulk read of 1,000 records, locating the root inputs through the hash cache, the
checks against this machine); "cli ms" is the whole `roarctl reproduce --dry-run --json`.
Target: <= 200 ms for the plan. The first round is reported apart: it reads the dpkg index
and probes the interpreter once per roard.

    python bench/plan.py [--rounds 9] [--jobs 1000] [--other 4000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import blake3
from common import private_tree

BIN = Path(sys.executable).parent
ROARCTL = str(BIN / "roarctl")


def sh(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, env: dict[str, str]) -> str:
    (root / "data").mkdir(parents=True)
    (root / ".gitignore").write_text("/data/\n/out/\n/venv/\n")
    (root / "stage.py").write_text("import sys\nprint(sys.argv)\n")
    (root / "config.yaml").write_text("lr: 0.01\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    sh([*git, "init", "-q", "-b", "main"], root, env)
    sh([*git, "add", "-A"], root, env)
    sh([*git, "commit", "-q", "-m", "pipeline"], root, env)
    return sh(["git", "rev-parse", "HEAD"], root, env).strip()


async def fill(db: Path, repo: Path, commit: str, python: str, n: int, other: int) -> str:
    """Write the jobs; the hash of the last job's output (the target)."""
    from roar.model import FilteredSummary, GitState, Hardware, Package, SystemPackages
    from roard.capture import hardware
    from roard.store import Store, hashcache
    from roard.store import jobs as rows
    from roard.store import sessions as session_rows

    rng = random.Random(1)

    def h(text: str) -> str:
        return blake3.blake3(text.encode()).hexdigest()

    store = await Store.open(db)
    try:
        pkgs = await rows.put_blob(store, [Package(f"lib{i:02d}", f"1.{i}.0") for i in range(40)])
        system_blob = await rows.put_blob(
            store, SystemPackages("dpkg", [Package(f"sys{i:02d}", "2.0") for i in range(20)])
        )
        env_blob = await rows.put_blob(store, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        hw: Hardware = hardware.hardware()
        hw_blob = await rows.put_blob(store, hw)
        git = GitState(root=str(repo), commit=commit, branch="main")
        code = (repo / "stage.py").read_bytes()
        config = (repo / "config.yaml").read_bytes()
        raw: list[tuple[bytes, str, int]] = []
        cache = []
        for i in range(50):
            path = repo / "data" / f"raw-{i:02d}.csv"
            data = f"raw {i}\n".encode() * 100
            path.write_bytes(data)
            st = path.stat()
            digest = blake3.blake3(data).hexdigest()
            raw.append((os.fsencode(path), digest, len(data)))
            cache.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest))
        t = time.time() - 30 * 86400
        outputs: list[tuple[bytes, str]] = []
        target = ""
        async with store.write() as tx:
            pid = await tx.scalar(
                "INSERT INTO projects (root, created) VALUES (?, ?) RETURNING id",
                (os.fsencode(repo), t),
            )
            session = await session_rows.create(tx, pid, t)
            noise = await session_rows.create(tx, None, t)
            order = ["main"] * n + ["other"] * other
            rng.shuffle(order)
            k = 0
            for kind in order:
                t += rng.uniform(1, 60)
                jid = f"{rng.getrandbits(48):012x}"
                if kind == "other":
                    ios = [(0, f"/srv/other/in-{jid}".encode(), h("o" + jid), 10, None)]
                    ios.append((1, f"/srv/other/out-{jid}".encode(), h("p" + jid), 10, None))
                    cwd, where, step = b"/srv/other", noise, None
                else:
                    k += 1
                    out = os.fsencode(repo / "out" / f"stage-{k:04d}.bin")
                    ios = [
                        (
                            0,
                            os.fsencode(repo / "stage.py"),
                            blake3.blake3(code).hexdigest(),
                            len(code),
                            None,
                        ),
                        (
                            0,
                            os.fsencode(repo / "config.yaml"),
                            blake3.blake3(config).hexdigest(),
                            len(config),
                            None,
                        ),
                    ]
                    for back in (1, 3) if k % 5 == 0 else (1,):
                        if k > back:
                            ios.append(
                                (0, outputs[k - back - 1][0], outputs[k - back - 1][1], 100, None)
                            )
                    if k % 20 == 1:
                        ios.append((0, *raw[(k // 20) % 50][:2], raw[(k // 20) % 50][2], None))
                    digest = h(f"stage {k}")
                    outputs.append((out, digest))
                    ios.append((1, out, digest, 100, None))
                    target = digest
                    cwd, where, step = os.fsencode(repo), session, k
                argv = ["python", "stage.py", "--stage", str(k)]
                await rows.insert(
                    tx,
                    job_id=jid,
                    project_id=pid if kind == "main" else None,
                    status="running",
                    command=" ".join(argv),
                    argv=argv,
                    cwd=cwd,
                    started=t,
                    kind="run",
                    session=where,
                    step=step,
                    git=git if kind == "main" else None,
                    env_blob=env_blob,
                    hardware_blob=hw_blob,
                )
                await rows.add_io(tx, jid, ios, t)
                await rows.settle(
                    tx,
                    jid,
                    status="complete",
                    ended=t + 0.5,
                    exit_code=0,
                    signal=None,
                    inputs=sum(1 for r in ios if r[0] == 0),
                    outputs=sum(1 for r in ios if r[0] == 1),
                    packages={python: pkgs} if kind == "main" else {},
                    processes=[],
                    blind_spots=[],
                    filtered=FilteredSummary(),
                    trackers=[],
                    external=[],
                    system_blob=system_blob if kind == "main" else None,
                )
            await hashcache.put(tx, cache)
    finally:
        await store.close()
    return target


def roard_ms(target: str, cwd: Path, into: Path, rounds: int) -> tuple[float, list[float], int]:
    """GetPlan over one open connection: (first, the rest, jobs planned)."""
    from roar.protocol import GetPlan, PlanReply
    from roarctl.client import Client

    times = []
    jobs = 0
    with Client.connect() as c:
        for _ in range(rounds + 1):
            t = time.perf_counter()
            reply = c.call(
                GetPlan(target=os.fsencode(target), cwd=os.fsencode(cwd), into=os.fsencode(into)),
                expect=PlanReply,
            )
            times.append((time.perf_counter() - t) * 1000)
            jobs = len(reply.jobs)
    return times[0], times[1:], jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--other", type=int, default=4000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base, env = private_tree("roar-bench-plan-")
    os.environ.update(env)
    try:
        repo = base / "repo"
        repo.mkdir()
        commit = make_repo(repo, env)
        sh([sys.executable, "-m", "venv", "--without-pip", str(repo / "venv")], repo, env)
        python = str(repo / "venv" / "bin" / "python")
        db = base / "data" / "roar" / "roar.db"
        began = time.perf_counter()
        target = anyio.run(fill, db, repo, commit, python, args.jobs, args.other)
        print(f"store: {args.jobs + args.other} jobs written in {time.perf_counter() - began:.1f}s")
        into = base / "out"
        first, rest, jobs = roard_ms(target, repo, into, args.rounds)
        cli = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            subprocess.run(
                [ROARCTL, "reproduce", target, "--dry-run", "--json", "--into", str(into)],
                cwd=repo,
                env=env,
                check=True,
                capture_output=True,
            )
            cli.append((time.perf_counter() - t) * 1000)
        print(f"plan of {jobs} jobs (ancestry of {target[:12]}):")
        print(
            f"  roard ms  first {first:6.1f}   median {statistics.median(rest):6.1f}"
            f"   max {max(rest):6.1f}   ({args.rounds} rounds)"
        )
        print(f"  cli ms              median {statistics.median(cli):6.1f}   max {max(cli):6.1f}")
        subprocess.run([ROARCTL, "daemon", "stop"], env=env, capture_output=True)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
