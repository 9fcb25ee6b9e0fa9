"""What `show`, `log` and `status` return, and which record a target names."""

from __future__ import annotations

import os
import re

import msgspec

from roar import project
from roar.errors import Ambiguous, NotFound
from roar.protocol import ArtifactDetail, IORecord, JobDetail, JobRow, show_path
from roar.redact import REDACTED
from roard import sessions, sources
from roard.hashcache import hash_files
from roard.store import Store, jobs, records
from roard.store import bookkeeping as settings
from roard.store import queries as rows
from roard.store import sources as source_rows
from roard.store.queries import RecordKind

_HEX = re.compile(r"^[0-9a-f]{4,64}$")


async def log(store: Store, cwd: bytes, limit: int, all_projects: bool) -> list[JobRow]:
    root = None if all_projects else project.find_root(cwd)
    return await mark_stale(store, await rows.log(store, root, limit))


async def mark_stale(store: Store, found: list[JobRow]) -> list[JobRow]:
    """Set `stale` on current jobs whose upstream re-ran with different outputs."""
    for session in {j.session for j in found if j.session is not None}:
        stale = {s.job.id for s in (await sessions.graph(store, session)).steps if s.stale_reason}
        for j in found:
            j.stale = j.id in stale
    return found


async def resolve(store: Store, target: str, cwd: bytes) -> tuple[RecordKind, str]:
    """('job', id) or ('artifact', hash) for a job id, hash, unique prefix of either, a step of
    the current session, or a path."""
    kind, key, _ = await locate(store, target, cwd)
    return kind, key


async def locate(store: Store, target: str, cwd: bytes) -> tuple[RecordKind, str, bytes | None]:
    """As `resolve`, and the path when the target was one (where a content was written decides
    which job made it there: roard.sources)."""
    t = target.strip().lower()
    if t.startswith("@"):
        root = project.find_root(cwd)
        project_id = await jobs.project_id(store, root) if root is not None else None
        session = await sessions.current(store, project_id)
        return "job", await sessions.resolve_step(store, session, t), None
    if _HEX.match(t):
        found = await rows.with_prefix(store, t)
        if len(found) == 1:
            return (*found[0], None)
        if len(found) > 1:
            names = ", ".join(f"{kind} {value[:16]}" for kind, value in found)
            raise Ambiguous(
                f"'{target}' matches more than one record: {names}",
                "give more characters of the id or hash",
            )
    path = os.path.realpath(os.path.join(cwd, os.fsencode(target)))
    if os.path.isfile(path):
        hashed = await hash_files(store, [path], None)
        if path in hashed:
            digest = hashed[path][0]
            if await rows.artifact_exists(store, digest):
                return "artifact", digest, path
            recorded = await rows.last_at_path(store, path)
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
    recorded = await rows.last_at_path(store, path)
    if recorded:
        return "artifact", recorded, path
    raise NotFound(
        f"nothing matches '{target}': not a job id, an artifact hash or a recorded path",
        "`roarctl log` lists jobs; `roarctl show <job>` lists a job's files and their hashes",
    )


async def job_detail(store: Store, job_id: str, verbose: bool) -> JobDetail:
    found = await records.context(store, job_id)
    row = await jobs.job_row(store, job_id)
    if found is None or row is None:
        raise NotFound(f"no job {job_id}")
    await mark_stale(store, [row])
    cwd, argv, ctx = found
    seq = await rows.seq_of(store, job_id)
    links = await sources.inputs(store, [seq])
    names = await source_rows.names(store, sorted({k.source for k in links if k.source}))
    inputs = [
        IORecord(
            path=show_path(k.path),
            hash=k.hash,
            size=k.size,
            producer=names[k.source][0] if k.source else None,
        )
        for k in links
    ]
    outputs = await rows.job_outputs(store, seq)
    # `env set` values are secret: also in records stored before the variable was set
    declared = await settings.env_names_of_job(store, job_id)
    env = {k: REDACTED if k in declared and v else v for k, v in ctx.env.items()}
    summary = ctx.filtered
    if not verbose:
        summary = msgspec.structs.replace(summary, paths=[])
    return JobDetail(
        job=row,
        cwd=show_path(cwd),
        argv=argv,
        inputs=inputs,
        outputs=outputs,
        git=ctx.git,
        env=env,
        packages=ctx.packages,
        hardware=ctx.hardware,
        processes=ctx.processes,
        blind_spots=ctx.blind_spots,
        filtered=summary,
        trackers=ctx.trackers,
        external=ctx.external,
        system=ctx.system,
        conda=ctx.conda,
        container=ctx.container,
        request=await jobs.request_of(store, job_id),
        usage=await jobs.usage(store, job_id),
    )


async def artifact_detail(store: Store, digest: str) -> ArtifactDetail:
    """An artifact; of the jobs that wrote it, the producer (roard.sources: the earliest that
    did not read it) and the copies."""
    found = await rows.artifact_detail(store, digest)
    if found is None:
        raise NotFound(f"no artifact {digest}")
    detail, copies = found
    maker = next((r.id for r in detail.produced_by if r.id not in copies), None)
    detail.copies = [r for r in detail.produced_by if r.id != maker]
    detail.produced_by = [r for r in detail.produced_by if r.id == maker]
    return detail
