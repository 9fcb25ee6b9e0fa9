"""What a finished run's facts become: its input and output rows (classified, hashed through the
cache), its process tree and exit status, the packages of the interpreters it ran, the system
packages of the programs and libraries it used, and the experiment-tracker runs it wrote."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Collection

import anyio

from roar import redact
from roar.model import Process, TrackerRun
from roar.protocol import Proc, show_path
from roard.capture import packages, system, trackers
from roard.classify import Classified
from roard.hashcache import SendProgress, hash_files
from roard.store import Store, jobs
from roard.store.hashcache import CacheRow
from roard.store.jobs import IORow


async def single(c: Classified) -> AsyncIterator[Classified]:
    """A small run's one chunk, as the chunks of a staged run come."""
    yield c


async def io_rows(
    store: Store, c: Classified, progress: SendProgress | None
) -> tuple[list[IORow], list[CacheRow]]:
    """A chunk's input and output rows, hashing what is not known (through the cache), and
    the cache entries to store."""
    to_hash = [p for p, (h, _) in c.inputs.items() if h is None]
    to_hash += list(c.outputs) + list(c.rdwr)
    hashed = await hash_files(store, to_hash, progress, stat_keys=c.keys)
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
    rows: list[IORow] = [(0, p, h, size, None) for p, (h, size) in inputs.items()]
    rows += [(1, p, h, size, prev) for p, (h, size, prev) in outputs.items()]
    cache: list[CacheRow] = [(*key, h) for h, _, key in hashed.values() if key is not None]
    return rows, cache


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


def proc_views(procs: list[Proc], known: Collection[str] = ()) -> list[Process]:
    """The process tree for display; a child that never exec'd shows its parent's image.
    `known`: values declared secret (roar.redact.KNOWN_MIN)."""
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
                argv=redact.redact_argv(last.argv, known) if last else [],
                exe=show_path(last.exe) if last else None,
                exit_code=None if sig else code,
                signal=sig,
            )
        )
    return views


async def tracker_runs(store: Store, job_id: str, written: list[bytes]) -> list[TrackerRun]:
    """Experiment-tracker runs the job wrote, from their files and the (redacted) env."""
    env = await jobs.blob(store, await jobs.env_blob(store, job_id), dict[str, str], {})
    return await anyio.to_thread.run_sync(trackers.detect, written, env)


async def package_lists(store: Store, procs: list[Proc]) -> dict[str, str]:
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
        # keyed by its display form: a name that is not UTF-8 cannot be stored as str as is
        result[show_path(os.fsencode(interp))] = await jobs.put_blob(store, found)
    return result


async def system_blob(store: Store, procs: list[Proc], filtered: list[bytes]) -> str | None:
    """Blob hash of the system packages owning the programs the run executed and the system
    files (libraries, executables) it used; None when there is no package manager."""
    paths = {image.exe for p in procs for image in p.execs}
    paths.update(filtered)
    found = await anyio.to_thread.run_sync(system.packages, paths)
    return None if found is None else await jobs.put_blob(store, found)


async def conda_blob(store: Store, env: list[bytes]) -> str | None:
    """Blob hash of the conda environment a run's environment has active, if any."""
    values = {}
    for entry in env:
        name, _, value = entry.partition(b"=")
        if name in (b"CONDA_PREFIX", b"CONDA_DEFAULT_ENV"):
            values[name.decode()] = value.decode("utf-8", "replace")
    if "CONDA_PREFIX" not in values:
        return None
    found = await anyio.to_thread.run_sync(system.conda, values)
    return None if found is None else await jobs.put_blob(store, found)
