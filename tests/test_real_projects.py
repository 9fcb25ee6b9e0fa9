"""The real projects tier: small real-world shapes (a Python package whose test suite pytest runs
twice, a C library whose Makefile builds and links a shared library and a program that is then
run, a pipeline of copies and atomic directory renames), each step run under roar and checked
for the lineage a user expects; and, where strace is installed, each run again under `strace -f`
in an identical twin of the project, whose file list roar's record must cover: zero misses (a
file of the project strace saw read or written that roar did not record, after roar's documented
filters), and nothing recorded that strace did not see. Without strace (`make test` installs it
as root) the comparisons are skipped and the lineage checks still run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
import strace_oracle
from conftest import Roar, git_repo

from roard.filters import Filters

PY = sys.executable
STRACE = shutil.which("strace")


class Twins:
    """One project built twice from the same files: `roar` is run under roarctl, `strace`
    under strace, the same commands in the same order."""

    def __init__(self, roar: Roar, name: str, files: dict[str, str]) -> None:
        self.roar = roar
        self.repo = git_repo(roar, roar.work / name, files)
        self.twin = git_repo(roar, roar.work / f"{name}-strace", files)
        self.filters = Filters().for_run()
        self.runs = 0

    def run(self, *argv: str) -> dict:
        """Run argv under roar (the job's record) and, with strace, in the twin; assert
        that roar's record covers what strace saw."""
        job = self.roar.run(*argv, cwd=self.repo)
        if STRACE is not None:
            self.runs += 1
            log = self.roar.base / f"strace-{self.twin.name}-{self.runs}.log"
            before = strace_oracle.files_under(self.twin)
            self.roar.exec([STRACE, *strace_oracle.TRACE, "-o", str(log), *argv], cwd=self.twin)
            seen = strace_oracle.parse(log, self.twin)
            strace_oracle.pyc_sources(seen)
            want = strace_oracle.expected(
                seen, self.twin, before, lambda p: self.filters.rule(p.encode()) is None
            )
            got = {
                path
                for role in ("inputs", "outputs")
                for path in io(job, self.repo, role)
                if not path.startswith("../")  # the project's files, as `want`
            }
            assert not want - got, f"{argv}: roar missed {sorted(want - got)} (strace saw them)"
            assert not got - want, f"{argv}: roar recorded {sorted(got - want)}, strace did not"
        return job


def io(job: dict, root: Path, role: str) -> dict[str, str]:
    """A job's inputs or outputs: path relative to root -> hash."""
    return {os.path.relpath(r["path"], root): r["hash"] for r in job[role]}


def b3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def dag(roar: Roar, repo: Path) -> dict[str, list[str]]:
    return {s["ref"]: s["depends_on"] for s in roar.json("dag", cwd=repo)["steps"]}


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (`make test` installs it)")
def test_the_strace_oracle_follows_directories_renames_and_programs(tmp_path: Path) -> None:
    """The oracle itself, on a script whose file list is known: relative paths joined to the
    working directory through `cd`, a directory renamed with its file, a program run."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "in.txt").write_text("i\n")
    (tmp_path / "sub" / "prog").write_text("#!/bin/sh\ncat ../in.txt > out.txt\n")
    (tmp_path / "sub" / "prog").chmod(0o755)
    log = tmp_path / "strace.log"
    script = "mkdir d.tmp && echo x > d.tmp/f && mv d.tmp d && cd sub && ./prog"
    cmd = [STRACE or "strace", *strace_oracle.TRACE, "-o", str(log), "sh", "-c", script]
    subprocess.run(cmd, cwd=tmp_path, check=True)
    seen = strace_oracle.parse(log, tmp_path)
    assert {str(tmp_path / p) for p in ("in.txt", "sub/prog")} <= seen.read
    assert {str(tmp_path / p) for p in ("d/f", "sub/out.txt")} <= seen.written
    want = strace_oracle.expected(seen, tmp_path, {"in.txt", "sub/prog"}, lambda p: True)
    assert want == {"in.txt", "sub/prog", "d/f", "sub/out.txt"}


# ------------------------------------------------------------------ a Python package and its tests

PACKAGE = {
    "pyproject.toml": '[project]\nname = "stats"\nversion = "0.1"\n\n'
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    "stats/__init__.py": "from stats.core import mean, median\n",
    "stats/core.py": "def mean(xs):\n    return sum(xs) / len(xs)\n\n\n"
    "def median(xs):\n    s = sorted(xs)\n    n = len(s)\n"
    "    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2\n",
    "stats/load.py": "def numbers(path):\n    with open(path) as f:\n"
    "        return [float(line) for line in f if line.strip()]\n",
    "tests/__init__.py": "",
    "tests/test_core.py": "from stats import mean, median\n\n\n"
    "def test_mean():\n    assert mean([1, 2, 3]) == 2\n\n\n"
    "def test_median():\n    assert median([3, 1, 2, 4]) == 2.5\n",
    "tests/test_load.py": "import os\n\nfrom stats.load import numbers\n\n\n"
    "def test_numbers():\n"
    "    here = os.path.dirname(__file__)\n"
    "    assert numbers(os.path.join(here, 'data', 'values.txt')) == [1.0, 2.5, 4.0]\n",
    "tests/data/values.txt": "1\n2.5\n4\n",
}
SOURCES = ["stats/__init__.py", "stats/core.py", "stats/load.py"]
TESTS = ["tests/__init__.py", "tests/test_core.py", "tests/test_load.py"]


def test_a_package_test_suite_run_twice_by_pytest(roar: Roar) -> None:
    """The first run compiles every module into __pycache__ and builds .pytest_cache in a
    temporary directory renamed into place; the second loads the modules from __pycache__
    only (CPython stats each .py, opens its .pyc): the code that ran is still its inputs,
    hashed as the sources, and its dependency on the first run is the cache pytest wrote."""
    assert "PYTHONDONTWRITEBYTECODE" not in roar.env  # the bytecode cache is in use
    p = Twins(roar, "stats", PACKAGE)
    first = p.run(PY, "-m", "pytest", "-q")
    ins, outs = io(first, p.repo, "inputs"), io(first, p.repo, "outputs")
    assert set(SOURCES + TESTS) | {"pyproject.toml", "tests/data/values.txt"} <= set(ins)
    # .pytest_cache is made in a temporary directory renamed into place: its files are
    # outputs under their final names.
    assert {".pytest_cache/README.md", ".pytest_cache/v/cache/nodeids"} <= set(outs)
    assert not any("pytest-cache-files-" in o for o in outs)  # the temporary name
    assert any((p.repo / "stats/__pycache__").iterdir())  # the second run reads bytecode

    second = p.run(PY, "-m", "pytest", "-q")
    ins = io(second, p.repo, "inputs")
    for source in SOURCES + TESTS:  # loaded from __pycache__, recorded as the source
        assert ins.get(source) == b3(p.repo / source), source
    assert not any("__pycache__" in path for path in ins)
    assert ".pytest_cache/v/cache/nodeids" in ins  # what the first run left for it
    tree = roar.json("lineage", "stats/core.py", "--downstream", cwd=p.repo)["root"]
    assert {n["id"] for n in tree["children"]} == {first["job"]["id"], second["job"]["id"]}


# ------------------------------------------------------------------ a C library and its program

LIBRARY = {
    "vec.h": "double vec_sum(const double *v, int n);\n",
    "vec.c": '#include "vec.h"\n'
    "double vec_sum(const double *v, int n) {\n"
    "    double s = 0;\n    for (int i = 0; i < n; i++) s += v[i];\n    return s;\n}\n",
    "main.c": '#include <stdio.h>\n#include "vec.h"\n'
    "int main(int argc, char **argv) {\n"
    "    double v[64]; int n = 0;\n"
    '    FILE *f = fopen(argv[1], "r");\n'
    '    while (n < 64 && fscanf(f, "%lf", &v[n]) == 1) n++;\n'
    '    fclose(f);\n    printf("%g\\n", vec_sum(v, n));\n    return 0;\n}\n',
    "Makefile": "CFLAGS = -O1 -fPIC\n\nall: app\n\n"
    "vec.o: vec.c vec.h\n\t$(CC) $(CFLAGS) -c -o $@ vec.c\n\n"
    "libvec.so: vec.o\n\t$(CC) -shared -o $@ vec.o\n\n"
    "app: main.c vec.h libvec.so\n\t$(CC) $(CFLAGS) -o $@ main.c -L. -lvec "
    "-Wl,-rpath,'$$ORIGIN'\n",
    "data.txt": "1.5\n2.5\n3\n",
}


def test_a_c_library_built_by_make_then_its_program_run(roar: Roar) -> None:
    """A shared library built in the project is an output of the build and an input of what
    links it; the program built is an input of the job that runs it, and so is the library
    the dynamic loader opens for it: the result's lineage reaches the library's source."""
    p = Twins(roar, "vec", LIBRARY)
    build = p.run("make", "-s")
    ins, outs = io(build, p.repo, "inputs"), io(build, p.repo, "outputs")
    assert {"vec.o", "libvec.so", "app"} <= set(outs)
    assert {"Makefile", "vec.c", "vec.h", "main.c"} <= set(ins)

    run = p.run("sh", "-c", "./app data.txt > result.txt")
    ins = io(run, p.repo, "inputs")
    assert ins["app"] == b3(p.repo / "app")
    assert ins["libvec.so"] == b3(p.repo / "libvec.so")
    assert "data.txt" in ins and set(io(run, p.repo, "outputs")) == {"result.txt"}
    assert (p.repo / "result.txt").read_text() == "7\n"
    assert dag(roar, p.repo)["@2"] == ["@1"]
    roots = roar.json("inputs", "result.txt", cwd=p.repo)
    assert {"vec.c", "main.c", "data.txt"} <= {os.path.relpath(r["path"], p.repo) for r in roots}


# ------------------------------------------------------------- a pipeline of copies and renames

BUILD = """
import json, os, sys
os.mkdir("dataset.tmp")
rows = 0
for i, name in enumerate(sorted(os.listdir("stage"))):
    with open(os.path.join("stage", name)) as f, open(f"dataset.tmp/part-{i}.csv", "w") as out:
        for line in f:
            out.write(line.upper())
            rows += 1
with open("dataset.tmp/manifest.json", "w") as f:
    json.dump({"rows": rows}, f)
os.rename("dataset.tmp", "dataset")
"""
REPORT = """
import json
rows = json.load(open("dataset/manifest.json"))["rows"]
total = sum(1 for _ in open("snapshot/all.csv"))
open("report.txt", "w").write(f"{rows} {total}\\n")
"""
PIPELINE = {
    "raw/a.csv": "x,1\ny,2\n",
    "raw/b.csv": "z,3\n",
    "build.py": BUILD,
    "report.py": REPORT,
}


def test_a_pipeline_of_copies_and_atomic_directory_renames(roar: Roar) -> None:
    """Copies (cp: copy_file_range), a directory Python fills and renames into place
    (rename), one the shell fills and `mv` renames (renameat2), an archive extracted into a
    temporary directory renamed into place: every file lands in the record under its final
    name, and the steps link up through them."""
    p = Twins(roar, "pipe", PIPELINE)
    p.run("sh", "-c", "mkdir stage && cp raw/a.csv raw/b.csv stage/")
    built = p.run(PY, "build.py")
    assert set(io(built, p.repo, "outputs")) == {
        "dataset/part-0.csv",
        "dataset/part-1.csv",
        "dataset/manifest.json",
    }
    assert set(io(built, p.repo, "inputs")) >= {"build.py", "stage/a.csv", "stage/b.csv"}
    snap = p.run(
        "sh",
        "-c",
        "mkdir snapshot.tmp && cat dataset/part-*.csv > snapshot.tmp/all.csv"
        " && mv snapshot.tmp snapshot",
    )
    assert set(io(snap, p.repo, "outputs")) == {"snapshot/all.csv"}
    report = p.run(PY, "report.py")
    assert set(io(report, p.repo, "inputs")) >= {"dataset/manifest.json", "snapshot/all.csv"}
    archive = p.run(
        "sh",
        "-c",
        "tar -cf dataset.tar dataset && mkdir x.tmp && tar -xf dataset.tar -C x.tmp"
        " && mv x.tmp extracted",
    )
    assert {
        "dataset.tar",
        "extracted/dataset/part-0.csv",
        "extracted/dataset/manifest.json",
    } <= set(io(archive, p.repo, "outputs"))
    # Each step depends on the ones that made what it read, and on no later one: the extracted
    # files hold the dataset's bytes, but @5 made them after the others read the dataset.
    assert dag(roar, p.repo) == {"@1": [], "@2": ["@1"], "@3": ["@2"], "@4": ["@2", "@3"],
                                 "@5": ["@2"]}  # fmt: skip
    tree = roar.json("lineage", "report.txt", cwd=p.repo)["root"]
    assert tree["children"][0]["id"] == report["job"]["id"]


def test_a_later_copy_is_not_the_producer(roar: Roar) -> None:
    """Issue 10's example: a job's input links only to a job that wrote that content before it
    started; no DAG edge or lineage step points forward in time; the copy is a copy."""
    repo = git_repo(roar, roar.work / "copy", {"a.txt": "raw data\n"})
    first = roar.run("sh", "-c", "wc -c < a.txt > n.txt", cwd=repo)
    cp = roar.run("cp", "a.txt", "b.txt", cwd=repo)
    assert dag(roar, repo) == {"@1": [], "@2": []}
    tree = roar.json("lineage", "n.txt", cwd=repo)["root"]
    (job,) = tree["children"]
    assert job["id"] == first["job"]["id"]
    assert [os.path.basename(n["label"]) for n in job["children"]] == ["a.txt"]
    assert job["children"][0]["children"] == []
    roots = roar.json("inputs", "n.txt", "--unsourced", cwd=repo)
    assert [os.path.relpath(r["path"], repo) for r in roots] == ["a.txt"]
    # show: the first job's input came from no job; the content has no producer, one copy
    shown = roar.json("show", first["job"]["id"], cwd=repo)["job"]
    assert [(os.path.basename(i["path"]), i["producer"]) for i in shown["inputs"]] == [
        ("a.txt", None)
    ]
    art = roar.json("show", "a.txt", cwd=repo)["artifact"]
    assert art["produced_by"] == []
    assert [(c["id"], os.path.basename(c["path"])) for c in art["copies"]] == [
        (cp["job"]["id"], "b.txt")
    ]
    assert "copies (1)" in roar("show", "a.txt", cwd=repo).stdout
    # the copy's own lineage goes through the copy to the raw file
    tree = roar.json("lineage", "b.txt", cwd=repo)["root"]
    assert [(n["id"], [os.path.basename(c["label"]) for c in n["children"]])
            for n in tree["children"]] == [(cp["job"]["id"], ["a.txt"])]  # fmt: skip
    assert roar.json("lineage", "a.txt", cwd=repo)["root"]["children"] == []
    down = roar.json("lineage", "a.txt", "--downstream", cwd=repo)["root"]
    assert [n["id"] for n in down["children"]] == [first["job"]["id"], cp["job"]["id"]]


def test_bytes_copied_outside_roar_link_to_their_maker_unless_committed(roar: Roar) -> None:
    """A model copied by hand into an ignored directory links to the job that trained it; a
    committed file that holds the same bytes as some job's output stays a raw source, as do
    empty files."""
    repo = git_repo(
        roar,
        roar.work / "byhand",
        {".gitignore": "/out/\n/deploy/\n", "greeting.txt": "hello\n", "pkg/__init__.py": ""},
    )
    train = roar.run(
        "sh", "-c", "mkdir -p out && echo weights > out/model.bin && echo hello > out/hi.txt"
        " && : > out/empty.py", cwd=repo,
    )  # fmt: skip
    (repo / "deploy").mkdir()
    shutil.copy(repo / "out/model.bin", repo / "deploy/model.bin")
    roar.chown(repo / "deploy")
    serve = roar.run(
        "sh", "-c", "cat deploy/model.bin greeting.txt pkg/__init__.py > served.txt", cwd=repo
    )
    assert {os.path.relpath(i["path"], repo): i["producer"] for i in serve["inputs"]} == {
        "deploy/model.bin": train["job"]["id"],
        "greeting.txt": None,
        "pkg/__init__.py": None,
    }
    assert dag(roar, repo) == {"@1": [], "@2": ["@1"]}
    roots = roar.json("inputs", "served.txt", "--unsourced", cwd=repo)
    assert {os.path.relpath(r["path"], repo) for r in roots} == {"greeting.txt", "pkg/__init__.py"}
