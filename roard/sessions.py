"""Sessions and steps: the pipeline view of a project's jobs.

A session groups the jobs of one pipeline in a project (`roarctl reset` starts a new one). Each
job is a step of its session: `@N` for runs, `@BN` for builds (setup such as `pip install -e .`).
Running the same command again, or `roarctl run @N`, re-runs step N: the newest job of a step is
its current one and earlier ones are superseded. A step is stale when a step it read from re-ran
with different outputs (or is itself stale).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

import anyio

from roar.errors import Invalid, NotFound
from roar.hashing import hash_file
from roar.model import JobKind
from roar.protocol import DagReply, DagStep, IORecord, JobRow, PopReply, show_path
from roard.store import Store, Tx, jobs
from roard.store import sessions as rows

STEP_REF = re.compile(r"^@(B?)(\d+)$", re.IGNORECASE)
ref = jobs.step_ref


async def current(store: Store, project_id: int | None) -> int:
    """The project's current session (the newest), created on first use."""
    found = await rows.newest(store, project_id)
    if found is not None:
        return found
    async with store.write() as tx:  # checked again inside: a concurrent run may create it
        return await _current_in(tx, project_id)


async def _current_in(tx: Tx, project_id: int | None) -> int:
    found = await rows.newest(tx, project_id)
    return found if found is not None else await rows.create(tx, project_id)


async def new(store: Store, project_id: int | None) -> int:
    async with store.write() as tx:
        return await rows.create(tx, project_id)


async def place(
    tx: Tx, project_id: int | None, kind: JobKind, command: str, wanted: int | None
) -> tuple[int, int]:
    """Session and step for a new job, inside the transaction that inserts it (so concurrent
    runs never share a step or start separate sessions): the requested step, the step that last
    ran the same command, or the next free number."""
    session = await _current_in(tx, project_id)
    if wanted is not None:
        if not await rows.has_step(tx, session, kind, wanted):
            raise NotFound(f"this session has no step {ref(kind, wanted)}")
        return session, wanted
    same = await rows.step_of_command(tx, session, kind, command)
    if same is not None:
        return session, same
    return session, await rows.last_step(tx, session, kind) + 1


async def resolve_step(store: Store, session: int, text: str) -> str:
    """Job id of the current job of step `@N` / `@BN` in the session."""
    m = STEP_REF.match(text.strip())
    if not m:
        raise Invalid(
            f"'{text}' is not a step reference (@N or @BN)",
            "`roarctl dag` lists the session's steps",
        )
    kind: JobKind = "build" if m.group(1) else "run"
    job = await rows.current_job(store, session, kind, int(m.group(2)))
    if job is None:
        raise NotFound(
            f"the current session has no step {text.upper()}",
            "`roarctl dag` lists the session's steps",
        )
    return job


# ---------------------------------------------------------------- the session graph


@dataclass
class _Job:
    row: JobRow
    inputs: list[IORecord] = field(default_factory=list)
    outputs: list[IORecord] = field(default_factory=list)


async def graph(store: Store, session: int) -> DagReply:
    """Current job per step, in order, with dependencies, superseded jobs and staleness."""
    found: dict[int, _Job] = {}
    project = None
    for seq, row in await rows.jobs(store, session):
        project = row.project
        found[seq] = _Job(row=row)
    for seq, role, path, digest, size in await rows.files(store, session):
        rec = IORecord(path=show_path(path), hash=digest, size=size)
        (found[seq].outputs if role == 1 else found[seq].inputs).append(rec)

    by_step: dict[str, list[_Job]] = {}
    for j in found.values():  # in start order
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


# ---------------------------------------------------------------- pop


async def pop(
    store: Store, session: int, delete_outputs: bool, dry_run: bool, expected: str | None = None
) -> PopReply:
    """Remove the session's most recent job record; with delete_outputs, also its output files
    that no other job read and that still hold the recorded content."""
    job_id = await rows.newest_job(store, session)
    if job_id is None:
        raise NotFound("the current session has no jobs to pop")
    if expected is not None and job_id != expected:
        raise NotFound(
            f"job {expected} is no longer the session's newest ({job_id} ran since); "
            "nothing was removed: run pop again"
        )
    row = await jobs.job_row(store, job_id)
    assert row is not None
    deleted: list[str] = []
    kept: list[str] = []
    for path, digest, used in await rows.outputs_in_use(store, job_id):
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
        async with store.write() as tx:
            await jobs.delete(tx, job_id)
    return PopReply(job=row, removed=not dry_run, deleted=deleted, kept=kept)
