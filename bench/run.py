"""`make bench`: wall-time ratios of `roarctl run CMD` (and `strace -f`) to the bare CMD.

Each workload runs N paired rounds (bare and traced back to back, order alternating) and reports
the median ratio, so machine noise hits both sides alike. A private HOME/XDG tree keeps the
benchmark's jobs out of your store; its daemon is started before timing and stopped after.
One workload is a real project: the test suite of more-itertools, run by pytest from its sdist
(downloaded once with `pip download` into ~/.cache/roar-bench, checked against its sha256),
with CPython's bytecode cache on, as users have it.

    python bench/run.py [--rounds 7] [--only prep2000,cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import private_tree

BIN = Path(sys.executable).parent
ROARCTL = str(BIN / "roarctl")
PY = os.path.realpath(sys.executable)  # the real interpreter, not a shim

PREP = """
import csv, glob, json, sys
total = 0.0
for name in sorted(glob.glob(sys.argv[1] + "/*.csv")):
    with open(name, newline="") as f:
        for row in csv.reader(f):
            total += float(row[1])
json.dump({"total": total}, open(sys.argv[2], "w"))
"""
CPU = """
n = 0
for i in range(17_000_000):
    n += i % 7
print(n)
"""
IMPORTS = (
    "import json, csv, decimal, fractions, statistics, datetime, pathlib, argparse, logging, "
    "subprocess, threading, asyncio, email.message, http.client, urllib.request, xml.etree."
    "ElementTree, sqlite3, zipfile, tarfile, unittest"
)
TARGETS = {
    "prep2000": 3.5,
    "forky300": 2.0,
    "cpu": 1.05,
    "imports": 1.6,
    "make200": 0.0,
    "gitstatus": 0.0,
    "pytest-mi": 0.0,
}  # 0: no target of its own (never slower than strace)
# A small pure-Python library whose sdist carries its test suite (663 tests, ~3 s bare).
SDIST = "more-itertools-10.5.0.tar.gz"
SDIST_REQ = "more-itertools==10.5.0"
SDIST_SHA256 = "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roar-bench"


def sdist() -> Path | None:
    """The library's sdist, downloaded from PyPI on first use (None if that fails)."""
    path = CACHE / SDIST
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary"]
        got = subprocess.run([*pip, ":all:", SDIST_REQ, "-d", str(CACHE)], check=False)
        if got.returncode != 0 or not path.exists():
            print(f"could not download {SDIST_REQ}: skipping pytest-mi", file=sys.stderr)
            return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != SDIST_SHA256:
        print(f"{path} does not match its sha256: remove it", file=sys.stderr)
        return None
    return path


def workloads(work: Path) -> dict[str, list[str]]:
    data = work / "csv"
    if not data.exists():
        data.mkdir()
        for i in range(2000):
            (data / f"part{i:04d}.csv").write_text(f"{i},{i * 0.5}\n{i + 1},{i * 0.25}\n")
    (work / "in.txt").write_text("hello\n" * 10)
    src = work / "cbuild"
    if not src.exists():  # ~200 small C files and a Makefile: a parallel build
        src.mkdir()
        for i in range(200):
            (src / f"f{i:03d}.c").write_text(
                f"int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; "
                "return s; }\n"
            )
        objs = " ".join(f"f{i:03d}.o" for i in range(200))
        (src / "Makefile").write_text(
            f"all: lib.a\nlib.a: {objs}\n\tar rcs $@ $^\n%.o: %.c\n\tcc -O1 -c $< -o $@\n"
            "clean:\n\trm -f *.o lib.a\n"
        )
    repo = work / "gitrepo"
    if not repo.exists():  # a git repository with 2,000 files, queried 30 times
        repo.mkdir()
        for i in range(2000):
            (repo / f"file{i:04d}.txt").write_text(f"{i}\n")
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
        subprocess.run([*git, "-C", str(repo), "commit", "-qm", "x"], check=True)
    (work / "prep.py").write_text(PREP)
    (work / "cpu.py").write_text(CPU)
    real = {}
    archive = sdist()
    if archive is not None:
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(work)], check=True)
        lib = work / SDIST.removesuffix(".tar.gz")
        # The venv's python (pytest lives there), in the project, bytecode cache on.
        env_ = ["env", "-u", "PYTHONDONTWRITEBYTECODE", "-C", str(lib)]
        real["pytest-mi"] = [*env_, sys.executable, "-m", "pytest", "-q"]
    return {
        "prep2000": [PY, str(work / "prep.py"), str(data), str(work / "out.json")],
        "forky300": ["sh", "-c", "for i in $(seq 300); do cat in.txt > /dev/null; done"],
        "cpu": [PY, str(work / "cpu.py")],
        "imports": [PY, "-c", IMPORTS],
        "make200": ["sh", "-c", f"make -s -C {src} clean && make -s -j2 -C {src}"],
        "gitstatus": ["sh", "-c", f"for i in $(seq 30); do git -C {repo} status -s; done"],
        **real,
    }


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    base, env = private_tree("roar-bench-")
    strace = shutil.which("strace")
    roar = [ROARCTL, "run", "-q", "--"]
    tracers = {"roar": roar}
    if strace:
        tracers["strace"] = [strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=%file,%process"]
    try:
        subprocess.run([ROARCTL, "daemon", "start"], env=env, check=True, capture_output=True)
        chosen = {
            k: v for k, v in workloads(base).items() if not args.only or k in args.only.split(",")
        }
        print(
            f"{'workload':<10} {'bare s':>8} "
            + " ".join(f"{t + ' x':>9}" for t in tracers)
            + f" {'target':>7}"
        )
        for name, argv in chosen.items():
            timed(argv, base, env)  # warm caches
            for prefix in tracers.values():
                timed(prefix + argv, base, env)
            bare_times: list[float] = []
            ratios: dict[str, list[float]] = {t: [] for t in tracers}
            for i in range(args.rounds):
                for t, prefix in tracers.items():
                    if i % 2:
                        traced, bare = timed(prefix + argv, base, env), timed(argv, base, env)
                    else:
                        bare, traced = timed(argv, base, env), timed(prefix + argv, base, env)
                    bare_times.append(bare)
                    ratios[t].append(traced / bare)
            cells = " ".join(f"{statistics.median(r):>8.2f}x" for r in ratios.values())
            target = f"<= {TARGETS[name]}" if TARGETS[name] else "-"
            print(
                f"{name:<10} {statistics.median(bare_times):>8.3f} {cells} {target:>7}", flush=True
            )
        fixed = []
        for _ in range(max(args.rounds, 9)):
            bare = timed(["/bin/true"], base, env)
            fixed.append(timed([*roar, "/bin/true"], base, env) - bare)
        print(
            f"fixed cost of `roarctl run /bin/true`: {statistics.median(fixed) * 1000:.0f} ms"
            " (target <= 100 ms)"
        )
    finally:
        subprocess.run([ROARCTL, "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
