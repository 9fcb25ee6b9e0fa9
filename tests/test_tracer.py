"""Tests of roarctl.trace (the C ptrace tracer) against real programs."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

try:
    from roarctl import _tracer  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the build
    pytest.skip(
        f"roarctl._tracer is not built ({exc}); run `pip install -e .` "
        "or `python native/build_tracer.py`",
        allow_module_level=True,
    )

from roarctl import trace
from roarctl.trace import Event, Tracer, TraceStartError

pytestmark = pytest.mark.timeout(60)

PY = os.fsencode(sys.executable)
SH = b"/bin/sh"


def run(
    argv: list[bytes],
    cwd: bytes | str,
    env: dict[bytes, bytes] | None = None,
    on_held: Callable[[Event], None] | None = None,
    path: bytes | None = None,
) -> tuple[list[Event], int, int]:
    """Run argv under the tracer; return (events, raw wait status, root pid)."""
    events: list[Event] = []
    with Tracer(path or argv[0], argv, env or dict(os.environb), os.fsencode(cwd)) as t:
        while True:
            batch = t.next_batch()
            if not batch:
                break
            for e in batch[:-1]:
                assert not e.held, "a held event must be the last of its batch"
            if on_held and batch[-1].held:
                on_held(batch[-1])
            events.extend(batch)
        return events, t.exit_status(), t.root_pid


def real(p: "os.PathLike[str] | str | bytes") -> bytes:
    return os.fsencode(os.path.realpath(p))


def of_kind(events: list[Event], kind: int) -> list[Event]:
    return [e for e in events if e.kind == kind]


def opens_of(events: list[Event], path: bytes) -> list[Event]:
    return [e for e in events if e.kind == trace.OPEN and e.path == path]


def test_write_is_held_read_is_not(tmp_path):
    (tmp_path / "in.txt").write_bytes(b"input")
    (tmp_path / "out.txt").write_bytes(b"old content")
    code = (
        "data = open('in.txt', 'rb').read()\n"
        "with open('out.txt', 'wb') as f:\n"
        "    f.write(b'new:' + data)\n"
    )
    seen_at_hold: list[bytes] = []
    out_path = real(tmp_path / "out.txt")

    def on_held(e: Event) -> None:
        if e.kind == trace.OPEN and e.path == out_path:
            # The tracee is stopped before its open(O_TRUNC) ran: old content is intact.
            seen_at_hold.append((tmp_path / "out.txt").read_bytes())

    events, status, _ = run([PY, b"-c", code.encode()], tmp_path, on_held=on_held)
    assert os.waitstatus_to_exitcode(status) == 0

    (w,) = opens_of(events, out_path)
    assert w.held == 1
    assert w.arg & os.O_ACCMODE == os.O_WRONLY
    assert w.arg & (os.O_CREAT | os.O_TRUNC) == os.O_CREAT | os.O_TRUNC
    (r,) = opens_of(events, real(tmp_path / "in.txt"))
    assert r.held == 0
    assert r.arg & os.O_ACCMODE == os.O_RDONLY
    assert seen_at_hold == [b"old content"]
    assert (tmp_path / "out.txt").read_bytes() == b"new:input"


def test_relative_path_uses_tracee_cwd(tmp_path):
    (tmp_path / "sub").mkdir()
    events, status, _ = run([SH, b"-c", b"cd sub && echo x > out.txt"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (e,) = opens_of(events, real(tmp_path) + b"/sub/out.txt")
    assert (e.held, e.flags) == (0, trace.OPEN_NEW)  # nothing to hash first: not held
    assert (tmp_path / "sub" / "out.txt").read_bytes() == b"x\n"


def test_exit_code_passes_through(tmp_path):
    events, status, root = run([SH, b"-c", b"exit 3"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 3
    exits = [e for e in of_kind(events, trace.EXIT) if e.pid == root]
    assert len(exits) == 1
    assert exits[0].arg == status


def test_killed_by_signal(tmp_path):
    _, status, _ = run([SH, b"-c", b"kill -TERM $$; sleep 5"], tmp_path)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGTERM
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM


def test_exec_chain_with_argv(tmp_path):
    inner = PY + b" -c 'import sys; sys.exit(0)' arg1"
    events, status, root = run([b"sh", b"-c", inner], tmp_path, path=SH)
    assert os.waitstatus_to_exitcode(status) == 0
    execs = of_kind(events, trace.EXEC)
    assert [e.path for e in execs] == [SH, PY]
    assert execs[0].pid == root
    assert execs[0].argv == [b"sh", b"-c", inner]
    assert execs[0].path2 == real(SH)
    assert execs[1].argv == [PY, b"-c", b"import sys; sys.exit(0)", b"arg1"]
    assert execs[1].path2 == real(sys.executable)


def test_failed_path_search_is_not_an_exec(tmp_path):
    true = shutil.which("true")
    assert true
    env = dict(os.environb)
    miss1, miss2 = real(tmp_path) + b"/missing1", real(tmp_path) + b"/missing2"
    env[b"PATH"] = b":".join([miss1, miss2, os.fsencode(os.path.dirname(true))])
    events, status, _ = run([SH, b"-c", b"exec true"], tmp_path, env=env)
    assert os.waitstatus_to_exitcode(status) == 0
    execs = of_kind(events, trace.EXEC)
    assert [e.path for e in execs] == [SH, os.fsencode(true)]
    assert execs[1].argv == [b"true"]


def test_thread_fork_flag(tmp_path):
    code = b"import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n"
    events, status, root = run([PY, b"-c", code], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    forks = of_kind(events, trace.FORK)
    assert len(forks) == 1
    (f,) = forks
    assert f.pid == root
    assert f.flags == 1
    thread_exits = [e for e in of_kind(events, trace.EXIT) if e.pid == f.arg]
    assert len(thread_exits) == 1
    assert thread_exits[0].flags == 1


def test_subprocess_fork_flag(tmp_path):
    code = b"import subprocess\nsubprocess.run(['/bin/true'], check=True)\n"
    events, status, root = run([PY, b"-c", code], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    forks = [e for e in of_kind(events, trace.FORK) if e.flags == 0]
    assert len(forks) == 1
    child = forks[0].arg
    assert forks[0].pid == root
    execs = [e for e in of_kind(events, trace.EXEC) if e.pid == child]
    assert [e.path for e in execs] == [b"/bin/true"]
    assert [e.pid for e in of_kind(events, trace.EXIT)][-1] == root
    assert any(e.pid == child for e in of_kind(events, trace.EXIT))


def test_rename_reports_both_paths(tmp_path):
    code = b"import os\nopen('tmp.part', 'w').write('x')\nos.rename('tmp.part', 'final.txt')\n"
    events, status, _ = run([PY, b"-c", code], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (r,) = of_kind(events, trace.RENAME)
    assert r.held == 1
    assert r.path == real(tmp_path) + b"/tmp.part"
    assert r.path2 == real(tmp_path) + b"/final.txt"
    assert r.flags == 0


def test_non_utf8_name_round_trips(tmp_path):
    name = b"\xff\xfe.bin"
    code = b"import sys\nopen(bytes.fromhex(sys.argv[1]), 'wb').write(b'z')\n"
    events, status, _ = run([PY, b"-c", code, name.hex().encode()], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (e,) = opens_of(events, real(tmp_path) + b"/" + name)
    assert (e.held, e.flags) == (0, trace.OPEN_NEW)
    assert name in os.listdir(os.fsencode(tmp_path))


def test_unlink_truncate_symlink_link_rmdir(tmp_path):
    code = (
        "import os\n"
        "open('a', 'w').write('hello')\n"
        "os.truncate('a', 1)\n"
        "os.link('a', 'b')\n"
        "os.symlink('a', 'c')\n"
        "os.unlink('b')\n"
        "os.mkdir('d')\n"
        "fd = os.open('.', os.O_RDONLY)\n"
        "os.rmdir('d', dir_fd=fd)\n"
    )
    events, status, _ = run([PY, b"-c", code.encode()], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    base = real(tmp_path)
    (tr,) = of_kind(events, trace.TRUNCATE)
    assert (tr.path, tr.held) == (base + b"/a", 1)
    (ln,) = of_kind(events, trace.LINK)
    assert (ln.path, ln.path2, ln.held) == (base + b"/a", base + b"/b", 1)
    (sl,) = of_kind(events, trace.SYMLINK)
    assert (sl.path, sl.path2, sl.held) == (b"a", base + b"/c", 0)
    unl = of_kind(events, trace.UNLINK)
    assert [(u.path, u.flags, u.held) for u in unl] == [(base + b"/b", 0, 1), (base + b"/d", 1, 1)]


HELPER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

static int thread_fn(void *arg) { (void)arg; syscall(SYS_exit, 0); return 0; }

int main(int argc, char **argv) {
    if (argc < 2) return 10;
    const char *mode = argv[1];
    if (!strcmp(mode, "openat") && argc > 2) {
        int d = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (d < 0) return 1;
        int f = openat(d, "rel.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (f < 0) return 2;
        if (write(f, "x", 1) != 1) return 3;
        close(f);
        int g = openat(d, "sub/../rel.txt", O_RDONLY);
        return g < 0 ? 4 : 0;
    }
    if (!strcmp(mode, "openat2")) {
        unsigned long long how[3] = {O_WRONLY | O_CREAT, 0600, 0};  /* struct open_how */
        return syscall(SYS_openat2, AT_FDCWD, "o2.txt", how, sizeof how) < 0;
    }
    if (!strcmp(mode, "uring")) {
        char params[120];  /* struct io_uring_params */
        memset(params, 0, sizeof params);
        syscall(SYS_io_uring_setup, 4, params);  /* may fail (disabled): still reported */
        return 0;
    }
    if (!strcmp(mode, "ptrace")) {
        errno = 0;
        long r = ptrace(PTRACE_TRACEME, 0, 0, 0);
        return r == -1 && errno == EPERM ? 0 : 1;
    }
    if (!strcmp(mode, "fexecve")) {
        int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
        char *av[] = {"true-via-fd", NULL};
        fexecve(fd, av, environ);
        return 5;
    }
    if (!strcmp(mode, "clone")) {  /* a thread made with the clone syscall (not clone3) */
        char *stack = malloc(65536);
        int tid = clone(thread_fn, stack + 65536, CLONE_VM | CLONE_FS | CLONE_FILES |
                        CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, NULL);
        usleep(100000);
        return tid < 0;
    }
    if (!strcmp(mode, "longpath")) {  /* 6000-byte path starting 10 bytes before a page end */
        char *buf = aligned_alloc(4096, 4 * 4096);
        char *p = buf + 4096 - 10;
        memset(p, 'a', 6000);
        p[0] = 'L';
        p[5999] = 0;
        open(p, O_RDONLY);  /* fails with ENAMETOOLONG: still reported */
        return 0;
    }
    return 9;
}
"""


@pytest.fixture(scope="module")
def helper(tmp_path_factory) -> bytes:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("helper")
    (d / "helper.c").write_text(HELPER_C)
    exe = d / "helper"
    subprocess.run([gcc, "-O1", "-o", str(exe), str(d / "helper.c")], check=True)
    return os.fsencode(exe)


def test_openat_dirfd_is_joined(tmp_path, helper):
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    events, status, _ = run([helper, b"openat", b"dir"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (w,) = opens_of(events, real(d) + b"/rel.txt")
    assert (w.held, w.flags) == (0, trace.OPEN_NEW)
    assert w.arg & os.O_ACCMODE == os.O_WRONLY
    (r,) = opens_of(events, real(d) + b"/sub/../rel.txt")  # joined, not normalized
    assert r.held == 0
    (dirs,) = opens_of(events, real(tmp_path) + b"/dir")
    assert dirs.arg & os.O_DIRECTORY


def test_openat2_flags_from_struct(tmp_path, helper):
    events, status, _ = run([helper, b"openat2"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (e,) = opens_of(events, real(tmp_path) + b"/o2.txt")
    assert e.arg == os.O_WRONLY | os.O_CREAT
    assert (e.held, e.flags) == (0, trace.OPEN_NEW)


def test_blind_spots_are_reported(tmp_path, helper):
    for mode, reason in [(b"uring", b"io_uring"), (b"ptrace", b"nested ptrace")]:
        events, status, root = run([helper, mode], tmp_path)
        assert os.waitstatus_to_exitcode(status) == 0, mode
        untraced = of_kind(events, trace.UNTRACED)
        assert [(e.pid, e.data) for e in untraced] == [(root, reason)]


def test_fexecve_reports_the_file(tmp_path, helper):
    events, status, _ = run([helper, b"fexecve"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    execs = of_kind(events, trace.EXEC)
    assert len(execs) == 2
    assert execs[1].path == real("/bin/true")  # execveat(fd, "", AT_EMPTY_PATH)
    assert execs[1].argv == [b"true-via-fd"]


def test_clone_syscall_thread_flag(tmp_path, helper):
    events, status, root = run([helper, b"clone"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    (f,) = of_kind(events, trace.FORK)
    assert (f.pid, f.flags) == (root, 1)


def test_path_across_page_boundary(tmp_path, helper):
    events, status, _ = run([helper, b"longpath"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    long_opens = [e for e in of_kind(events, trace.OPEN) if b"/L" in e.path]
    assert [e.path for e in long_opens] == [real(tmp_path) + b"/L" + b"a" * 5998]


def test_nonexistent_command(tmp_path):
    with pytest.raises(TraceStartError) as ei:
        Tracer(b"/nonexistent/command", [b"command"], dict(os.environb), os.fsencode(tmp_path))
    assert ei.value.errno == errno.ENOENT
    assert isinstance(ei.value, OSError)


def test_not_executable(tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\n")
    f.chmod(0o644)  # no x bit at all: EACCES even for root
    with pytest.raises(TraceStartError) as ei:
        Tracer(os.fsencode(f), [b"script.sh"], [], os.fsencode(tmp_path))
    assert ei.value.errno == errno.EACCES


def test_forward_sigterm(tmp_path):
    ready = tmp_path / "ready"
    ready.write_bytes(b"")  # exists: its open for writing is held, so a batch ends there
    code = b"import sys, time\nopen(sys.argv[1], 'w').close()\ntime.sleep(30)\n"
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    try:
        with Tracer(PY, [PY, b"-c", code, os.fsencode(ready)], dict(os.environb), b"/") as t:
            t.forward_signals()
            sent = False
            while batch := t.next_batch():
                if not sent and any(e.kind == trace.OPEN and e.path == real(ready) for e in batch):
                    os.kill(os.getpid(), signal.SIGTERM)  # forwarded to the command
                    sent = True
            status = t.exit_status()
        assert sent
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGTERM
        assert got == []  # the C handler took it, not Python's
    finally:
        signal.signal(signal.SIGTERM, old)


def test_job_control_stop_and_continue(tmp_path):
    code = (
        "import os, signal, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', "
        '\'import os, signal; os.kill(os.getpid(), signal.SIGSTOP); open("after", "w")\'])\n'
        "pid, st = os.waitpid(p.pid, os.WUNTRACED)\n"
        "assert os.WIFSTOPPED(st) and os.WSTOPSIG(st) == signal.SIGSTOP, st\n"
        "os.kill(p.pid, signal.SIGCONT)\n"
        "sys.exit(p.wait())\n"
    )
    events, status, _ = run([PY, b"-c", code.encode()], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    assert opens_of(events, real(tmp_path) + b"/after")


def test_many_processes(tmp_path):
    events, status, root = run(
        [SH, b"-c", b"i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done"], tmp_path
    )
    assert os.waitstatus_to_exitcode(status) == 0
    forks = of_kind(events, trace.FORK)
    assert len(forks) == 200
    exited = {e.pid for e in of_kind(events, trace.EXIT)}
    assert {f.arg for f in forks} | {root} == exited
    assert len(of_kind(events, trace.EXEC)) == 201


def test_close_kills_running_tracees(tmp_path):
    t = Tracer(b"/bin/sleep", [b"sleep", b"30"], dict(os.environb), os.fsencode(tmp_path))
    pid = t.root_pid
    assert t.next_batch()[0].kind == trace.EXEC
    t.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ValueError):
        t.next_batch()


def test_exec_from_non_leader_thread(tmp_path):
    # A child of this process that is not a tracee must not keep the loop waiting.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        code = (
            b"import os, threading, time\n"
            b"for _ in range(3):\n"
            b"    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
            b"def f():\n"
            b"    os.execv('/bin/echo', ['echo', 'from-thread'])\n"
            b"threading.Thread(target=f).start()\n"
            b"time.sleep(30)\n"
        )
        events, status, root = run([PY, b"-c", code], tmp_path)
    finally:
        bystander.kill()
        bystander.wait()
    assert os.waitstatus_to_exitcode(status) == 0
    execs = of_kind(events, trace.EXEC)
    assert [(e.pid, e.path) for e in execs] == [(root, PY), (root, b"/bin/echo")]
    assert execs[1].argv == [b"echo", b"from-thread"]
    threads = {e.arg for e in of_kind(events, trace.FORK) if e.flags == 1}
    assert len(threads) == 4
    exits = of_kind(events, trace.EXIT)
    assert exits[-1].pid == root
    assert {e.pid for e in exits if e.flags == 1} < threads  # the exec-ing thread never exits


def test_background_child_outlives_root(tmp_path):
    events, status, root = run([SH, b"-c", b"(sleep 0.3; echo late > late.txt) & exit 7"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 7
    root_exit = next(i for i, e in enumerate(events) if e.kind == trace.EXIT and e.pid == root)
    (late,) = opens_of(events, real(tmp_path) + b"/late.txt")
    assert events.index(late) > root_exit
    assert (tmp_path / "late.txt").read_bytes() == b"late\n"


def test_batch_size_does_not_change_events(tmp_path, monkeypatch):
    code = (
        b"import os, subprocess\n"
        b"open('a', 'w').write('1')\n"
        b"os.rename('a', 'b')\n"
        b"subprocess.run(['/bin/true'])\n"
        b"open('b').read()\n"
    )

    def shape(events: list[Event]) -> list[tuple[int, bytes, bytes, int]]:
        return [(e.kind, e.path, e.path2, e.held) for e in events if e.kind != trace.FORK]

    big, _, _ = run([PY, b"-c", code], tmp_path)
    (tmp_path / "b").unlink()
    monkeypatch.setattr(trace, "BATCH_CAP", 1)
    small, _, _ = run([PY, b"-c", code], tmp_path)
    assert shape(small) == shape(big)
    assert len(small) == len(big)


def test_held_tracee_can_be_killed(tmp_path):
    def on_held(e: Event) -> None:
        if e.path.endswith(b"/victim.txt"):
            os.kill(e.pid, signal.SIGKILL)

    (tmp_path / "victim.txt").write_bytes(b"old")  # exists: the open for writing is held
    code = b"open('victim.txt', 'w').write('never')\n"
    events, status, root = run([PY, b"-c", code], tmp_path, on_held=on_held)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert (tmp_path / "victim.txt").read_bytes() == b"old"  # killed before its open ran
    assert events[-1].kind == trace.EXIT
    assert events[-1].pid == root


# --- CPU co-location (tracer.h: roar_start) -------------------------------------------------

PROBE = r"""
import os, sys, threading, time

out = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def cpus():
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]


def put(label, value=None):
    os.write(out, f"{label} {cpus() if value is None else value}\n".encode())


mode = sys.argv[1]
if mode == "single":
    put("before")
elif mode == "thread":
    put("before")
    t = threading.Thread(target=put, args=("thread",))
    t.start()
    t.join()
    put("after")
elif mode == "fork2":
    put("before")
    kids = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:
            put(f"child{i}")
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    put("after")
elif mode == "pair":  # a lone parent waiting for its one child
    put("before")
    pid = os.fork()
    if pid == 0:
        put("child")
        os._exit(0)
    os.waitpid(pid, 0)
    put("after")
elif mode == "pair_busy":  # the parent makes a traced syscall while its child lives
    put("before")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(r, 1)
        put("child")
        os._exit(0)
    put("parent")
    os.write(w, b"x")
    os.waitpid(pid, 0)
    put("after")
elif mode == "getaffinity":
    put("before")
    put("getaffinity", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
    put("after")
elif mode == "idle":
    put("before")
    time.sleep(1.3)
    put("quiet")
    for _ in range(200):
        os.close(os.open("/dev/null", os.O_RDONLY))
    put("busy")
elif mode == "quiet_fork":  # unpinned by a quiet second at the very fork
    put("before")
    time.sleep(1.3)
    pid = os.fork()
    if pid == 0:
        put("child")
        os._exit(0)
    os.waitpid(pid, 0)
elif mode == "hold":  # single task until a byte arrives on stdin
    put("before")
    os.read(0, 1)
"""

RUNNER = r"""
import os, sys
if sys.argv[1]:
    os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(",")})
from roarctl.trace import Tracer
argv = [os.fsencode(a) for a in sys.argv[2:]]
with Tracer(argv[0], argv, dict(os.environb), os.getcwdb()) as t:
    while t.next_batch():
        pass
    code = os.waitstatus_to_exitcode(t.exit_status())
print(",".join(map(str, sorted(os.sched_getaffinity(0)))), code)
"""

ORIG = frozenset(os.sched_getaffinity(0))
multi_cpu = pytest.mark.skipif(len(ORIG) < 2, reason="co-location needs 2 CPUs")


def cpu_list(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def others_pinned() -> bool:
    """Another roar tracer on this machine holds a CPU claim (tests run in parallel)."""
    try:
        with open("/proc/net/unix") as f:
            return "@roar-pin-cpu-" in f.read()
    except OSError:
        return False


def probe(tmp_path, mode: str, expect_pinned: bool = True) -> dict[str, frozenset[int]]:
    """Trace the probe; {label: CPUs its task was allowed}.  With expect_pinned, retry
    while other roar runs hold the CPUs (then a correct run does not pin)."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    for _ in range(20):
        out = tmp_path / f"probe-{mode}.txt"
        out.unlink(missing_ok=True)
        _, status, _ = run([PY, os.fsencode(script), mode.encode(), os.fsencode(out)], tmp_path)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.sched_getaffinity(0) == ORIG  # the tracer thread got its mask back
        seen = {}
        for line in out.read_text().splitlines():
            label, value = line.split()
            seen[label] = cpu_list(value)
        if not expect_pinned or len(seen["before"]) == 1 or not others_pinned():
            return seen
        time.sleep(0.3)
    pytest.skip("other roar runs kept every CPU claimed")


@multi_cpu
def test_pin_single_task_runs_on_one_cpu(tmp_path):
    seen = probe(tmp_path, "single")
    (cpu,) = seen["before"]
    assert cpu in ORIG


@multi_cpu
def test_pin_released_for_a_thread(tmp_path):
    seen = probe(tmp_path, "thread")
    assert len(seen["before"]) == 1
    assert seen["thread"] == ORIG
    assert seen["after"] == ORIG


@multi_cpu
def test_pin_released_for_parallel_children(tmp_path):
    seen = probe(tmp_path, "fork2")
    assert len(seen["before"]) == 1
    assert seen["child0"] == seen["child1"] == seen["after"] == ORIG


@multi_cpu
def test_pin_follows_the_one_child_of_a_waiting_parent(tmp_path):
    seen = probe(tmp_path, "pair")
    assert len(seen["before"]) == 1
    assert seen["child"] == seen["before"]
    assert seen["after"] == seen["before"]  # alone again: pinned again


@multi_cpu
def test_pin_released_when_parent_and_child_both_work(tmp_path):
    seen = probe(tmp_path, "pair_busy")
    assert len(seen["before"]) == 1
    assert seen["parent"] == seen["child"] == seen["after"] == ORIG  # and never again


def test_getaffinity_sees_the_real_mask(tmp_path):
    seen = probe(tmp_path, "getaffinity")
    assert seen["getaffinity"] == ORIG
    assert seen["after"] == ORIG


def test_pin_disabled_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ROAR_PIN", "0")
    seen = probe(tmp_path, "single", expect_pinned=False)
    assert seen["before"] == ORIG


@multi_cpu
def test_pin_released_after_a_quiet_second(tmp_path):
    seen = probe(tmp_path, "idle")
    assert len(seen["before"]) == 1
    assert seen["quiet"] == ORIG
    assert len(seen["busy"]) == 1  # frequent stops again: pinned again


@multi_cpu
def test_child_forked_as_the_pin_lapses_does_not_keep_it(tmp_path):
    seen = probe(tmp_path, "quiet_fork")
    assert len(seen["before"]) == 1
    assert seen["child"] == ORIG


def _runner(tmp_path, mask: str, mode: str, **kw) -> "tuple[subprocess.Popen[str], Path]":
    """Trace the probe from a fresh process whose affinity is `mask` ("": unchanged)."""
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "runner.py").write_text(RUNNER)
    root = os.path.dirname(os.path.dirname(os.path.abspath(trace.__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    out = tmp_path / f"probe-{mode}-{len(os.listdir(tmp_path))}.txt"
    argv = [sys.executable, "runner.py", mask, sys.executable, "probe.py", mode, str(out)]
    p = subprocess.Popen(argv, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, **kw)
    return p, out


def _seen(path: Path) -> dict[str, frozenset[int]]:
    return {k: cpu_list(v) for k, v in (line.split() for line in path.read_text().splitlines())}


@multi_cpu
def test_pin_respects_a_restricted_original_mask(tmp_path):
    mask = sorted(ORIG)[1:]  # every CPU but the first
    text = ",".join(map(str, mask))
    for mode in ("single", "thread"):
        p, out = _runner(tmp_path, text, mode)
        stdout, _ = p.communicate(timeout=30)
        assert stdout.split() == [text, "0"]  # the tracer thread's mask is restored exactly
        seen = _seen(out)
        assert seen["before"] <= frozenset(mask)
        assert len(seen["before"]) == 1 or len(mask) == 1 or others_pinned()
        if mode == "thread":
            assert seen["thread"] == seen["after"] == frozenset(mask)


@multi_cpu
def test_concurrent_runs_do_not_share_a_cpu(tmp_path):
    runs = []
    try:
        for _ in range(2):
            p, out = _runner(tmp_path, "", "hold", stdin=subprocess.PIPE)
            runs.append((p, out))
            for _ in range(1000):  # until its probe has run, pinned or not
                if out.exists() and out.stat().st_size:
                    break
                time.sleep(0.01)
        a, b = (_seen(out)["before"] for _, out in runs)
    finally:
        for p, _ in runs:
            p.communicate("x", timeout=30)
    assert not (len(a) == 1 and a == b)


UDP = b"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("192.0.2.1", 53))
u.send(b"connected: no destination, no stop")
u.sendto(b"x", ("192.0.2.2", 5353))
v = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
try:
    v.connect(("::1", 9))
except OSError:
    pass
"""


def test_connect_and_sendto_destinations_are_reported(tmp_path):
    events, status, _ = run([PY, b"-c", UDP], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    got = []
    for e in of_kind(events, trace.CONNECT):
        family = int.from_bytes(e.data[:2], sys.byteorder)
        port = int.from_bytes(e.data[2:4], "big")
        addr = e.data[4:8] if family == 2 else e.data[8:24]
        got.append((family, addr, port, e.arg))
    assert got == [
        (2, bytes([192, 0, 2, 1]), 53, 2),  # AF_INET, SOCK_DGRAM
        (2, bytes([192, 0, 2, 2]), 5353, 2),
        (10, bytes(15) + b"\x01", 9, 1),  # AF_INET6 ::1, SOCK_STREAM
    ]


def test_memfd_is_reported(tmp_path):
    events, status, root = run([PY, b"-c", b"import os; os.memfd_create('m')"], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [(e.pid, e.data) for e in of_kind(events, trace.UNTRACED)] == [(root, b"memfd")]


def test_exec_flags_mark_setuid_programs(tmp_path):
    suid = next(
        (p for p in ("/usr/bin/passwd", "/usr/bin/su") if os.stat(p).st_mode & 0o4000), None
    )
    if suid is None:
        pytest.skip("no setuid program here")
    events, _, _ = run([SH, b"-c", os.fsencode(f"{suid} --help >/dev/null 2>&1; true")], tmp_path)
    flags = {e.path2: e.flags for e in of_kind(events, trace.EXEC)}
    assert flags[os.fsencode(os.path.realpath(suid))] & 1
    assert flags[os.fsencode(os.path.realpath(SH))] == 0


def test_write_open_of_a_device_or_fifo_is_not_held(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    script = b"echo x > /dev/null; (cat fifo > /dev/null &); echo y > fifo; wait"
    events, status, _ = run([SH, b"-c", script], tmp_path)
    assert os.waitstatus_to_exitcode(status) == 0
    for path in (b"/dev/null", real(tmp_path) + b"/fifo"):
        writes = [e for e in opens_of(events, path) if e.arg & os.O_ACCMODE != os.O_RDONLY]
        assert writes, path
        assert {(e.held, e.flags) for e in writes} == {(0, trace.OPEN_SPECIAL)}


def test_tracer_ignores_sigint_and_sigquit_while_it_lives_and_the_command_does_not():
    handler = signal.getsignal(signal.SIGINT)
    with Tracer(b"/bin/sleep", [b"sleep", b"0.5"], dict(os.environb), b"/") as t:
        seen = trace.interrupts()
        os.kill(os.getpid(), signal.SIGINT)  # Python's handler would raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGQUIT)  # the default action would dump core
        assert trace.interrupts() == seen + 2  # counted, for a caller waiting on roard
        with open(f"/proc/{t.root_pid}/status") as f:
            ignored = int(next(line for line in f if line.startswith("SigIgn:")).split()[1], 16)
        assert not ignored & (1 << (signal.SIGINT - 1) | 1 << (signal.SIGQUIT - 1))
        while t.next_batch():
            pass
        assert os.waitstatus_to_exitcode(t.exit_status()) == 0
    assert signal.getsignal(signal.SIGINT) is handler  # Python's own handler is back
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None,
    reason="no aarch64 cross compiler (apt-get install gcc-aarch64-linux-gnu)",
)
def test_the_tracer_compiles_for_aarch64_without_warnings(tmp_path):
    """aarch64 has only the *at syscalls and its own audit arch: the #ifdef'd SYS_* table and
    register access must build there as they are (running it needs an aarch64 machine)."""
    source = Path(__file__).resolve().parents[1] / "native" / "tracer.c"
    obj = tmp_path / "tracer.o"
    cc = ["aarch64-linux-gnu-gcc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-c"]
    subprocess.run([*cc, str(source), "-o", str(obj)], check=True)
    assert obj.read_bytes()[:4] == b"\x7fELF" and obj.read_bytes()[18] == 183  # EM_AARCH64
    symbols = subprocess.run(
        ["aarch64-linux-gnu-nm", "-g", "--defined-only", str(obj)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("roar_start", "roar_next", "roar_free", "roar_forward_signals"):
        assert f" T {name}\n" in symbols


def test_hold_writes_holds_even_new_files_until_turned_off(tmp_path):
    script = b"echo a > one; echo b > two; ln -s one three; echo c > four"
    held: list[bytes] = []
    with Tracer(SH, [SH, b"-c", script], dict(os.environb), os.fsencode(tmp_path)) as t:
        t.hold_writes(True)
        events: list[Event] = []
        while batch := t.next_batch():
            events += batch
            if batch[-1].held:
                held.append(os.path.basename(batch[-1].path2 or batch[-1].path))
                if len(held) == 3:
                    t.hold_writes(False)
    assert held == [b"one", b"two", b"three"]  # new files and a symlink: held while on
    (four,) = opens_of(events, real(tmp_path) + b"/four")
    assert (four.held, four.flags) == (0, trace.OPEN_NEW)
