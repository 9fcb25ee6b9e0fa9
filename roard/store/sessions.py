"""Sessions and steps: the rows behind roard.sessions (which decides; this reads and writes)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from roar.model import JobKind
from roar.protocol import JobRow
from roard.store import Store, Tx
from roard.store.jobs import ROW_SELECT, row_of


def _of_project(project_id: int | None) -> tuple[str, tuple[Any, ...]]:
    """`project_id` matched as SQL: runs outside any project have none (NULL)."""
    if project_id is None:
        return "project_id IS NULL", ()
    return "project_id = ?", (project_id,)


async def newest(store: Store | Tx, project_id: int | None) -> int | None:
    """The project's newest session, if it has one."""
    where, params = _of_project(project_id)
    found = await store.scalar(
        f"SELECT id FROM sessions WHERE {where} ORDER BY id DESC LIMIT 1", params
    )
    return None if found is None else int(found)


async def create(tx: Tx, project_id: int | None, started: float | None = None) -> int:
    found = await tx.scalar(
        "INSERT INTO sessions (project_id, started) VALUES (?, ?) RETURNING id",
        (project_id, time.time() if started is None else started),
    )
    return int(found)


async def has_step(tx: Tx, session: int, kind: JobKind, step: int) -> bool:
    return bool(
        await tx.scalar(
            "SELECT 1 FROM jobs WHERE session_id = ? AND kind = ? AND step = ?",
            (session, kind, step),
        )
    )


async def step_of_command(tx: Tx, session: int, kind: JobKind, command: str) -> int | None:
    """The step that last ran `command` in the session."""
    found = await tx.scalar(
        "SELECT step FROM jobs WHERE session_id = ? AND kind = ? AND command = ?"
        " ORDER BY started DESC LIMIT 1",
        (session, kind, command),
    )
    return None if found is None else int(found)


async def last_step(tx: Tx, session: int, kind: JobKind) -> int:
    top = await tx.scalar(
        "SELECT max(step) FROM jobs WHERE session_id = ? AND kind = ?", (session, kind)
    )
    return int(top or 0)


async def current_job(store: Store, session: int, kind: JobKind, step: int) -> str | None:
    """The id of the newest job of a step."""
    found = await store.scalar(
        "SELECT id FROM jobs WHERE session_id = ? AND kind = ? AND step = ?"
        " ORDER BY started DESC LIMIT 1",
        (session, kind, step),
    )
    return None if found is None else str(found)


async def command_of(store: Store, job_id: str) -> tuple[list[str], bytes, JobKind] | None:
    """A job's argv, cwd and kind: what re-running it needs."""
    rows = await store.rows("SELECT argv, cwd, kind FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        return None
    argv, cwd, kind = rows[0]
    return msgspec.msgpack.decode(argv, type=list[str]), bytes(cwd), kind


async def jobs(store: Store, session: int) -> list[tuple[int, JobRow]]:
    """The session's jobs in start order, with their seq."""
    rows = await store.rows(ROW_SELECT + " WHERE j.session_id = ? ORDER BY j.started", (session,))
    return [(r[-1], row_of(r)) for r in rows]


async def files(store: Store, seqs: list[int]) -> list[tuple[int, int, bytes, str, int]]:
    """Every input and output of these jobs: (seq, role, path, hash, size), by path."""
    if not seqs:
        return []
    return await store.rows(
        "SELECT io.job, io.role, pa.path, a.hash, a.size FROM job_io io"
        " JOIN paths pa ON pa.id = io.path JOIN artifacts a ON a.id = io.artifact"
        f" WHERE io.job IN ({','.join('?' * len(seqs))}) ORDER BY pa.path",
        seqs,
    )


async def newest_job(store: Store, session: int) -> str | None:
    found = await store.scalar(
        "SELECT id FROM jobs WHERE session_id = ? ORDER BY started DESC LIMIT 1", (session,)
    )
    return None if found is None else str(found)


async def outputs_in_use(store: Store, job_id: str) -> list[tuple[bytes, str, bool]]:
    """A job's outputs: (path, hash, in use), in use when another job read the content or the
    path, or when the file existed before the job (it only modified it)."""
    rows = await store.rows(
        "SELECT p.path, a.hash, io.previous IS NOT NULL OR EXISTS (SELECT 1 FROM job_io o"
        "  WHERE o.role = 0 AND (o.job != io.job OR o.path = io.path)"
        "  AND (o.artifact = io.artifact OR o.path = io.path))"
        " FROM jobs j JOIN job_io io ON io.job = j.seq JOIN paths p ON p.id = io.path"
        " JOIN artifacts a ON a.id = io.artifact"
        " WHERE j.id = ? AND io.role = 1 ORDER BY p.path",
        (job_id,),
    )
    return [(bytes(path), digest, bool(used)) for path, digest, used in rows]
