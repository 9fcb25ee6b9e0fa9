"""Torture suite: real programs (tiny C cases in tests/torture/torture.c, shell, python) run under
`roarctl run`, each asserting the exact inputs and outputs roar recorded.

Decisions these tests pin down (see README, "What counts as an input or output"):
- O_APPEND writes without reading: the file is an output whose `previous` is its old hash.
- O_RDWR opened and only read: an input; changed in place (write or MAP_SHARED): an output.
- A symlink is recorded as its resolved target; a dangling link or a loop is not an artifact.
- A FIFO, /dev/null and directories are never artifacts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Roar

PY = sys.executable
SRC = Path(__file__).parent / "torture" / "torture.c"
# The compiled torture programs. A program a job runs is one of its inputs (README); `io`
# leaves them out so that each case states what the program did, and test_c_case checks it.
PROGRAMS: set[str] = set()


@pytest.fixture(scope="session")
def bins() -> Iterator[dict[str, str]]:
    """torture.c compiled once per session, dynamically and (when libc.a exists) statically,
    into a 0755 directory the test user can reach."""
    d = Path(tempfile.mkdtemp(prefix="roar-torture-", dir="/tmp"))
    os.chmod(d, 0o755)
    out = {}
    cc = ["gcc", "-O1", "-Wall", "-pthread", "-o"]
    subprocess.run([*cc, str(d / "torture"), str(SRC)], check=True)
    out["dyn"] = str(d / "torture")
    static = subprocess.run(
        [*cc, str(d / "torture-static"), "-static", str(SRC)], capture_output=True, check=False
    )
    if static.returncode == 0:
        out["static"] = str(d / "torture-static")
    PROGRAMS.update(out.values())
    try:
        yield out
    finally:
        shutil.rmtree(d, ignore_errors=True)


def files(roar: Roar, spec: dict[str, str | bytes], base: Path | None = None) -> Path:
    base = base or roar.work
    for name, content in spec.items():
        p = base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    roar.chown(base)
    return base


def names(records: list[dict[str, Any]], base: Path) -> set[str]:
    """Paths relative to base (absolute if outside it), but for the torture programs."""
    out = set()
    for r in records:
        p = r["path"]
        if p in PROGRAMS:
            continue
        out.add(os.path.relpath(p, base) if p.startswith(str(base) + "/") else p)
    return set(out)


def io(job: dict[str, Any], base: Path) -> tuple[set[str], set[str]]:
    return names(job["inputs"], base), names(job["outputs"], base)


def rec(job: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    (r,) = [r for r in job[kind] if os.path.basename(r["path"]) == name]
    return r


def b3(path: Path) -> str:
    from roar.hashing import hash_file

    return hash_file(bytes(path))


# ------------------------------------------------------------------ opens of every kind

C_CASES = [
    # case, files before, expected inputs, expected outputs
    ("open", {"in": "i\n"}, {"in"}, {"out"}),
    ("openat", {"sub/in": "i\n"}, {"sub/in"}, {"sub/out"}),
    ("openat2", {"in": "i\n"}, {"in"}, {"out"}),
    ("creat", {}, set(), {"out"}),
    ("rdwr_read", {"f": "keep\n"}, {"f"}, set()),
    ("rdwr_write", {"f": "keep\n"}, set(), {"f"}),
    ("rdwr_trunc", {"f": "old\n"}, set(), {"f"}),
    ("rename", {}, set(), {"out"}),
    ("hardlink", {"in": "i\n"}, {"in"}, {"lnk"}),
    ("dup", {"in": "i\n"}, {"in"}, {"out"}),
    ("inherit", {}, set(), {"out"}),
    ("thread", {}, set(), {"out"}),
    ("thread_open", {"in": "i\n"}, {"in"}, set()),
    ("sendfile", {"in": "s" * 100_000}, {"in"}, {"out"}),
    ("splice", {"in": "p" * 100_000}, {"in"}, {"out"}),
    ("mmap", {"in": "m" * 10_000}, {"in"}, {"out"}),
    ("mmap_existing", {"f": "abcd"}, set(), {"f"}),
    ("fork", {"in": "i\n"}, {"in"}, {"child_out", "parent_out"}),
    ("vfork", {"in": "v\n"}, {"in"}, {"out"}),
    ("fchdir", {"sub/in": "i\n"}, {"sub/in"}, {"sub/out"}),
    ("tmpfile", {}, set(), {"out"}),
    ("rdonly_creat", {"in": "i\n"}, {"in"}, {"made"}),  # a file it created is not an input
]


@pytest.mark.parametrize("case,before,inputs,outputs", C_CASES, ids=[c[0] for c in C_CASES])
def test_c_case(roar: Roar, bins: dict[str, str], case: str, before, inputs, outputs) -> None:
    files(roar, before)
    job = roar.run(bins["dyn"], case)
    assert job["job"]["exit_code"] == 0
    assert io(job, roar.work) == (inputs, outputs)
    assert rec(job, "inputs", "torture")["hash"] == b3(Path(bins["dyn"]))  # the program ran


def test_o_tmpfile_linked_with_empty_path(roar: Roar, bins: dict[str, str]) -> None:
    if roar.user is not None or os.getuid() != 0:
        pytest.skip("linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH")
    job = roar.run(bins["dyn"], "tmpfile_empty")
    assert io(job, roar.work) == (set(), {"out"})
    assert rec(job, "outputs", "out")["hash"] == b3(roar.work / "out")


def test_outputs_hash_what_is_on_disk(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"in": "x" * 5000})
    job = roar.run(bins["dyn"], "mmap")
    assert (roar.work / "out").read_bytes() == b"y" * 5000
    assert rec(job, "outputs", "out")["hash"] == b3(roar.work / "out")
    assert rec(job, "inputs", "in")["hash"] == b3(roar.work / "in")


def test_append_is_an_output_whose_previous_is_the_old_content(
    roar: Roar, bins: dict[str, str]
) -> None:
    files(roar, {"log": "line 1\n"})
    old = b3(roar.work / "log")
    job = roar.run(bins["dyn"], "append")
    assert io(job, roar.work) == (set(), {"log"})
    out = rec(job, "outputs", "log")
    assert out["previous"] == old and out["hash"] == b3(roar.work / "log") != old


def test_rdwr_read_only_keeps_the_hash(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"f": "same\n"})
    job = roar.run(bins["dyn"], "rdwr_read")
    assert rec(job, "inputs", "f")["hash"] == b3(roar.work / "f")


def test_rdwr_changed_in_place_records_previous(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"f": "keep\n"})
    old = b3(roar.work / "f")
    job = roar.run(bins["dyn"], "rdwr_write")
    assert rec(job, "outputs", "f")["previous"] == old


def test_rename_exchange_swaps_two_outputs(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"a": "A\n", "b": "B\n"})
    ha, hb = b3(roar.work / "a"), b3(roar.work / "b")
    job = roar.run(bins["dyn"], "exchange")
    assert (roar.work / "a").read_text() == "B\n"
    assert io(job, roar.work) == (set(), {"a", "b"})
    assert rec(job, "outputs", "a")["hash"] == hb and rec(job, "outputs", "b")["hash"] == ha


def test_static_binary(roar: Roar, bins: dict[str, str]) -> None:
    if "static" not in bins:
        pytest.skip("static libc (libc.a) is not installed: gcc -static fails")
    files(roar, {"in": "i\n", "sub/in": "s\n"})
    job = roar.run(bins["static"], "open")
    assert io(job, roar.work) == ({"in"}, {"out"})
    job = roar.run(bins["static"], "thread")
    assert io(job, roar.work) == (set(), {"out"})


# ------------------------------------------------------------------ symlinks and odd paths


def test_symlink_chains_are_recorded_as_their_targets(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"data/real": "r\n", "dir/x": ""})
    w = roar.work
    os.symlink("data/real", w / "rel")  # relative
    os.symlink(w / "rel", w / "chain")  # absolute, to a link
    os.symlink("nowhere", w / "dangling")
    os.symlink("loop2", w / "loop1")
    os.symlink("loop1", w / "loop2")
    os.symlink("dir", w / "dlink")
    roar.chown(w)
    job = roar.run(bins["dyn"], "read", "chain", "rel", "dangling", "loop1", "data/../data/real")
    assert io(job, w) == ({"data/real"}, set())
    # `..` after a symlinked directory is resolved by the kernel, not lexically
    job = roar.run(bins["dyn"], "read", "dlink/../data/real", "dlink/../dir/x")
    assert io(job, w) == ({"data/real", "dir/x"}, set())
    # writing through a dangling link creates its target: the target is the output
    job = roar.run(bins["dyn"], "write", "dangling", "loop1")
    assert io(job, w) == (set(), {"nowhere"})


def test_dotdot_through_symlinked_directory(roar: Roar, bins: dict[str, str]) -> None:
    w = roar.work
    files(roar, {"a/b/in": "deep\n", "in": "top\n", "a/in": "mid\n"})
    os.symlink(w / "a" / "b", w / "lnk")  # lnk/.. is a/, not the work dir
    roar.chown(w)
    job = roar.run(bins["dyn"], "read", "lnk/../in")
    assert io(job, w) == ({"a/in"}, set())


def test_odd_names(roar: Roar, bins: dict[str, str]) -> None:
    w = roar.work
    odd = [b"caf\xe9-latin1", b"new\nline", b"with space", b"tab\there"]
    for n in odd:
        (Path(os.fsdecode(bytes(w)) + "/").joinpath(os.fsdecode(n))).write_bytes(b"x" + n)
    roar.chown(w)
    job = roar.run(bins["dyn"], "read", *[os.fsdecode(n) for n in odd])
    got = {r["path"] for r in job["inputs"]} - PROGRAMS  # non-UTF-8 bytes are shown as \xNN escapes
    assert got == {f"{w}/" + n.decode("utf-8", "backslashreplace") for n in odd}


def test_path_longer_than_path_max_is_a_blind_spot(roar: Roar, bins: dict[str, str]) -> None:
    job = roar.run(bins["dyn"], "deep")
    assert job["job"]["exit_code"] == 0
    assert io(job, roar.work) == (set(), set())
    assert any("PATH_MAX" in b for b in job["blind_spots"]), job["blind_spots"]


def test_files_deleted_during_the_run(roar: Roar) -> None:
    w = files(roar, {"in": "gone soon\n", "other": "o\n"})
    h = b3(w / "in")
    job = roar.run("sh", "-c", "cat in > out; rm in; echo t > tmp; rm tmp; cat other > /dev/null")
    assert io(job, w) == ({"in", "other"}, {"out"})
    assert rec(job, "inputs", "in")["hash"] == h


def test_fifo_and_dev_null_are_not_artifacts(roar: Roar) -> None:
    w = files(roar, {"in": "i\n"})
    os.mkfifo(w / "fifo")
    roar.chown(w)
    job = roar.run("sh", "-c", "cat fifo > out & cat in > fifo; wait; echo x > /dev/null")
    assert (w / "out").read_text() == "i\n"
    assert io(job, w) == ({"in"}, {"out"})


def test_files_in_tmp(roar: Roar, bins: dict[str, str]) -> None:
    d = Path(tempfile.mkdtemp(prefix="roar-t-", dir="/tmp"))
    try:
        files(roar, {"in": "t\n"}, base=d)
        job = roar.run(bins["dyn"], "open", cwd=d)
        assert io(job, d) == ({"in"}, {"out"})
    finally:
        shutil.rmtree(d)


# ------------------------------------------------------------------ shells and processes


def test_shell_redirects(roar: Roar) -> None:
    w = files(roar, {"in": "b\na\n", "log": "old\n"})
    job = roar.run("sh", "-c", "sort < in > out; echo more >> log; ls /nonexistent 2> err; true")
    assert io(job, w) == ({"in"}, {"out", "log", "err"})


def test_pipeline(roar: Roar) -> None:
    w = files(roar, {"in": "b\na\nb\n"})
    job = roar.run("sh", "-c", "cat in | sort | uniq > out")
    assert (w / "out").read_text() == "a\nb\n"
    assert io(job, w) == ({"in"}, {"out"})


def test_coreutils_mv_ln_rm(roar: Roar) -> None:
    w = files(roar, {"in": "i\n", "old": "o\n"})
    job = roar.run(
        "sh", "-c", "cp in tmp && mv tmp out && ln -s out link && cat link > copy; rm old"
    )
    assert io(job, w) == ({"in"}, {"out", "copy"})


def test_coreutils_cp_copy_file_range(roar: Roar) -> None:
    w = files(roar, {"in": "c" * 200_000})
    job = roar.run("cp", "in", "out")
    assert io(job, w) == ({"in"}, {"out"})
    assert rec(job, "inputs", "in")["hash"] == rec(job, "outputs", "out")["hash"]


def test_exec_chain_sh_python_subprocess(roar: Roar) -> None:
    w = files(roar, {"in": "i\n"})
    code = "import subprocess; subprocess.run(['cp', 'in', 'out'], check=True)"
    job = roar.run("sh", "-c", f'{PY} -c "{code}"')
    assert io(job, w) == ({"in"}, {"out"})
    progs = {os.path.basename(p["argv"][0]) for p in job["processes"] if p["argv"]}
    assert {"sh", "cp"} <= progs


def test_daemonized_child_is_recorded_until_it_exits(roar: Roar, bins: dict[str, str]) -> None:
    w = files(roar, {"in": "i\n"})
    job = roar.run(bins["dyn"], "daemon")
    assert (w / "late").exists()  # roarctl waited for the grandchild
    assert io(job, w) == ({"in"}, {"late"})


def test_killed_mid_write(roar: Roar, bins: dict[str, str]) -> None:
    w = roar.work
    proc = roar("run", bins["dyn"], "killed", check=False)
    assert proc.returncode == 128 + 9
    job = roar.last_job()
    assert job["job"]["signal"] == 9
    assert io(job, w) == (set(), {"out"})
    assert rec(job, "outputs", "out")["size"] == len("partial")


def test_make_j4(roar: Roar) -> None:
    w = files(
        roar,
        {
            "a.src": "a\n",
            "b.src": "b\n",
            "c.src": "c\n",
            "d.src": "d\n",
            "Makefile": "all: out\n%.o: %.src\n\tcp $< $@\nout: a.o b.o c.o d.o\n\tcat $^ > $@\n",
        },
    )
    job = roar.run("make", "-s", "-j4")
    assert io(job, w) == (
        {"Makefile", "a.src", "b.src", "c.src", "d.src"},
        {"a.o", "b.o", "c.o", "d.o", "out"},
    )


def test_chdir_and_relative_paths_in_parallel(roar: Roar) -> None:
    spec = {f"d{i}/in": f"{i}\n" for i in range(6)}
    w = files(roar, spec)
    script = " ".join(f"(cd d{i} && cat in > out) &" for i in range(6)) + " wait"
    job = roar.run("sh", "-c", script)
    assert io(job, w) == ({f"d{i}/in" for i in range(6)}, {f"d{i}/out" for i in range(6)})


def test_python_threads_and_processes(roar: Roar) -> None:
    w = files(roar, {f"in{i}": str(i) for i in range(4)})
    code = (
        "import threading, multiprocessing as mp\n"
        "def r(i):\n    open(f'out{i}','w').write(open(f'in{i}').read())\n"
        "ts=[threading.Thread(target=r,args=(i,)) for i in (0,1)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "if __name__=='__main__':\n"
        "    ps=[mp.get_context('fork').Process(target=r,args=(i,)) for i in (2,3)]\n"
        "    [p.start() for p in ps]; [p.join() for p in ps]\n"
    )
    (w / "t.py").write_text(code)
    roar.chown(w)
    job = roar.run(PY, "t.py")
    ins, outs = io(job, w)
    assert ins == {"t.py", "in0", "in1", "in2", "in3"}
    assert outs == {"out0", "out1", "out2", "out3"}


# ------------------------------------------------------------------ blind spots, network peers


def test_memfd_is_a_blind_spot(roar: Roar, bins: dict[str, str]) -> None:
    job = roar.run(bins["dyn"], "memfd")
    assert io(job, roar.work) == (set(), {"out"})
    assert any("memfd_create" in b for b in job["blind_spots"]), job["blind_spots"]


def test_io_uring_is_a_blind_spot(roar: Roar, bins: dict[str, str]) -> None:
    proc = roar("run", bins["dyn"], "io_uring", check=False)
    if proc.returncode == 77:
        pytest.skip("io_uring_setup is not available here")
    job = roar.last_job()
    assert any("io_uring" in b for b in job["blind_spots"]), job["blind_spots"]


def test_a_clean_run_has_no_blind_spots_or_peers(roar: Roar, bins: dict[str, str]) -> None:
    files(roar, {"in": "i\n"})
    job = roar.run(bins["dyn"], "open")
    assert job["blind_spots"] == [] and job["external"] == []


def test_connect_records_network_peers(roar: Roar) -> None:
    import socket

    listeners = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
        except OSError:
            continue
        s.listen(8)
        listeners.append((s, host, s.getsockname()[1]))
    assert listeners
    code = "import socket\n" + "".join(
        f"socket.create_connection(({host!r}, {port})).close()\n"
        f"socket.create_connection(({host!r}, {port})).close()\n"  # twice: deduplicated
        for _, host, port in listeners
    )
    code += "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(('192.0.2.7', 53))\n"
    code += "u.send(b'q'); u.sendto(b'q', ('192.0.2.8', 5353))\n"  # unconnected destination
    try:
        job = roar.run(PY, "-c", code)
    finally:
        for s, _, _ in listeners:
            s.close()
    tcp = {(f"[{h}]" if ":" in h else h) + f":{p} (tcp, local)" for _, h, p in listeners}
    want = tcp | {"192.0.2.7:53 (udp)", "192.0.2.8:5353 (udp)"}
    assert set(job["external"]) == want and len(job["external"]) == len(want)
    shown = roar("show", job["job"]["id"]).stdout
    assert "192.0.2.7:53 (udp)" in shown


def test_unix_socket_is_not_external(roar: Roar) -> None:
    import socket

    path = roar.work / "sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    os.chmod(path, 0o777)
    try:
        job = roar.run(
            PY, "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
        )
    finally:
        srv.close()
    assert job["external"] == [] and job["job"]["exit_code"] == 0


@pytest.fixture
def setuid_bin(roar: Roar, bins: dict[str, str]) -> Path:
    """A setuid-root copy of the torture program, for the ordinary test user."""
    if roar.user is None or os.getuid() != 0:
        pytest.skip("needs root to make a setuid-root program and the test user to run it")
    d = roar.base / "suid"
    d.mkdir(mode=0o755)
    p = d / "torture-suid"
    shutil.copy(bins["dyn"], p)
    os.chmod(p, 0o4755)
    PROGRAMS.add(str(p))
    return p


def test_setuid_command_warns_before_running(roar: Roar, setuid_bin: Path) -> None:
    files(roar, {"in": "i\n"})
    proc = roar("run", str(setuid_bin), "open")
    warning = [ln for ln in proc.stderr.splitlines() if "setuid root" in ln]
    assert warning and "no_new_privs" in warning[0]
    assert proc.stderr.index(warning[0]) < proc.stderr.index("roar: job ")
    job = roar.last_job()
    assert any("setuid root" in b for b in job["blind_spots"]), job["blind_spots"]
    assert io(job, roar.work) == ({"in"}, {"out"})  # it ran as the user, and was traced


def test_setuid_exec_inside_the_run_is_a_blind_spot(roar: Roar, setuid_bin: Path) -> None:
    files(roar, {"in": "i\n"})
    proc = roar("run", "sh", "-c", f"{setuid_bin} open")
    assert "warning" not in proc.stderr  # sh itself is not setuid
    job = roar.last_job()
    (spot,) = [b for b in job["blind_spots"] if "setuid" in b]
    assert str(setuid_bin) in spot


# ------------------------------------------------------------------ facts streamed during the run

STREAM_SCRIPT = (
    "cat a > /dev/null; cat b c d e f > /dev/null; cp b g; echo new > a; "
    "cat c > /dev/null; echo more >> d; mv a a2; rm e; cat g > /dev/null"
)


def test_streamed_chunks_give_the_same_record(roar: Roar) -> None:
    """Facts flushed to roard every 2 paths (ROAR_FLUSH_EVERY) merge into the same record as
    one batch: a file read in one chunk and overwritten in a later one still has its old
    content as the input (the Bloom filter remembers it was read)."""
    spec = {n: f"{n}\n" for n in "abcdef"}
    jobs = []
    for every in ("0", "2"):
        w = roar.work / f"run{every}"
        w.mkdir()
        files(roar, spec, base=w)
        old_a = b3(w / "a")
        job = roar.run("sh", "-c", STREAM_SCRIPT, cwd=w, env={"ROAR_FLUSH_EVERY": every})
        ins, outs = io(job, w)
        assert ins == {"a", "b", "c", "d", "e", "f"}  # g: written first, so not an input
        assert outs == {"a2", "d", "g"}
        assert rec(job, "inputs", "a")["hash"] == old_a
        assert rec(job, "outputs", "d")["previous"] is not None  # appended: old hash known
        jobs.append(
            (
                {(os.path.basename(r["path"]), r["hash"]) for r in job["inputs"]},
                {(os.path.basename(r["path"]), r["hash"], r["previous"]) for r in job["outputs"]},
            )
        )
    assert jobs[0] == jobs[1]


def test_streamed_chunks_survive_a_daemon_killed_mid_run(roar: Roar) -> None:
    import signal
    import time

    w = files(roar, {"in": "i\n"})
    roar.env["ROAR_FLUSH_EVERY"] = "2"
    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    proc = roar.exec_async(["sh", "-c", "cat in > /dev/null; sleep 1.5; echo done > after"])
    time.sleep(0.7)  # `cat in` has run and its facts were streamed to this daemon
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    job = roar.last_job()
    assert job["job"]["status"] == "recovered"
    assert io(job, w) == ({"in"}, {"after"})


def test_streamed_chunks_are_spooled_whole(roar: Roar) -> None:
    w = files(roar, {"in": "i\n"})
    blocker = roar.home / "not-a-dir"
    blocker.write_text("")
    roar.chown(blocker)
    broken = {"XDG_DATA_HOME": str(blocker), "ROAR_FLUSH_EVERY": "2"}
    proc = roar("run", "sh", "-c", "cat in > out", env=broken)
    assert "spooled" in proc.stderr
    job = roar.last_job()  # a working daemon ingests the spool
    assert io(job, w) == ({"in"}, {"out"})


def _peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])


def test_memory_stays_bounded_on_many_paths(roar: Roar, bins: dict[str, str]) -> None:
    """200,000 distinct paths: roarctl streams facts instead of holding a dict of every path
    (it held ~300 bytes a path before: ~80 MB here; now ~31 MB at 200,000 and at 1,000,000),
    and roard stages them on disk (it grew by ~100 MB here holding them; now ~12 MB)."""
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("/usr/bin/time is not installed")
    from conftest import ROARCTL

    roar("daemon", "start")
    pid = roar.daemon_pid()
    assert pid
    before = _peak_kb(pid)
    time_ = ["/usr/bin/time", "-f", "maxrss %M"]
    proc = roar.exec([*time_, str(ROARCTL), "run", bins["dyn"], "many_missing", "200000"])
    kb = int(proc.stderr.rsplit("maxrss ", 1)[1].split()[0])
    assert kb < 55_000, proc.stderr
    assert roar.daemon_pid() == pid
    assert _peak_kb(pid) - before < 40_000
    job = roar.last_job()
    assert job["job"]["status"] == "complete"
    assert [r["path"] for r in job["inputs"]] == [bins["dyn"]]  # the program only
