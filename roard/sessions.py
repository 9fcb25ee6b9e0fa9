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
from roard import sources
from roard.store import Store, Tx, jobs
from roard.store import sessions as rows

STEP_REF = re.compile(r"^@(B?)(\d+)$", re.IGNORECASE)
MAX_STEP = 1_000_000  # as roar.protocol's Step
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
    number = int(m.group(2))  # beyond MAX_STEP (and SQLite's integers): no such step
    job = await rows.current_job(store, session, kind, number) if number <= MAX_STEP else None
    if job is None:
        raise NotFound(
            f"the current session has no step {text.upper()}",
            "`roarctl dag` lists the session's steps",
        )
    return job


# ---------------------------------------------------------------- the session graph


@dataclass
class _Job:
    seq: int
    row: JobRow
    inputs: list[IORecord] = field(default_factory=list)
    outputs: list[IORecord] = field(default_factory=list)


async def graph(store: Store, session: int) -> DagReply:
    """Current job per step, in order, with dependencies, superseded jobs and staleness.

    A step depends on the steps whose jobs its current job's inputs came from (roard.sources:
    always jobs that started before it, superseded ones included). It is stale when such a
    job's step re-ran since and its current job wrote other bytes at the path that input was
    written at, or when a step it depends on is stale."""
    found: dict[int, _Job] = {}
    project = None
    for seq, row in await rows.jobs(store, session):
        project = row.project
        found[seq] = _Job(seq=seq, row=row)
    by_step: dict[str, list[_Job]] = {}
    for j in found.values():  # in start order
        if j.row.step is not None:
            by_step.setdefault(j.row.step, []).append(j)
    current = {step: js[-1] for step, js in by_step.items()}

    def order(step: str) -> tuple[bool, int]:  # builds first, then by number
        return not step.startswith("@B"), int(step.lstrip("@B"))

    links: dict[int, list[sources.Link]] = {}
    for link in await sources.inputs(store, [j.seq for j in current.values()]):
        links.setdefault(link.reader, []).append(link)
    # the files of the current jobs, and of the earlier jobs their inputs came from (staleness)
    wanted = [j.seq for j in current.values()]
    sourced = {k.source for ks in links.values() for k in ks if k.source is not None}
    wanted += sorted((sourced & set(found)) - set(wanted))
    for seq, role, path, digest, size in await rows.files(store, wanted):
        rec = IORecord(path=show_path(path), hash=digest, size=size)
        (found[seq].outputs if role == 1 else found[seq].inputs).append(rec)
    depends: dict[str, list[str]] = {}
    stale: dict[str, str] = {}
    for step, j in current.items():
        deps: set[str] = set()
        for link in links.get(j.seq, []):
            source = found.get(link.source) if link.source is not None else None
            up = source.row.step if source is not None else None
            if source is None or up is None or up == step:
                continue
            deps.add(up)
            if step not in stale and source is not current[up]:
                where = _written_at(source, link)
                now = next((o.hash for o in current[up].outputs if o.path == where), None)
                if now is not None and now != link.hash:
                    stale[step] = f"{up} re-ran and changed {where}"
        depends[step] = sorted(deps, key=order)
    changed = True
    while changed:  # staleness flows downstream, however the steps are numbered
        changed = False
        for step in sorted(current, key=order):
            up = next((s for s in depends[step] if s in stale), None)
            if step not in stale and up is not None:
                stale[step] = f"upstream {up} is stale"
                changed = True

    steps: list[DagStep] = []
    for step in sorted(current, key=order):
        row = current[step].row
        row.stale = step in stale
        steps.append(
            DagStep(
                ref=step,
                job=row,
                depends_on=depends[step],
                inputs=current[step].inputs,
                outputs=current[step].outputs,
                superseded=[x.row.id for x in by_step[step][:-1]],
                stale_reason=stale.get(step),
            )
        )
    return DagReply(session=session, project=project, steps=steps)


def _written_at(job: _Job, link: sources.Link) -> str:
    """Where `job` wrote the content `link` read: at the path it was read at, if it wrote it
    there, else the first path it wrote it at."""
    read_at = show_path(link.path)
    paths = [o.path for o in job.outputs if o.hash == link.hash]
    return read_at if read_at in paths or not paths else paths[0]


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
