"""Sessions and steps: the pipeline view of a project's jobs.

A session groups the jobs of one pipeline in a project (`roarctl reset` starts a new one). Each
job is a step of its session: `@N` for runs, `@BN` for builds (setup such as `pip install -e .`).
Running the same command again, or `roarctl run @N`, re-runs step N: the newest job of a step is
its current one and earlier ones are superseded. A step is stale when a step it read from re-ran
with different outputs (or is itself stale).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from roar.protocol import DagReply, DagStep, IORecord, JobRow, PopReply, show_path

if TYPE_CHECKING:
    from roard.daemon import Daemon
    from roard.store import _Tx

STEP_REF = re.compile(r"^@(B?)(\d+)$", re.IGNORECASE)


class StepNotFound(Exception):
    pass


def ref(kind: str, step: int | None) -> str | None:
    if step is None:
        return None
    return f"@B{step}" if kind == "build" else f"@{step}"


async def current(d: Daemon, project_id: int | None) -> int:
    """The project's current session (the newest), created on first use."""
    found = await d.store.scalar(
        "SELECT id FROM sessions WHERE project_id IS ? ORDER BY id DESC LIMIT 1", (project_id,)
    )
    if found is not None:
        return int(found)
    async with d.store.write() as db:  # checked again inside: a concurrent run may create it
        return await _current_in(db, project_id)


async def _one(db: _Tx, sql: str, params: tuple[object, ...]) -> object:
    cur = await db.execute(sql, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _current_in(db: _Tx, project_id: int | None) -> int:
    found = await _one(
        db, "SELECT id FROM sessions WHERE project_id IS ? ORDER BY id DESC LIMIT 1", (project_id,)
    )
    if found is None:
        found = await _one(
            db,
            "INSERT INTO sessions (project_id, started) VALUES (?, ?) RETURNING id",
            (project_id, time.time()),
        )
    return int(found)  # type: ignore[call-overload]


async def new(d: Daemon, project_id: int | None) -> int:
    async with d.store.write() as db:
        found = await _one(
            db,
            "INSERT INTO sessions (project_id, started) VALUES (?, ?) RETURNING id",
            (project_id, time.time()),
        )
    return int(found)  # type: ignore[call-overload]


async def place(
    db: _Tx, project_id: int | None, kind: str, command: str, wanted: int | None
) -> tuple[int, int]:
    """Session and step for a new job, inside the transaction that inserts it (so concurrent
    runs never share a step or start separate sessions): the requested step, the step that last
    ran the same command, or the next free number."""
    session = await _current_in(db, project_id)
    if wanted is not None:
        exists = await _one(
            db,
            "SELECT 1 FROM jobs WHERE session_id = ? AND kind = ? AND step = ?",
            (session, kind, wanted),
        )
        if not exists:
            raise StepNotFound(f"this session has no step {ref(kind, wanted)}")
        return session, wanted
    same = await _one(
        db,
        "SELECT step FROM jobs WHERE session_id = ? AND kind = ? AND command = ?"
        " ORDER BY started DESC LIMIT 1",
        (session, kind, command),
    )
    if same is not None:
        return session, int(same)  # type: ignore[call-overload]
    top = await _one(
        db, "SELECT max(step) FROM jobs WHERE session_id = ? AND kind = ?", (session, kind)
    )
    return session, int(top or 0) + 1  # type: ignore[call-overload]


async def resolve_step(d: Daemon, session: int, text: str) -> str:
    """Job id of the current job of step `@N` / `@BN` in the session."""
    m = STEP_REF.match(text.strip())
    if not m:
        raise StepNotFound(f"'{text}' is not a step reference (@N or @BN)")
    kind = "build" if m.group(1) else "run"
    job = await d.store.scalar(
        "SELECT id FROM jobs WHERE session_id = ? AND kind = ? AND step = ?"
        " ORDER BY started DESC LIMIT 1",
        (session, kind, int(m.group(2))),
    )
    if job is None:
        raise StepNotFound(f"the current session has no step {text.upper()}")
    return str(job)


# ---------------------------------------------------------------- the session graph


@dataclass
class _Job:
    seq: int
    row: JobRow
    inputs: list[IORecord] = field(default_factory=list)
    outputs: list[IORecord] = field(default_factory=list)


_IO = (
    "SELECT io.job, io.role, pa.path, a.hash, a.size FROM jobs j JOIN job_io io ON io.job = j.seq"
    " JOIN paths pa ON pa.id = io.path JOIN artifacts a ON a.id = io.artifact"
    " WHERE j.session_id = ?"
)


async def graph(d: Daemon, session: int) -> DagReply:
    """Current job per step, in order, with dependencies, superseded jobs and staleness."""
    jobs: dict[int, _Job] = {}
    project = None
    from roard import queries

    sql = queries.ROW_SELECT + " WHERE j.session_id = ? ORDER BY j.started"
    for r in await d.store.rows(sql, (session,)):
        row = queries.row_of(r)
        project = row.project
        jobs[r[-1]] = _Job(seq=r[-1], row=row)
    for seq, role, path, digest, size in await d.store.rows(_IO, (session,)):
        rec = IORecord(path=show_path(path), hash=digest, size=size)
        (jobs[seq].outputs if role == 1 else jobs[seq].inputs).append(rec)

    by_step: dict[str, list[_Job]] = {}
    for j in jobs.values():  # in start order
        if j.row.step is not None:
            by_step.setdefault(j.row.step, []).append(j)
    current = {step: js[-1] for step, js in by_step.items()}
    producer_of: dict[str, str] = {}  # artifact hash -> step whose job (any) wrote it
    for step, js in by_step.items():
        for j in js:
            for o in j.outputs:
                producer_of[o.hash] = step
    writer: dict[str, tuple[float, str, str]] = {}  # path -> (started, step, hash): latest
    for step, j in current.items():
        for o in j.outputs:
            if o.path not in writer or writer[o.path][0] < j.row.started:
                writer[o.path] = (j.row.started, step, o.hash)

    steps: list[DagStep] = []
    stale: dict[str, str] = {}

    def order(item: tuple[str, _Job]) -> tuple[bool, int]:  # builds first, then by number
        return item[1].row.kind != "build", int(item[0].lstrip("@B"))

    for step, j in sorted(current.items(), key=order):
        depends: list[str] = []
        reason = None
        for i in j.inputs:
            src = producer_of.get(i.hash)
            w = writer.get(i.path)
            if w is not None and w[1] != step and w[2] != i.hash and reason is None:
                reason = f"{w[1]} re-ran and changed {i.path}"
            for s in (src, w[1] if w else None):
                if s is not None and s != step and s not in depends:
                    depends.append(s)
        for s in depends:
            if reason is None and s in stale:
                reason = f"upstream {s} is stale"
        if reason is not None:
            stale[step] = reason
        row = j.row
        row.stale = reason is not None
        steps.append(
            DagStep(
                ref=step,
                job=row,
                depends_on=depends,
                inputs=j.inputs,
                outputs=j.outputs,
                superseded=[x.row.id for x in by_step[step][:-1]],
                stale_reason=reason,
            )
        )
    return DagReply(session=session, project=project, steps=steps)


def flags(reply: DagReply) -> dict[str, tuple[bool, bool]]:
    """job id -> (superseded, stale) for every job of the session."""
    out: dict[str, tuple[bool, bool]] = {}
    for s in reply.steps:
        out[s.job.id] = (False, s.job.stale)
        for old in s.superseded:
            out[old] = (True, False)
    return out


async def pop(
    d: Daemon, session: int, delete_outputs: bool, dry_run: bool, expected: str | None = None
) -> PopReply:
    """Remove the session's most recent job record; with delete_outputs, also its output files
    that no other job read and that still hold the recorded content."""
    import os
    import stat

    import anyio

    from roar.hashing import hash_file
    from roard import queries

    rows = await d.store.rows(
        "SELECT seq, id FROM jobs WHERE session_id = ? ORDER BY started DESC LIMIT 1", (session,)
    )
    if not rows:
        raise StepNotFound("the current session has no jobs to pop")
    seq, job_id = rows[0]
    if expected is not None and job_id != expected:
        raise StepNotFound(
            f"job {expected} is no longer the session's newest ({job_id} ran since); "
            "nothing was removed: run pop again"
        )
    row = await queries.job_row(d, job_id)
    assert row is not None
    outputs = await d.store.rows(
        "SELECT p.path, a.hash, io.previous IS NOT NULL OR EXISTS (SELECT 1 FROM job_io o"
        "  WHERE o.role = 0 AND (o.job != io.job OR o.path = io.path)"
        "  AND (o.artifact = io.artifact OR o.path = io.path))"
        " FROM job_io io JOIN paths p ON p.id = io.path JOIN artifacts a ON a.id = io.artifact"
        " WHERE io.job = ? AND io.role = 1 ORDER BY p.path",
        (seq,),
    )
    deleted: list[str] = []
    kept: list[str] = []
    for path, digest, used in outputs:
        if not delete_outputs:
            break
        if used:  # read by a job, or it existed before this job (only modified): never deleted
            kept.append(show_path(path))
            continue
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            same = await anyio.to_thread.run_sync(hash_file, path) == digest
        except OSError:
            continue  # already gone
        if not same:
            kept.append(show_path(path) + " (changed since it was recorded)")
            continue
        deleted.append(show_path(path))
        if not dry_run:
            os.unlink(path)
    if not dry_run:
        async with d.store.write() as db:
            await db.execute("DELETE FROM job_io WHERE job = ?", (seq,))
            await db.execute("DELETE FROM labels WHERE target = ?", (f"job:{job_id}",))
            await db.execute("DELETE FROM jobs WHERE seq = ?", (seq,))
    return PopReply(job=row, removed=not dry_run, deleted=deleted, kept=kept)
