"""A run's life in the daemon: the record made at start, and the inputs/outputs settled at finish.

At start: project, git state (dirty files hashed), redacted environment and argv, hardware.
At finish: every path the tracer saw is resolved, filtered, classified (input, output, temporary),
hashed through the cache, and written with the process tree in one transaction.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import blake3
import msgspec

from roar import hashing, project, redact
from roar.hashing import Key
from roar.model import FilteredSummary, GitState, Process, TrackerRun
from roar.protocol import (
    FileFact,
    Proc,
    Progress,
    RunDone,
    RunFinish,
    RunStart,
    RunStarted,
    show_path,
)
from roard import hashcache, sessions, staging
from roard.capture import git, hardware, packages, trackers
from roard.classify import Classified, Totals, classify
from roard.logs import log

if TYPE_CHECKING:
    from roard.daemon import Daemon
    from roard.store import _Tx

SendProgress = Callable[[Progress], Coroutine[Any, Any, None]]
DIRTY_HASH_LIMIT = (
    64 * 1024 * 1024
)  # untracked/modified files larger than this are listed, not hashed
_pack = msgspec.msgpack.encode


# ---------------------------------------------------------------- start


async def start(d: Daemon, req: RunStart) -> RunStarted:
    job_id = secrets.token_hex(6)
    cwd = os.fsdecode(req.cwd)
    root = project.find_root(req.cwd)
    project_id = await d.store.project_id(root) if root is not None else None
    rules = project.load_config(root).hygiene if root is not None else None
    state = await anyio.to_thread.run_sync(git.git_state, cwd)
    warnings: list[str] = []
    if state is not None and not state.clean and rules is not None and rules.committed_code_only:
        names = ", ".join(f.path for f in state.dirty[:5])
        more = "" if len(state.dirty) <= 5 else f" and {len(state.dirty) - 5} more"
        why = f"hygiene.committed_code_only is set and {state.root} has uncommitted changes"
        if req.early:  # the rule was written after roarctl looked: too late to refuse
            warnings.append(f"{why} ({names}{more}); the run had already started")
        else:
            return RunStarted(
                job_id="",
                project=show_path(root) if root else None,
                refuse=f"{why} ({names}{more}): commit them, or turn the rule off with "
                "`roarctl config set hygiene.committed_code_only false`",
            )
    if state is not None:
        state = await _hash_dirty(d, state)
        if not state.clean:
            warnings.append(
                f"uncommitted changes in {len(state.dirty)} file(s) of {state.root} (recorded)"
            )
    argv = redact.redact_argv(req.argv)
    command = redact.command_display(argv)
    inject = [
        f"{name}={value}".encode()
        for name, value in await d.store.rows(
            "SELECT name, value FROM project_env WHERE project_id IS ? ORDER BY name",
            (project_id,),
        )
    ]
    if inject and req.early:  # set after roarctl looked: the command runs without them
        warnings.append(
            f"{len(inject)} project env variable(s) were set after the run started: "
            "not in its environment"
        )
        inject = []
    injected = {e.split(b"=", 1)[0] for e in inject}
    env = [e for e in req.env if e.split(b"=", 1)[0] not in injected] + inject
    env_blob = await put_blob(d, redact.redact_env(env))  # what the command really receives
    hw_blob = await put_blob(d, hardware.hardware())
    async with d.store.write() as db:
        session, step = await sessions.place(db, project_id, req.kind, command, req.step)
        await db.execute(
            "INSERT INTO jobs (id, project_id, status, command, argv, cwd, started, git, env_blob,"
            " hardware_blob, session_id, step, kind)"
            " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                project_id,
                command,
                _pack(argv),
                req.cwd,
                req.started,
                None if state is None else _pack(state),
                env_blob,
                hw_blob,
                session,
                step,
                req.kind,
            ),
        )
    log.info("run.start", job=job_id, project=None if root is None else os.fsdecode(root))
    return RunStarted(
        job_id=job_id,
        project=None if root is None else show_path(root),
        warnings=warnings,
        step=sessions.ref(req.kind, step),
        inject=inject,
    )


async def _hash_dirty(d: Daemon, state: GitState) -> GitState:
    paths = [
        os.fsencode(os.path.join(state.root, f.path)) for f in state.dirty if f.status != "deleted"
    ]
    hashed = await hash_files(d, paths, None, limit=DIRTY_HASH_LIMIT)
    dirty = [
        msgspec.structs.replace(
            f, hash=hashed.get(os.fsencode(os.path.join(state.root, f.path)), (None,))[0]
        )
        for f in state.dirty
    ]
    return msgspec.structs.replace(state, dirty=dirty)


async def put_blob(d: Daemon, value: object) -> str:
    body = _pack(value)
    digest = blake3.blake3(body).hexdigest()
    if digest not in d.known_blobs:
        async with d.store.write() as db:
            await db.execute(
                "INSERT INTO blobs (hash, body) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (digest, body),
            )
        d.known_blobs.add(digest)
    return digest


# ---------------------------------------------------------------- finish


async def finish(
    d: Daemon, req: RunFinish, facts: list[FileFact], progress: SendProgress, staged: bool
) -> RunDone:
    """Settle the run: classify its paths, hash through the cache, write the record.
    `staged`: its facts (and `facts`, added first) go through roard.staging, a chunk at a time."""
    began = time.monotonic()
    root = project.find_root(req.start.cwd)
    filters = d.filters
    if root is not None:
        own = project.load_config(root).filters
        filters = filters.extended(own.exclude, own.include)
    totals = Totals()
    written: list[bytes] = []  # outputs, for the tracker runs they reveal
    rows: list[Staged] = []  # a small run's, written with the record
    cache: list[tuple] = []
    hash_seconds = 0.0
    hashed_count = 0
    if staged:
        if facts:
            await staging.add(d, req.job_id, facts)
        async with d.store.write() as db:
            await _clear_io(db, req.job_id)
        chunks = staging.classified(d, req.job_id, filters, totals)
    else:
        chunks = _single(await anyio.to_thread.run_sync(classify, facts, filters, totals))
    async for c in chunks:
        t = time.monotonic()
        chunk_rows, cache_rows = await _io_rows(d, c, progress)
        hash_seconds += time.monotonic() - t
        hashed_count += len(cache_rows)
        chunk_written = [path for role, path, *_ in chunk_rows if role == 1]
        written += chunk_written
        totals.outputs += len(chunk_written)
        totals.inputs += len(chunk_rows) - len(chunk_written)
        if staged:  # to the staging table now; small runs write theirs with the record
            async with d.store.write() as db:
                await _stage_io(db, req.job_id, chunk_rows)
                await db.executemany(hashcache.UPSERT, cache_rows)
        else:
            rows += chunk_rows
            cache += cache_rows
    t_hash = time.monotonic()

    pkgs = await _packages(d, req.procs)
    runs = await _trackers(d, req.job_id, [*written, *totals.filtered_paths])
    t_packages = time.monotonic()
    status_row = await d.store.scalar("SELECT status FROM jobs WHERE id = ?", (req.job_id,))
    if status_row is None:  # the daemon lost this run (store replaced); rebuild it from the finish
        await start_record(d, req)
        status_row = "interrupted"
    status = "complete" if status_row == "running" else "recovered"
    if not req.tracer_ok:
        status = "partial"
    exit_code, sig = split_status(req.wait_status)
    filtered = FilteredSummary(
        count=sum(totals.filtered.values()),
        by_rule=totals.filtered,
        paths=[show_path(p) for p in totals.filtered_paths],
    )
    now = time.time()
    async with d.store.write() as db:
        if not staged:
            await _clear_io(db, req.job_id)
            await _stage_io(db, req.job_id, rows)
            await db.executemany(hashcache.UPSERT, cache)
        await write_io(db, req.job_id, now)
        await db.execute(
            "UPDATE jobs SET status = ?, ended = ?, exit_code = ?, signal = ?, n_inputs = ?,"
            " n_outputs = ?, packages = ?, processes = ?, blind_spots = ?, filtered = ?,"
            " trackers = ?, external = ? WHERE id = ?",
            (
                status,
                req.ended,
                exit_code,
                sig,
                totals.inputs,
                totals.outputs,
                _pack(pkgs),
                _pack(proc_views(req.procs)),
                _pack(sorted(set(req.blind_spots))),
                _pack(filtered),
                _pack(runs),
                _pack(sorted(set(req.external))),
                req.job_id,
            ),
        )
    t_written = time.monotonic()
    log.info(
        "run.finish",
        job=req.job_id,
        status=status,
        inputs=totals.inputs,
        outputs=totals.outputs,
        filtered=filtered.count,
        hashed=hashed_count,
        staged=staged,
        seconds=round(time.monotonic() - began, 3),
        classify=round(t_hash - began - hash_seconds, 3),
        hash=round(hash_seconds, 3),
        packages=round(t_packages - t_hash, 3),
        write=round(t_written - t_packages, 3),
    )
    from roard import queries

    row = await queries.job_row(d, req.job_id)
    assert row is not None
    return RunDone(job=row, filtered=filtered.count)


async def _single(c: Classified) -> AsyncIterator[Classified]:
    yield c


async def _io_rows(
    d: Daemon, c: Classified, progress: SendProgress
) -> tuple[list[Staged], list[tuple]]:
    """A chunk's input and output rows, hashing what is not known (through the cache), and
    the cache entries to store."""
    to_hash = [p for p, (h, _) in c.inputs.items() if h is None]
    to_hash += list(c.outputs) + list(c.rdwr)
    hashed = await hash_files(d, to_hash, progress, stat_keys=c.keys)
    inputs: dict[bytes, tuple[str, int]] = {}
    outputs: dict[bytes, tuple[str, int, str | None]] = {}
    for path, (pre, size) in c.inputs.items():
        if pre is not None:
            inputs[path] = (pre, size or 0)
        elif path in hashed:
            inputs[path] = hashed[path][:2]
    for path, previous in c.outputs.items():
        if path in hashed:
            outputs[path] = (*hashed[path][:2], previous)
    for path, before in c.rdwr.items():
        if path not in hashed:
            continue
        if hashed[path][0] == before:
            inputs[path] = hashed[path][:2]
        else:
            outputs[path] = (*hashed[path][:2], before)
    rows: list[Staged] = [(0, p, h, size, None) for p, (h, size) in inputs.items()]
    rows += [(1, p, h, size, prev) for p, (h, size, prev) in outputs.items()]
    cache = [(*key, h) for h, _, key in hashed.values() if key is not None]
    return rows, cache


Staged = tuple[int, bytes, str, int, str | None]  # role, path, hash, size, previous hash
_IO_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS io_stage"
    " (job TEXT, role INTEGER, path BLOB, hash TEXT, size INTEGER, previous TEXT)"
)


async def _clear_io(db: _Tx, job_id: str) -> None:
    """Rows a failed earlier attempt to finish this job may have left."""
    await db.execute(_IO_STAGE)
    await db.execute("DELETE FROM io_stage WHERE job = ?", (job_id,))


async def _stage_io(db: _Tx, job_id: str, rows: list[Staged]) -> None:
    await db.execute(_IO_STAGE)
    await db.executemany(
        "INSERT INTO io_stage VALUES (?, ?, ?, ?, ?, ?)", [(job_id, *r) for r in rows]
    )


async def write_io(db: _Tx, job_id: str, now: float) -> None:
    """A job's inputs and outputs, set-based, from its rows in io_stage: paths, artifacts,
    then links."""
    await db.execute(_IO_STAGE)
    await db.execute(
        "INSERT INTO paths (path) SELECT DISTINCT path FROM io_stage WHERE job = ?"
        " ON CONFLICT DO NOTHING",
        (job_id,),
    )
    await db.execute(
        "INSERT INTO artifacts (hash, size, first_seen) SELECT hash, max(size), ? FROM io_stage"
        " WHERE job = ? GROUP BY hash ON CONFLICT DO NOTHING",
        (now, job_id),
    )
    seq = "(SELECT seq FROM jobs WHERE id = ?)"
    await db.execute(f"DELETE FROM job_io WHERE job = {seq}", (job_id,))
    await db.execute(
        f"INSERT INTO job_io (job, role, path, artifact, previous) SELECT {seq}, s.role, p.id,"
        " a.id, s.previous FROM io_stage s JOIN paths p ON p.path = s.path"
        " JOIN artifacts a ON a.hash = s.hash WHERE s.job = ?",
        (job_id, job_id),
    )
    await db.execute("DELETE FROM io_stage WHERE job = ?", (job_id,))


async def start_record(d: Daemon, req: RunFinish) -> None:
    """Insert a job row from the copy of RunStart carried by RunFinish (daemon lost the start)."""
    s = req.start
    root = project.find_root(s.cwd)
    project_id = await d.store.project_id(root) if root is not None else None
    argv = redact.redact_argv(s.argv)
    command = redact.command_display(argv)
    env_blob = await put_blob(d, redact.redact_env(s.env))
    async with d.store.write() as db:
        session, step = await sessions.place(db, project_id, s.kind, command, None)
        await db.execute(
            "INSERT INTO jobs (id, project_id, status, command, argv, cwd, started, env_blob,"
            " session_id, step, kind) VALUES (?, ?, 'interrupted', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                req.job_id,
                project_id,
                command,
                _pack(argv),
                s.cwd,
                s.started,
                env_blob,
                session,
                step,
                s.kind,
            ),
        )


def split_status(wait_status: int) -> tuple[int | None, int | None]:
    """(exit code, None) for a normal exit, (128+N, N) when killed by signal N."""
    if wait_status < 0:
        return None, None
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        return 128 + sig, sig
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status), None
    return None, None


def proc_views(procs: list[Proc]) -> list[Process]:
    """The process tree for display; a child that never exec'd shows its parent's image."""
    image = {p.pid: p.execs[-1] for p in procs if p.execs}
    parent = {p.pid: p.ppid for p in procs}
    views = []
    for p in procs:
        last, pid = image.get(p.pid), p.pid
        while last is None and pid in parent and parent[pid] != pid:
            pid = parent[pid]
            last = image.get(pid)
        code, sig = split_status(p.wait_status) if p.wait_status is not None else (None, None)
        views.append(
            Process(
                pid=p.pid,
                ppid=p.ppid,
                argv=redact.redact_argv(last.argv) if last else [],
                exe=show_path(last.exe) if last else None,
                exit_code=None if sig else code,
                signal=sig,
            )
        )
    return views


async def _trackers(d: Daemon, job_id: str, written: list[bytes]) -> list[TrackerRun]:
    """Experiment-tracker runs the job wrote, from their files and the (redacted) env."""
    blob = await d.store.scalar("SELECT env_blob FROM jobs WHERE id = ?", (job_id,))
    body = await d.store.scalar("SELECT body FROM blobs WHERE hash = ?", (blob,))
    env = msgspec.msgpack.decode(body, type=dict[str, str]) if body else {}
    return await anyio.to_thread.run_sync(trackers.detect, written, env)


async def _packages(d: Daemon, procs: list[Proc]) -> dict[str, str]:
    """Blob hashes of the package lists of every Python interpreter the run executed."""
    interpreters = {
        os.fsdecode(image.path)
        for p in procs
        for image in p.execs
        if packages.is_python(os.fsdecode(image.exe))  # the program that ran, not a shim
    }
    result = {}
    for interp in sorted(interpreters):
        found = await anyio.to_thread.run_sync(packages.python_packages, interp)
        result[interp] = await put_blob(d, found)
    return result


# ---------------------------------------------------------------- hashing through the cache


async def hash_files(
    d: Daemon,
    paths: list[bytes],
    progress: SendProgress | None,
    limit: int | None = None,
    stat_keys: dict[bytes, Key] | None = None,
) -> dict[bytes, tuple[str, int, Key | None]]:
    """Hash files (content hash, size, cache key to store) using and feeding the hash cache.
    `stat_keys` may carry the keys of regular files already stat'ed, to spare a second stat."""
    known_keys = stat_keys or {}
    keys: dict[bytes, Key] = {}
    for path in paths:
        key = known_keys.get(path)
        if key is None:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = Key.of(st)
        if limit is None or key.size <= limit:
            keys[path] = key
    known = await hashcache.cached(d.store, keys.values())
    result: dict[bytes, tuple[str, int, Key | None]] = {}
    misses = []
    for path, key in keys.items():
        if key in known:
            result[path] = (known[key], key.size, None)
        else:
            misses.append((path, key))
    if not misses:
        return result
    total = sum(k.size for _, k in misses)
    done = 0
    last_sent = 0.0
    began = time.monotonic()

    def report(n: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if progress is not None and now - began > 0.25 and now - last_sent > 0.1:
            last_sent = now
            anyio.from_thread.run(progress, Progress(label="hashing", done=done + n, total=total))

    def work() -> None:
        nonlocal done
        for path, key in misses:
            try:
                digest = hashing.hash_file(path, report)
                after = Key.of(os.stat(path))
            except OSError:
                continue
            # Cache only if the file did not change while it was hashed.
            result[path] = (digest, key.size, key if after == key else None)
            done += key.size
            report(0)

    await anyio.to_thread.run_sync(work)
    return result
