"""A job's row and files: projects, blobs (environments, package lists, hardware), the job row
(inserted by `insert`, settled by `settle`), its inputs and outputs (`add_io`), and the status
changes of recovery. The msgpack encoding of the row's columns is known here only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import blake3
import msgspec

from roar.model import (
    Container,
    FilteredSummary,
    GitState,
    JobKind,
    JobStatus,
    Process,
    TrackerRun,
    Usage,
)
from roar.protocol import JobRow, show_path
from roard.store import Store, Tx

_pack = msgspec.msgpack.encode

IORow = tuple[int, bytes, str, int, str | None]  # role (0 in, 1 out), path, hash, size, previous

ROW_SELECT = (
    "SELECT j.id, j.command, p.root, j.status, j.started, j.ended, j.exit_code, j.signal,"
    " j.n_inputs, j.n_outputs, j.step, j.session_id, j.kind,"
    " EXISTS (SELECT 1 FROM jobs n WHERE n.session_id = j.session_id AND n.kind = j.kind"
    "   AND n.step = j.step AND n.started > j.started), j.seq"
    " FROM jobs j LEFT JOIN projects p ON p.id = j.project_id"
)


def step_ref(kind: JobKind, step: int | None) -> str | None:
    """`@N` for a run's step, `@BN` for a build's."""
    if step is None:
        return None
    return f"@B{step}" if kind == "build" else f"@{step}"


def row_of(r: Any) -> JobRow:
    """A JobRow from a ROW_SELECT result row (its last column, j.seq, is for callers)."""
    return JobRow(
        id=r[0],
        command=r[1],
        project=None if r[2] is None else show_path(r[2]),
        status=r[3],
        started=r[4],
        ended=r[5],
        exit_code=r[6],
        signal=r[7],
        inputs=r[8],
        outputs=r[9],
        step=step_ref(r[12], r[10]),
        session=r[11],
        kind=r[12],
        superseded=bool(r[13]),
    )


async def job_row(store: Store, job_id: str) -> JobRow | None:
    rows = await store.rows(ROW_SELECT + " WHERE j.id = ?", (job_id,))
    return row_of(rows[0]) if rows else None


async def request_of(store: Store, job_id: str) -> str | None:
    """The training request a job ran for (`roarctl run --request`), if any."""
    rows = await store.rows("SELECT request FROM jobs WHERE id = ?", (job_id,))
    return rows[0][0] if rows else None


def unpack(body: bytes | None, typ: Any, default: Any = None) -> Any:
    """A msgpack column (or blob body) as `typ`; `default` when there is none."""
    if body is None:
        return default
    return msgspec.msgpack.decode(body, type=typ)


# ---------------------------------------------------------------- projects and blobs


async def project_id(store: Store, root: bytes) -> int:
    """The id of the project at `root`, created on first use."""
    found = await store.scalar("SELECT id FROM projects WHERE root = ?", (root,))
    if found is not None:
        return int(found)
    async with store.write() as tx:
        created = await tx.scalar(
            "INSERT INTO projects (root, created) VALUES (?, ?) "
            "ON CONFLICT(root) DO UPDATE SET root = excluded.root RETURNING id",
            (root, time.time()),
        )
    return int(created)


async def put_blob(store: Store, value: object) -> str:
    """Store `value` (msgpack) by its hash, once; the hash."""
    body = _pack(value)
    digest = blake3.blake3(body).hexdigest()
    if digest not in store.known_blobs:
        async with store.write() as tx:
            await tx.execute(
                "INSERT INTO blobs (hash, body) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (digest, body),
            )
        store.known_blobs.add(digest)
    return digest


async def blob(store: Store, digest: str | None, typ: Any, default: Any) -> Any:
    if digest is None:
        return default
    body = await store.scalar("SELECT body FROM blobs WHERE hash = ?", (digest,))
    return unpack(body, typ, default)


# ---------------------------------------------------------------- writing a job


async def insert(
    tx: Tx,
    *,
    job_id: str,
    project_id: int | None,
    status: JobStatus,
    command: str,
    argv: list[str],
    cwd: bytes,
    started: float,
    kind: JobKind,
    session: int | None,
    step: int | None,
    git: GitState | None = None,
    env_blob: str | None = None,
    hardware_blob: str | None = None,
    conda_blob: str | None = None,
    container: Container | None = None,
) -> int:
    """The job's row (the only place one is inserted); its seq."""
    seq = await tx.scalar(
        "INSERT INTO jobs (id, project_id, status, command, argv, cwd, started, git, env_blob,"
        " hardware_blob, session_id, step, kind, conda_blob, container)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (
            job_id,
            project_id,
            status,
            command,
            _pack(argv),
            cwd,
            started,
            None if git is None else _pack(git),
            env_blob,
            hardware_blob,
            session,
            step,
            kind,
            conda_blob,
            None if container is None else _pack(container),
        ),
    )
    return int(seq)


async def set_request(tx: Tx, job_id: str, request: str) -> None:
    """The training request the job ran for (roarctl checked it with the registry)."""
    await tx.execute("UPDATE jobs SET request = ? WHERE id = ?", (request, job_id))


async def settle(
    tx: Tx,
    job_id: str,
    *,
    status: JobStatus,
    ended: float | None,
    exit_code: int | None,
    signal: int | None,
    inputs: int,
    outputs: int,
    packages: dict[str, str],
    processes: list[Process],
    blind_spots: list[str],
    filtered: FilteredSummary,
    trackers: list[TrackerRun],
    external: list[str],
    system_blob: str | None = None,
) -> None:
    """What the job's finish knows: outcome, counts, and the rest of its context."""
    await tx.execute(
        "UPDATE jobs SET status = ?, ended = ?, exit_code = ?, signal = ?, n_inputs = ?,"
        " n_outputs = ?, packages = ?, processes = ?, blind_spots = ?, filtered = ?,"
        " trackers = ?, external = ?, system_blob = ? WHERE id = ?",
        (
            status,
            ended,
            exit_code,
            signal,
            inputs,
            outputs,
            _pack(packages),
            _pack(processes),
            _pack(blind_spots),
            _pack(filtered),
            _pack(trackers),
            _pack(external),
            system_blob,
            job_id,
        ),
    )


async def set_usage(tx: Tx, job_id: str, usage: Usage | None) -> None:
    """What the job used (compute accounting), with its finish."""
    body = None if usage is None else _pack(usage)
    await tx.execute("UPDATE jobs SET usage = ? WHERE id = ?", (body, job_id))


async def usage(store: Store, job_id: str) -> Usage | None:
    return unpack(await store.scalar("SELECT usage FROM jobs WHERE id = ?", (job_id,)), Usage)


async def add_io(tx: Tx, job_id: str, rows: Sequence[IORow], now: float) -> None:
    """The job's inputs and outputs, replacing any it had: paths, artifacts (first seen `now`),
    then the links between them and the job."""
    seq = await tx.scalar("SELECT seq FROM jobs WHERE id = ?", (job_id,))
    await tx.execute("DELETE FROM job_io WHERE job = ?", (seq,))
    if not rows:
        return
    await tx.executemany(
        "INSERT INTO paths (path) VALUES (?) ON CONFLICT DO NOTHING",
        [(path,) for path in dict.fromkeys(r[1] for r in rows)],
    )
    sizes: dict[str, int] = {}
    for _, _, digest, size, _ in rows:
        sizes[digest] = max(size, sizes.get(digest, size))
    await tx.executemany(
        "INSERT INTO artifacts (hash, size, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(digest, size, now) for digest, size in sizes.items()],
    )
    await tx.executemany(
        "INSERT INTO job_io (job, role, path, artifact, previous)"
        " SELECT ?, ?, p.id, a.id, ? FROM paths p, artifacts a WHERE p.path = ? AND a.hash = ?",
        [(seq, role, previous, path, digest) for role, path, digest, _, previous in rows],
    )


async def status(store: Store, job_id: str) -> JobStatus | None:
    return await store.scalar("SELECT status FROM jobs WHERE id = ?", (job_id,))


async def env_blob(store: Store, job_id: str) -> str | None:
    return await store.scalar("SELECT env_blob FROM jobs WHERE id = ?", (job_id,))


async def interrupt_running(store: Store) -> int:
    """Runs left `running` by a daemon that died become `interrupted` (one transaction)."""
    async with store.write() as tx:
        return await tx.execute("UPDATE jobs SET status = 'interrupted' WHERE status = 'running'")


async def interrupt(store: Store, job_id: str) -> None:
    """A run whose client went away: `interrupted`, unless it finished meanwhile."""
    async with store.write() as tx:
        await tx.execute(
            "UPDATE jobs SET status = 'interrupted' WHERE id = ? AND status = 'running'",
            (job_id,),
        )


async def delete(tx: Tx, job_id: str) -> None:
    """A job's record: its files, its labels, its row (`roarctl pop`)."""
    seq = await tx.scalar("SELECT seq FROM jobs WHERE id = ?", (job_id,))
    await tx.execute("DELETE FROM job_io WHERE job = ?", (seq,))
    await tx.execute("DELETE FROM labels WHERE target = ?", (f"job:{job_id}",))
    await tx.execute("DELETE FROM jobs WHERE seq = ?", (seq,))
