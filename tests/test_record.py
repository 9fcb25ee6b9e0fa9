"""roarctl.record (tracer events to per-path facts) on real programs under the real tracer, and
roard.filters' rules on real directory trees: a directory renamed into place carries its
files, bytecode read counts as its source, a program run is an input, and the system-file
rules are about where a file lives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roarctl.record import Recorder, pyc_source
from roarctl.trace import Tracer
from roard.filters import Filters

pytestmark = pytest.mark.timeout(60)

PY = sys.executable


def facts(argv: list[str], cwd: Path, chunk: int = 0, env: dict[str, str] | None = None) -> dict:
    """Run argv under the tracer into a Recorder; its facts (flushed every `chunk` paths,
    when given), merged per path as roard merges them: path -> (read, written)."""
    chunks: list[list] = []
    environ = {**os.environ, **(env or {})}
    environ.pop("PYTHONDONTWRITEBYTECODE", None)  # CPython's bytecode cache as users have it
    env_b = {os.fsencode(k): os.fsencode(v) for k, v in environ.items()}
    argv_b = [os.fsencode(a) for a in argv]
    exe = os.fsencode(shutil.which(argv[0]) or argv[0])  # the tracer execs a path, no search
    with Tracer(exe, argv_b, env_b, os.fsencode(cwd)) as t:
        rec = Recorder(t.root_pid, time.time(), flush=chunks.append if chunk else None, chunk=chunk)
        while batch := t.next_batch():
            for ev in batch:
                rec.apply(ev)
        assert t.exit_status() == 0
    chunks.append(rec.facts())
    out: dict[str, tuple[bool, bool]] = {}
    for fact in (f for c in chunks for f in c):
        r, w = out.get(os.fsdecode(fact.path), (False, False))
        out[os.fsdecode(fact.path)] = (r or fact.read, w or fact.written or fact.rdwr)
    return out


def under(found: dict, root: Path) -> dict[str, tuple[bool, bool]]:
    """The facts about root's files, by relative path."""
    return {os.path.relpath(p, root): v for p, v in found.items() if p.startswith(f"{root}/")}


# ------------------------------------------------------------------ directories renamed


@pytest.mark.parametrize("chunk", [0, 2], ids=["held", "streamed"])
def test_a_directory_renamed_into_place_carries_its_files(tmp_path: Path, chunk: int) -> None:
    """Written inside d.tmp, which `mv` (renameat2) then renames to d: the files are d's. With
    facts streamed every 2 paths, those already sent are found again by walking d.tmp."""
    (tmp_path / "src.txt").write_text("s\n")
    script = (
        "mkdir d.tmp d.tmp/sub && echo x > d.tmp/f && cat src.txt > d.tmp/sub/g"
        " && echo y > d.tmp/gone && touch a b c && cat d.tmp/f > /dev/null"
        " && rm d.tmp/gone && mv d.tmp d"
    )
    got = under(facts(["sh", "-c", script], tmp_path, chunk), tmp_path)
    assert got["d/f"] == (True, True) and got["d/sub/g"] == (False, True)
    assert "d/gone" not in got  # deleted before the rename: its facts keep its name
    if chunk == 0:
        assert [p for p in got if p.startswith("d.tmp/")] == ["d.tmp/gone"]
    # (streamed: the facts sent under d.tmp/ stay with roard, which finds no such files)


def test_pythons_rename_moves_read_files_too(tmp_path: Path) -> None:
    """os.rename (the rename syscall) of a directory holding a file that was read: the read
    moves with it, so the input is the file under its new name."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in/data").write_text("d\n")
    code = "import os; open('in/data').read(); os.rename('in', 'archive')"
    got = under(facts([PY, "-c", code], tmp_path), tmp_path)
    assert got["archive/data"] == (True, False) and "in/data" not in got


def test_a_rename_the_kernel_refuses_moves_nothing(tmp_path: Path) -> None:
    """`mv -T a b` onto a directory that is not empty fails (ENOTEMPTY): a/f stays a/f."""
    script = "mkdir a b && echo 1 > a/f && echo 2 > b/g && mv -T a b 2>/dev/null; true"
    got = under(facts(["sh", "-c", script], tmp_path), tmp_path)
    assert got["a/f"] == (False, True) and got["b/g"] == (False, True)
    assert "b/f" not in got and (tmp_path / "a/f").exists()


def test_exchanged_directories_swap_their_files(tmp_path: Path) -> None:
    """renameat2(RENAME_EXCHANGE) of two directories: each one's files carry the other name."""
    code = (
        "import ctypes, os\n"
        "os.mkdir('x'); os.mkdir('y')\n"
        "open('x/one', 'w').write('1'); open('y/two', 'w').write('2')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.renameat2(-100, b'x', -100, b'y', 2) == 0, ctypes.get_errno()\n"
    )
    got = under(facts([PY, "-c", code], tmp_path), tmp_path)
    assert got["y/one"] == (False, True) and got["x/two"] == (False, True)
    assert "x/one" not in got and "y/two" not in got
    assert (tmp_path / "y/one").exists() and (tmp_path / "x/two").exists()


# ------------------------------------------------------------------ bytecode and programs


def test_pyc_names_map_to_their_source() -> None:
    assert pyc_source(b"/p/pkg/__pycache__/mod.cpython-311.pyc") == b"/p/pkg/mod.py"
    assert pyc_source(b"/p/__pycache__/mod.cpython-311.opt-2.pyc") == b"/p/mod.py"
    assert pyc_source(b"/p/__pycache__/test_x.cpython-311-pytest-9.2.0.pyc") == b"/p/test_x.py"
    assert pyc_source(b"/p/mod.pyc") is None  # sourceless: code of its own
    assert pyc_source(b"/p/__pycache__/notes.txt") is None
    assert pyc_source(b"/p/__pycache__/.pyc") is None


def test_a_module_loaded_from_its_bytecode_is_read_as_its_source(tmp_path: Path) -> None:
    """The second run opens only __pycache__/helper.*.pyc (the .py is stat'ed): the fact is
    a read of helper.py. The first run read helper.py itself."""
    (tmp_path / "helper.py").write_text("VALUE = 3\n")
    (tmp_path / "main.py").write_text("import helper\nprint(helper.VALUE)\n")
    for run in (1, 2):
        got = under(facts([PY, "main.py"], tmp_path), tmp_path)
        assert got["helper.py"] == (True, False), run
    assert list((tmp_path / "__pycache__").glob("helper.*.pyc"))


def test_programs_run_are_read(tmp_path: Path) -> None:
    """The program named in execve (and, for a script, its interpreter) is read: the kernel
    loads it without an open the tracer sees."""
    subprocess.run(["gcc", "-x", "c", "-o", "hello", "-"], input=b"int main(){return 0;}",
                   cwd=tmp_path, check=True)  # fmt: skip
    (tmp_path / "run.sh").write_text("#!/bin/sh\n./hello\n")
    (tmp_path / "run.sh").chmod(0o755)
    found = facts(["sh", "-c", "./run.sh"], tmp_path)
    got = under(found, tmp_path)
    assert got["hello"] == (True, False) and got["run.sh"] == (True, False)
    assert found[os.path.realpath("/bin/sh")][0]  # the script's interpreter, by its real path


# ------------------------------------------------------------------ filters: where, not what


def test_filters_are_about_where_a_file_lives(tmp_path: Path) -> None:
    f = Filters().for_run()

    def rule(p: Path | str) -> str | None:
        return f.rule(os.fsencode(p))

    proj = tmp_path / "proj"
    assert rule(proj / "libfoo.so") is None  # built in the project: the project's
    assert rule(proj / "lib" / "libfoo.so.1.2") is None
    assert rule(proj / "tool.pyc") is None  # sourceless bytecode is code of its own
    assert rule(proj / "__pycache__" / "m.cpython-311.pyc") == "python"
    assert rule("/usr/lib/x86_64-linux-gnu/libc.so.6") == "system"
    assert rule("/lib/x86_64-linux-gnu/libm.so.6") == "system"
    assert rule("/opt/py/lib/python3.11/json/__init__.py") == "python"
    assert rule(tmp_path / "x" / "site-packages" / "numpy" / "core.so") == "python"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert rule(venv / "bin" / "pytest") == "environment"
    assert rule(venv / "pyvenv.cfg") == "environment"
    assert rule(venv / "lib64" / "libextra.so") == "environment"
    assert rule(venv / "data.csv") is None  # a project that is itself a venv keeps its files
    conda = tmp_path / "conda"
    (conda / "conda-meta").mkdir(parents=True)
    assert rule(conda / "lib" / "libstdc++.so.6") == "environment"
    assert rule(tmp_path / "notvenv" / "bin" / "tool") is None
