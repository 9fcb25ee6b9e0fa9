"""Read-side views of the store: what `show`, `log` and `status` return."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import msgspec

from roar import project
from roar.model import FilteredSummary, GitState, Hardware, Package, Process, TrackerRun
from roar.protocol import (
    ArtifactDetail,
    IORecord,
    JobDetail,
    JobRef,
    JobRow,
    show_path,
)
from roard import sessions

if TYPE_CHECKING:
    from roard.daemon import Daemon

_HEX = re.compile(r"^[0-9a-f]{4,64}$")
ROW_SELECT = (
    "SELECT j.id, j.command, p.root, j.status, j.started, j.ended, j.exit_code, j.signal,"
    " j.n_inputs, j.n_outputs, j.step, j.session_id, j.kind,"
    " EXISTS (SELECT 1 FROM jobs n WHERE n.session_id = j.session_id AND n.kind = j.kind"
    "   AND n.step = j.step AND n.started > j.started), j.seq"
    " FROM jobs j LEFT JOIN projects p ON p.id = j.project_id"
)


class NotFound(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Ambiguous(NotFound):
    pass


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
        step=sessions.ref(r[12], r[10]),
        session=r[11],
        kind=r[12],
        superseded=bool(r[13]),
    )


def _unpack(body: bytes | None, typ: Any, default: Any = None) -> Any:
    if body is None:
        return default
    return msgspec.msgpack.decode(body, type=typ)


async def job_row(d: Daemon, job_id: str) -> JobRow | None:
    rows = await d.store.rows(ROW_SELECT + " WHERE j.id = ?", (job_id,))
    return row_of(rows[0]) if rows else None


async def log(d: Daemon, cwd: bytes, limit: int, all_projects: bool) -> list[JobRow]:
    root = None if all_projects else project.find_root(cwd)
    if root is None:
        rows = await d.store.rows(ROW_SELECT + " ORDER BY j.started DESC LIMIT ?", (limit,))
    else:
        rows = await d.store.rows(
            ROW_SELECT + " WHERE p.root = ? ORDER BY j.started DESC LIMIT ?", (root, limit)
        )
    return await mark_stale(d, [row_of(r) for r in rows])


async def mark_stale(d: Daemon, jobs: list[JobRow]) -> list[JobRow]:
    """Set `stale` on current jobs whose upstream re-ran with different outputs."""
    for session in {j.session for j in jobs if j.session is not None}:
        stale = {s.job.id for s in (await sessions.graph(d, session)).steps if s.stale_reason}
        for j in jobs:
            j.stale = j.id in stale
    return jobs


_LAST_AT_PATH = (
    "SELECT a.hash FROM paths p JOIN job_io io ON io.path = p.id JOIN jobs j ON j.seq = io.job"
    " JOIN artifacts a ON a.id = io.artifact WHERE p.path = ? ORDER BY j.started DESC LIMIT 1"
)


def _prefix_range(prefix: str) -> tuple[str, str]:
    return prefix, prefix + "\uffff"


async def resolve(d: Daemon, target: str, cwd: bytes) -> tuple[str, str]:
    """('job', id) or ('artifact', hash) for a job id, hash, unique prefix of either, or a path."""
    t = target.strip().lower()
    if t.startswith("@"):
        root = project.find_root(cwd)
        project_id = await d.store.project_id(root) if root is not None else None
        session = await sessions.current(d, project_id)
        try:
            return "job", await sessions.resolve_step(d, session, t)
        except sessions.StepNotFound as exc:
            raise NotFound(str(exc), "`roarctl dag` lists the session's steps") from None
    if _HEX.match(t):
        lo, hi = _prefix_range(t)
        jobs = await d.store.rows("SELECT id FROM jobs WHERE id >= ? AND id < ? LIMIT 5", (lo, hi))
        arts = await d.store.rows(
            "SELECT hash FROM artifacts WHERE hash >= ? AND hash < ? LIMIT 5", (lo, hi)
        )
        found = [("job", r[0]) for r in jobs] + [("artifact", r[0]) for r in arts]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(f"{kind} {value[:16]}" for kind, value in found)
            raise Ambiguous(
                f"'{target}' matches more than one record: {names}",
                "give more characters of the id or hash",
            )
    path = os.path.realpath(os.path.join(cwd, os.fsencode(target)))
    if os.path.isfile(path):
        from roard.jobs import hash_files

        hashed = await hash_files(d, [path], None)
        if path in hashed:
            digest = hashed[path][0]
            if await d.store.scalar("SELECT 1 FROM artifacts WHERE hash = ?", (digest,)):
                return "artifact", digest
            recorded = await d.store.scalar(_LAST_AT_PATH, (path,))
            hint = (
                "the file was changed outside roar since it was recorded; "
                f"the recorded content is {recorded[:12]}"
                if recorded
                else "roar has not seen this content; run the command that makes it under "
                "`roarctl run`"
            )
            raise NotFound(f"no record of the current content of {show_path(path)}", hint)
    elif os.path.exists(path):
        raise NotFound(f"{show_path(path)} is not a regular file")
    recorded = await d.store.scalar(_LAST_AT_PATH, (path,))
    if recorded:
        return "artifact", recorded
    raise NotFound(
        f"nothing matches '{target}': not a job id, an artifact hash or a recorded path",
        "`roarctl log` lists jobs; `roarctl show <job>` lists a job's files and their hashes",
    )


async def job_detail(d: Daemon, job_id: str, verbose: bool) -> JobDetail:
    rows = await d.store.rows(
        "SELECT cwd, argv, git, env_blob, hardware_blob, packages, processes, blind_spots,"
        " filtered, trackers, external FROM jobs WHERE id = ?",
        (job_id,),
    )
    row = await job_row(d, job_id)
    if not rows or row is None:
        raise NotFound(f"no job {job_id}")
    await mark_stale(d, [row])
    cwd, argv, git, env_blob, hw_blob, pkgs, procs, blind, filtered, runs, external = rows[0]
    io = await d.store.rows(
        "SELECT io.role, p.path, a.hash, a.size, io.previous,"
        # for an input: the latest other job, started no later than this one, that wrote it
        " CASE io.role WHEN 0 THEN (SELECT pj.id FROM job_io o JOIN jobs pj ON pj.seq = o.job"
        "   WHERE o.artifact = io.artifact AND o.role = 1 AND o.job != io.job"
        "   AND pj.started <= j.started ORDER BY pj.started DESC LIMIT 1) END"
        " FROM jobs j JOIN job_io io ON io.job = j.seq JOIN paths p ON p.id = io.path"
        " JOIN artifacts a ON a.id = io.artifact WHERE j.id = ? ORDER BY p.path",
        (job_id,),
    )
    inputs, outputs = [], []
    for role, path, digest, size, previous, producer in io:
        if role == 0:
            inputs.append(IORecord(path=show_path(path), hash=digest, size=size, producer=producer))
        else:
            outputs.append(
                IORecord(path=show_path(path), hash=digest, size=size, previous=previous or None)
            )
    packages: dict[str, list[Package]] = {}
    for interp, blob in (_unpack(pkgs, dict[str, str], {}) or {}).items():
        packages[interp] = await _blob(d, blob, list[Package], [])
    summary = _unpack(filtered, FilteredSummary, FilteredSummary())
    if not verbose:
        summary = msgspec.structs.replace(summary, paths=[])
    return JobDetail(
        job=row,
        cwd=show_path(cwd),
        argv=_unpack(argv, list[str], []),
        inputs=inputs,
        outputs=outputs,
        git=_unpack(git, GitState),
        env=await _blob(d, env_blob, dict[str, str], {}),
        packages=packages,
        hardware=await _blob(d, hw_blob, Hardware, None),
        processes=_unpack(procs, list[Process], []),
        blind_spots=_unpack(blind, list[str], []),
        filtered=summary,
        trackers=_unpack(runs, list[TrackerRun], []),
        external=_unpack(external, list[str], []),
    )


async def _blob(d: Daemon, digest: str | None, typ: Any, default: Any) -> Any:
    if digest is None:
        return default
    body = await d.store.scalar("SELECT body FROM blobs WHERE hash = ?", (digest,))
    return _unpack(body, typ, default)


async def artifact_detail(d: Daemon, digest: str) -> ArtifactDetail:
    found = await d.store.rows("SELECT id, size FROM artifacts WHERE hash = ?", (digest,))
    if not found:
        raise NotFound(f"no artifact {digest}")
    artifact_id, size = found[0]
    rows = await d.store.rows(
        "SELECT io.role, p.path, j.id, j.command, j.started FROM job_io io"
        " JOIN jobs j ON j.seq = io.job JOIN paths p ON p.id = io.path"
        " WHERE io.artifact = ? ORDER BY j.started",
        (artifact_id,),
    )
    produced: list[JobRef] = []
    read: list[JobRef] = []
    paths: list[str] = []
    for role, path, job_id, command, started in rows:
        ref = JobRef(id=job_id, command=command, started=started, path=show_path(path))
        (produced if role == 1 else read).append(ref)
        if ref.path not in paths:
            paths.append(ref.path)
    return ArtifactDetail(hash=digest, size=size, paths=paths, produced_by=produced, read_by=read)


async def counts(d: Daemon) -> tuple[int, int]:
    jobs = await d.store.scalar("SELECT count(*) FROM jobs")
    # Artifact rows are never deleted, so max(id) is their count without scanning an index.
    arts = await d.store.scalar("SELECT coalesce(max(id), 0) FROM artifacts")
    return int(jobs), int(arts)
