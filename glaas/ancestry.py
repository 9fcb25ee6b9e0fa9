"""An artifact's (or a job's) whole ancestry, as full job records, in one answer: what `roarctl
reproduce` plans from when the hash is not in the local store (`GET /api/v1/artifacts/{ref}/
ancestry`, `GET /api/v1/jobs/{ref}/ancestry`).

The walk goes up from the artifact one level at a time: the visible jobs that wrote a content,
then the contents they read, and so on. A job that wrote a content a reader read is kept only if
it had ended before that reader started (a later re-run or a later copy cannot have made what
was read), which is the time half of the producer rule; which of the kept writers made each
input is the client's to decide (roard.plan), with the same rule it applies to its own store.
The build steps of the kept jobs' sessions that started before the session's last kept job come
too. What the reader may not see is neither returned nor walked through. At most MAX_JOBS jobs
(then `truncated`): a reproduction needs the whole lineage, so a cut one is said to be cut."""

from __future__ import annotations

from glaas.store import Store
from roar.errors import NotFound
from roar.registry import Ancestry, JobEntry, Kind

MAX_JOBS = 1000  # job records in one answer
MAX_LEVELS = 1000  # jobs deep
OUTPUT = 1


def _end(e: JobEntry) -> float:
    return e.job.ended if e.job.ended is not None else e.job.started


async def ancestry(store: Store, kind: Kind, root: str, viewer: int) -> Ancestry:
    """Upstream of an artifact (the jobs that wrote it, and theirs), or of a job (the job
    itself, and the jobs that made its inputs)."""
    max_jobs = MAX_JOBS
    found: dict[str, JobEntry] = {}
    # each content to follow -> the latest start of a job that read it (None: the artifact
    # itself, which any job that wrote it may have made)
    frontier: dict[str, float | None] = {}
    if kind == "job":
        entries = await store.jobs([root], viewer)
        if not entries:
            raise NotFound(f"no job {root}")
        found[root] = entries[0]
        for i in entries[0].job.inputs:
            frontier[i.hash] = entries[0].job.started
    else:
        if await store.artifact(root, viewer) is None:
            raise NotFound(f"no artifact {root}")
        frontier[root] = None
    bound = dict(frontier)
    truncated = False
    for level in range(MAX_LEVELS + 1):  # (one more: is there a job deeper than the limit?)
        if not frontier or truncated:
            break
        limit = max_jobs * 4
        rows = await store.io_of_artifacts(sorted(frontier), OUTPUT, viewer, limit)
        truncated = len(rows) == limit
        wrote: dict[str, list[str]] = {}  # job -> the frontier's contents it wrote
        for job_id, h, _ in rows:
            wrote.setdefault(job_id, []).append(h)
        new = sorted(j for j in wrote if j not in found)
        following: dict[str, float | None] = {}
        for e in await store.jobs(new, viewer):
            end = _end(e)
            if not any((b := frontier[h]) is None or end <= b for h in wrote[e.id]):
                continue  # it wrote that content only after its readers had started
            if level == MAX_LEVELS or len(found) == max_jobs:
                truncated = True  # deeper, or more, than the limits
                break
            found[e.id] = e
            for i in e.job.inputs:
                was = bound.get(i.hash, -1.0)
                if was is not None and e.job.started > was:
                    bound[i.hash] = following[i.hash] = e.job.started
        frontier = following
    found.update({e.id: e for e in await _builds(store, list(found.values()), viewer)})
    if len(found) > max_jobs:
        truncated = True
    jobs = sorted(found.values(), key=lambda e: (e.job.started, e.id))
    return Ancestry(root=root, jobs=jobs[:max_jobs], truncated=truncated)


async def _builds(store: Store, jobs: list[JobEntry], viewer: int) -> list[JobEntry]:
    """The build steps of these jobs' sessions that started before the session's last job."""
    last: dict[str, float] = {}
    for e in jobs:
        if e.session is not None:
            last[e.session] = max(last.get(e.session, 0.0), e.job.started)
    have = {e.id for e in jobs}
    wanted: list[str] = []
    for session, until in sorted(last.items()):
        for s in await store.session_jobs(session, viewer):
            if s.kind == "build" and s.started < until and s.id not in have:
                wanted.append(s.id)
    return await store.jobs(wanted, viewer) if wanted else []
