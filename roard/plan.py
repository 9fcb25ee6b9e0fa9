"""`roarctl reproduce`'s plan: which jobs remake a target, in what order, from which source,
inputs and environments, and what stands in the way. roard computes it; roarctl runs it.

Two halves. The lineage comes from a *source*, one function: `local_source` reads this
machine's store (one recursive query walks the producers, by the rule in roard.store.plan);
`registry_source` (a hash not in the local store: roarctl sends the registry's records in
`GetPlan.remote`) returns the same `Ancestry`, its producers chosen by the same rule in Python.
Everything after that, `make`'s `_Planner`, is the same for any source:
it decides what this machine must do, and checks what it can before anything runs:

- the base: the repository the target's job ran in (or its directory, outside git). Jobs that
  ran elsewhere are not re-run: what they made is a root input, used where it is.
- the order: the target's build steps (@B...) of their sessions first, then every job after
  the jobs that made its inputs.
- each root input (no planned job makes it) and where it comes from, by content hash only:
  the recorded commit, the reproduction directory, its own path (outside the repository), a
  copy of any file recorded with that content, or a file in an `--inputs` directory.
- each Python interpreter's exact package set (an index's `name==version`, or the URL it was
  installed from; packages installed from a local directory are left to a build step).
- secrets (redacted variables) the user must supply, and how this machine differs from the
  jobs' (system packages, conda environment, container, hardware).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import blake3
import msgspec

from roar import project
from roar.errors import NotFound
from roar.model import IO, Job, Package
from roar.protocol import (
    GetPlan,
    PlanInterpreter,
    PlanIO,
    PlanJob,
    PlanReply,
    RootInput,
    show_path,
    target_text,
)
from roar.redact import REDACTED
from roard import queries, sessions
from roard.capture import hardware, packages, system
from roard.hashcache import hash_cached
from roard.store import Store, records
from roard.store import bookkeeping as settings
from roard.store import plan as rows

TargetKind = Literal["artifact", "job", "session"]
MAX_SCAN = 200_000  # files looked at in --inputs directories


@dataclass
class Ancestry:
    """What a source knows of a target's lineage: every job needed (build steps included),
    which job made each input, and which outputs are the target."""

    target: str  # artifact hash, job id or "session N"
    kind: TargetKind
    label: str
    jobs: dict[str, Job]
    producer: dict[tuple[str, str], str] = field(default_factory=dict)  # (job, input) -> job
    wanted: list[tuple[str, IO]] = field(default_factory=list)  # (job id, output)
    registry: str | None = None  # where the lineage came from (None: this machine's store)
    problems: list[str] = field(default_factory=list)  # what the source found wrong


Source = Callable[[Store, GetPlan], Awaitable[Ancestry]]


async def make(store: Store, req: GetPlan, source: Source | None = None) -> PlanReply:
    """The plan for `req.target`, its lineage from `source` (default: the registry's records
    the request carries, else the local store)."""
    if source is None:
        source = registry_source if req.remote is not None else local_source
    ancestry = await source(store, req)
    return await _Planner(store, req, ancestry).plan()


# ---------------------------------------------------------------- the local source


async def local_source(store: Store, req: GetPlan) -> Ancestry:
    """The target's lineage from this machine's store."""
    kind, key, label, seqs, path = await _target(store, req)
    needed = await rows.ancestors(store, seqs)
    edges = await rows.producers(store, needed)
    sessions_of: dict[int, float] = {}
    jobs = await records.read_jobs(store, needed)
    for job in jobs.values():
        if job.session is not None:
            sessions_of[job.session] = max(sessions_of.get(job.session, 0.0), job.started)
    # each session's build steps: per step, the last build before its last planned job
    chosen: dict[tuple[int, int], int] = {}
    for seq, session, step, started in await rows.builds(store, list(sessions_of)):
        if seq not in jobs and started < sessions_of[session]:
            chosen[(session, step)] = seq
    jobs.update(await records.read_jobs(store, list(chosen.values())))
    ids = {seq: job.id for seq, job in jobs.items()}
    producer = {
        (ids[reader], show_path(p)): ids[made_by]
        for reader, p, made_by in edges
        if reader in ids and made_by in ids
    }
    wanted: list[tuple[str, IO]] = []
    for seq in seqs:
        job = jobs[seq]
        for out in job.outputs:
            if kind != "artifact" or out.hash == key:
                wanted.append((job.id, out))
    if kind == "artifact" and len(wanted) > 1:  # one file is the target: the one asked for
        at = [w for w in wanted if path is not None and os.fsencode(w[1].path) == path]
        wanted = at[:1] or wanted[:1]
    return Ancestry(
        target=key,
        kind=kind,
        label=label,
        jobs={job.id: job for job in jobs.values()},
        producer=producer,
        wanted=wanted,
    )


async def _target(
    store: Store, req: GetPlan
) -> tuple[TargetKind, str, str, list[int], bytes | None]:
    """(kind, key, label, the jobs that make it, the path it was named by)."""
    text = target_text(req.target).strip()
    if text.lower() == "session" or text.lower().startswith("session:"):
        if ":" in text:
            number = text.split(":", 1)[1]
            if not number.isdigit():
                raise NotFound(f"'{text}' names no session: write session:N, N a number")
            session = int(number)
        else:
            root = project.find_root(req.cwd)
            pid = await rows.project(store, root) if root is not None else None
            session = await sessions.current(store, pid)
        seqs = await rows.session_jobs(store, session)
        if not seqs:
            raise NotFound(f"session {session} has no jobs")
        return "session", f"session {session}", f"session {session}", seqs, None
    kind, key = await queries.resolve(store, text, req.cwd)
    if kind == "job":
        seq = await rows.job_seq(store, key)
        assert seq is not None
        job = (await records.read_jobs(store, [seq]))[seq]
        return "job", key, job.command, [seq], None
    path = os.path.realpath(os.path.join(req.cwd, os.fsencode(text)))
    named = None if key.startswith(text.lower()) else path
    seq = await rows.producer_of_artifact(store, key, named)
    if seq is None:
        raise NotFound(
            f"no recorded job produced {text} ({key[:12]}): there is nothing to reproduce",
            "`roarctl show` it to see where it was seen",
        )
    job = (await records.read_jobs(store, [seq]))[seq]
    label = next((o.path for o in job.outputs if o.hash == key), key)
    if named is not None:
        label = next((o.path for o in job.outputs if os.fsencode(o.path) == named), label)
    return "artifact", key, label, [seq], named


# ---------------------------------------------------------------- the registry as the source


async def registry_source(store: Store, req: GetPlan) -> Ancestry:
    """The target's lineage from the registry's records (`req.remote`): each job back in this
    machine's terms, then the producers, the target's job and the build steps chosen as
    `local_source` chooses them from the store."""
    assert req.remote is not None
    found = req.remote.ancestry
    digest = found.root
    home = os.path.expanduser("~")
    sessions_seen: dict[str, int] = {}
    jobs: dict[str, Job] = {}
    for e in sorted(found.jobs, key=lambda e: (e.job.started, e.id)):
        number = None
        if e.session is not None:
            number = sessions_seen.setdefault(e.session, len(sessions_seen) + 1)
        jobs[e.id] = _here(msgspec.structs.replace(e.job, id=e.id, session=number), home)
    kind: TargetKind = "job" if digest in jobs else "artifact"
    makers = [j for j in jobs.values() if any(o.hash == digest for o in j.outputs)]
    if kind == "job":
        makers = [jobs[digest]]
    if not makers:
        raise NotFound(
            f"the registry has no job that made {digest[:12]}: there is nothing to reproduce",
            "`roarctl show` it to see where it was seen",
        )
    # an artifact's producer: the earliest job that wrote it without reading it (else the
    # earliest)
    makers.sort(key=lambda j: (any(i.hash == digest for i in j.inputs), j.started, j.id))
    target = makers[0]
    producer = _producers(list(jobs.values()))
    made_for: dict[str, list[str]] = {}  # reader -> the jobs that made its inputs
    for (reader, _), made_by in producer.items():
        made_for.setdefault(reader, []).append(made_by)
    needed: set[str] = set()
    stack = [target.id]
    while stack:
        job_id = stack.pop()
        if job_id not in needed:
            needed.add(job_id)
            stack += made_for.get(job_id, [])
    last: dict[int, float] = {}
    for job_id in needed:
        job = jobs[job_id]
        if job.session is not None:
            last[job.session] = max(last.get(job.session, 0.0), job.started)
    chosen: dict[tuple[int, int], Job] = {}  # per session and step, the last build before
    for job in jobs.values():
        if (
            job.kind == "build"
            and job.id not in needed
            and job.session in last
            and job.started < last[job.session]
            and job.step is not None
        ):
            chosen[(job.session, job.step)] = job  # (in start order: the last one stays)
    keep = needed | {j.id for j in chosen.values()}
    wanted = [(target.id, o) for o in target.outputs if kind == "job" or o.hash == digest]
    if kind == "artifact":
        wanted = wanted[:1]
    problems = []
    if found.truncated:
        problems.append(
            f"the registry's lineage of {digest[:12]} is longer than it sends at once "
            f"({len(found.jobs)} jobs): it cannot be planned whole"
        )
    label = target.command if kind == "job" else wanted[0][1].path if wanted else digest
    return Ancestry(
        target=digest,
        kind=kind,
        label=label,
        jobs={job_id: jobs[job_id] for job_id in jobs if job_id in keep},
        producer={k: m for k, m in producer.items() if k[0] in keep and m in keep},
        wanted=wanted,
        registry=req.remote.url,
        problems=problems,
    )


def _producers(jobs: list[Job]) -> dict[tuple[str, str], str]:
    """(reader, input path) -> the job that made it, by roard.store.plan's PRODUCER rule: of
    the other jobs that wrote that content and had ended when the reader started, one that
    wrote it at that path, the latest."""
    writers: dict[str, list[tuple[Job, str]]] = {}
    for job in jobs:
        for o in job.outputs:
            writers.setdefault(o.hash, []).append((job, o.path))
    found: dict[tuple[str, str], str] = {}
    for reader in jobs:
        for i in reader.inputs:
            candidates = [
                (w, p)
                for w, p in writers.get(i.hash, [])
                if w.id != reader.id and _end(w) <= reader.started
            ]
            at_path = [c for c in candidates if c[1] == i.path]
            if at_path or candidates:
                made_by = max(at_path or candidates, key=lambda c: (_end(c[0]), c[0].started))
                found[(reader.id, i.path)] = made_by[0].id
    return found


def _end(job: Job) -> float:
    return job.ended if job.ended is not None else job.started


def _here(job: Job, home: str) -> Job:
    """A registry record (paths relative to its git root, `~` for $HOME) in this machine's
    terms: absolute paths, the git root as recorded (with `~` as this user's home)."""

    def tilde(path: str) -> str:
        return home + path[1:] if path == "~" or path.startswith("~/") else path

    ctx = job.context
    git = ctx.git
    root = tilde(git.root) if git is not None else None

    def place(path: str) -> str:
        path = tilde(path)
        if os.path.isabs(path):
            return path
        return os.path.normpath(os.path.join(root or "/", path))

    if git is not None and root is not None:
        git = msgspec.structs.replace(git, root=root)
    conda = ctx.conda
    if conda is not None:
        conda = msgspec.structs.replace(conda, prefix=tilde(conda.prefix))
    context = msgspec.structs.replace(
        ctx, git=git, conda=conda, packages={tilde(k): v for k, v in ctx.packages.items()}
    )
    return msgspec.structs.replace(
        job,
        cwd=place(job.cwd),
        project=None,
        inputs=[msgspec.structs.replace(io, path=place(io.path)) for io in job.inputs],
        outputs=[msgspec.structs.replace(io, path=place(io.path)) for io in job.outputs],
        context=context,
    )


# ---------------------------------------------------------------- the planner


def _under(path: bytes, base: bytes) -> bool:
    return path == base or path.startswith(base.rstrip(b"/") + b"/")


def _rel(path: bytes, base: bytes) -> str:
    """A path relative to the base ("." for the base itself), or as it is outside it."""
    if path == base:
        return "."
    if _under(path, base):
        return show_path(path[len(base.rstrip(b"/")) + 1 :])
    return show_path(path)


class _Planner:
    def __init__(self, store: Store, req: GetPlan, a: Ancestry) -> None:
        self.store = store
        self.req = req
        self.a = a
        self.problems: list[str] = list(a.problems)
        self.notes: list[str] = []
        first = a.jobs[a.wanted[0][0]] if a.wanted else next(iter(a.jobs.values()))
        self.target_job = first
        git = first.context.git
        self.git_root = os.fsencode(git.root) if git is not None else None
        self.base = self.git_root or os.fsencode(first.cwd)
        key = a.target[:12] if a.kind != "session" else a.target.replace(" ", "-")
        self.into = req.into or os.path.join(req.cwd, f"reproduce-{key}".encode())
        self.ref = {j.id: _ref(j) for j in a.jobs.values()}
        self.envs: dict[str, int] = {}  # recorded environments, each once (by their encoding)
        self.env_list: list[dict[str, str]] = []

    async def plan(self) -> PlanReply:
        order = self._order()
        planned = {j.id for j in order}
        built = any(j.kind == "build" for j in order)
        jobs = [self._job(j, planned) for j in order]
        roots = await self._roots(order, planned)
        interpreters = await self._interpreters(order, jobs, built)
        machine = await anyio.to_thread.run_sync(self._differences, order, jobs)
        from_project = await self._secrets(jobs)
        checkout, repository = await anyio.to_thread.run_sync(self._checkout, order)
        if _under(self.into, self.base) and self.git_root is not None:
            self.notes.append(
                f"{show_path(self.into)} is inside {show_path(self.base)}: git status there "
                "shows it as untracked (--into puts it elsewhere)"
            )
        wanted = [self._io(io, job_id) for job_id, io in self.a.wanted if job_id in planned]
        label = wanted[0].path if self.a.kind == "artifact" and wanted else self.a.label
        proj = self.target_job.project
        return PlanReply(
            target=self.a.target,
            kind=self.a.kind,
            label=label,
            into=show_path(self.into),
            into_raw=self.into,
            base=show_path(self.base),
            base_raw=self.base,
            checkout=checkout,
            repository=repository,
            project=proj,
            project_raw=os.fsencode(proj) if proj else None,
            jobs=jobs,
            envs=self.env_list,
            interpreters=interpreters,
            roots=roots,
            wanted=wanted,
            problems=self.problems,
            notes=self.notes,
            from_project=from_project,
            machine=machine,
            registry=self.a.registry,
        )

    # ------------------------------------------------------------ which jobs, in what order

    def _inside(self, job: Job) -> bool:
        return _under(os.fsencode(job.cwd), self.base)

    def _order(self) -> list[Job]:
        """The jobs to run: build steps first (by session, step), then every job after the jobs
        that made its inputs (ties: the order they first ran in). Jobs outside the base are
        left out: what they made is used where it is."""
        jobs = self.a.jobs
        needed: set[str] = set()
        stack = [job_id for job_id, _ in self.a.wanted]
        while stack:
            job_id = stack.pop()
            if job_id in needed:
                continue
            needed.add(job_id)
            for i in jobs[job_id].inputs:
                made_by = self.a.producer.get((job_id, i.path))
                if made_by is not None and self._inside(jobs[made_by]):
                    stack.append(made_by)
        builds = sorted(
            (j for j in jobs.values() if j.kind == "build" and j.id not in needed),
            key=lambda j: (j.session or 0, j.step or 0, j.started),
        )
        for b in builds:
            if not self._inside(b):
                self.notes.append(
                    f"build step {self.ref[b.id] or b.id} ran in {b.cwd}, outside "
                    f"{show_path(self.base)}: not run"
                )
        builds = [b for b in builds if self._inside(b)]
        after: dict[str, list[str]] = {j: [] for j in needed}
        waiting = dict.fromkeys(needed, 0)
        for job_id in needed:
            for i in jobs[job_id].inputs:
                made_by = self.a.producer.get((job_id, i.path))
                if made_by in needed and made_by != job_id and job_id not in after[made_by]:
                    after[made_by].append(job_id)
                    waiting[job_id] += 1
        ready = [(jobs[j].started, j) for j, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order: list[Job] = []
        while ready or len(order) < len(needed):
            if not ready:  # a cycle (clocks that went backwards): break it by start time
                left = min((jobs[j].started, j) for j, n in waiting.items() if n > 0)
                waiting[left[1]] = 0
                ready.append(left)
            _, job_id = heapq.heappop(ready)
            order.append(jobs[job_id])
            for nxt in after[job_id]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    heapq.heappush(ready, (jobs[nxt].started, nxt))
        return builds + order

    # ------------------------------------------------------------ each job

    def _io(self, io: IO, producer: str | None = None) -> PlanIO:
        raw = os.fsencode(io.path)
        return PlanIO(
            path=_rel(raw, self.base),
            hash=io.hash,
            size=io.size,
            raw=raw,
            inside=_under(raw, self.base),
            producer=producer,
            previous=io.previous,
        )

    def _job(self, job: Job, planned: set[str]) -> PlanJob:
        name = self.ref[job.id] or job.id
        inputs = []
        for i in job.inputs:
            made_by = self.a.producer.get((job.id, i.path))
            inputs.append(self._io(i, made_by if made_by in planned else None))
        outputs = [self._io(o) for o in job.outputs]
        for o in outputs:
            if not o.inside:
                self.problems.append(
                    f"{name} writes {o.path}, outside {show_path(self.base)}: reproducing it "
                    "would overwrite that file"
                )
        if any(REDACTED in a for a in job.argv):
            self.problems.append(
                f"{name}'s command held a secret that roar did not store: {job.command}"
            )
        secrets = sorted(k for k, v in job.context.env.items() if REDACTED in v)
        git = job.context.git
        if git is not None and self.git_root is not None and os.fsencode(git.root) != self.git_root:
            self.problems.append(f"{name} ran in another repository, {git.root}")
        if job.status not in ("complete", "recovered"):
            self.notes.append(f"{name} was recorded {job.status}: its record may be incomplete")
        return PlanJob(
            id=job.id,
            kind=job.kind,
            command=job.command,
            argv=job.argv,
            cwd=_rel(os.fsencode(job.cwd), self.base),
            started=job.started,
            ref=self.ref[job.id],
            session=job.session,
            commit=git.commit if git is not None else None,
            exit_code=job.exit_code,
            env=self._env(job.context.env),
            secrets=secrets,
            inputs=inputs,
            outputs=outputs,
        )

    def _env(self, env: dict[str, str]) -> int:
        key = "\0".join(f"{k}={v}" for k, v in env.items())
        if key not in self.envs:
            self.envs[key] = len(self.env_list)
            self.env_list.append(env)
        return self.envs[key]

    # ------------------------------------------------------------ root inputs

    async def _roots(self, order: list[Job], planned: set[str]) -> list[RootInput]:
        """Every input no planned job makes, and where it will come from (by hash only)."""
        found: dict[tuple[bytes, str], RootInput] = {}
        commit_of: dict[tuple[bytes, str], tuple[str | None, bool]] = {}
        for job in order:
            dirty = {
                os.path.join(self.git_root, os.fsencode(f.path))
                for f in (job.context.git.dirty if job.context.git else [])
                if self.git_root is not None
            }
            for i in job.inputs:
                made_by = self.a.producer.get((job.id, i.path))
                if made_by in planned:
                    continue
                raw = os.fsencode(i.path)
                key = (raw, i.hash)
                root = found.get(key)
                if root is None:
                    root = found[key] = RootInput(
                        path=_rel(raw, self.base),
                        hash=i.hash,
                        size=i.size,
                        source="missing",
                        raw=raw,
                        made_by=made_by,
                    )
                    commit = job.context.git.commit if job.context.git else None
                    commit_of[key] = (commit, raw in dirty)
                root.readers.append(job.id)
        roots = list(found.values())
        await self._locate(roots, commit_of)
        names = await rows.seen_at(self.store, sorted({r.hash for r in roots}))
        for r in roots:
            r.names = [show_path(p) for p in names.get(r.hash, [])] or [r.path]
            if r.source == "missing":
                who = ", ".join(self.ref[j] or j for j in r.readers)
                made = f", made by job {r.made_by} outside {show_path(self.base)}"
                uncommitted = " (uncommitted)" if commit_of[(r.raw, r.hash)][1] else ""
                self.problems.append(
                    f"root input {r.path}{uncommitted} ({r.hash[:12]}, {r.size} bytes, seen as "
                    f"{', '.join(r.names[:3])}{made if r.made_by else ''}) is nowhere on this "
                    f"machine; {who} read it: give a directory holding it with --inputs"
                )
            elif r.source == "copy" and not _under(r.raw, self.base):
                self.problems.append(
                    f"root input {r.path} ({r.hash[:12]}) is needed where it was read, outside "
                    f"{show_path(self.base)}: a copy is at {r.origin}; put it back there"
                )
        return sorted(roots, key=lambda r: r.path)

    async def _locate(
        self, roots: list[RootInput], commit_of: dict[tuple[bytes, str], tuple[str | None, bool]]
    ) -> None:
        # 1. the commit: the file at that path in the recorded commit has that content
        in_commit, checked = await anyio.to_thread.run_sync(self._committed, roots, commit_of)
        for r in roots:
            if (r.raw, r.hash) in in_commit:
                r.source = "commit"
        # 2. where it is needed: in the reproduction directory, or outside the base in place
        todo = [r for r in roots if r.source == "missing"]
        where = {
            r.raw: (
                os.path.join(self.into, os.path.relpath(r.raw, self.base))
                if _under(r.raw, self.base)
                else r.raw
            )
            for r in todo
        }
        hashed = await hash_cached(self.store, list(set(where.values())))
        for r in todo:
            if hashed.get(where[r.raw], ("",))[0] == r.hash:
                r.source = "present" if _under(r.raw, self.base) else "in-place"
        # 3. any file recorded with that content; 4. the --inputs directories
        todo = [r for r in roots if r.source == "missing"]
        if todo:
            seen = await rows.seen_at(self.store, sorted({r.hash for r in todo}))
            candidates = sorted({p for r in todo for p in seen.get(r.hash, [])})
            copies = await self._by_hash(candidates)
            if self.req.inputs and any(r.hash not in copies for r in todo):
                sizes = {r.size for r in todo if r.hash not in copies}
                files = await anyio.to_thread.run_sync(_scan, self.req.inputs, sizes)
                for digest, path in (await self._by_hash(files)).items():
                    copies.setdefault(digest, path)
            for r in todo:
                if r.hash in copies:
                    r.source = "copy"
                    r.origin_raw = copies[r.hash]
                    r.origin = show_path(copies[r.hash])
        # 5. without the local repository, what git did not list as changed is trusted to be
        # in the commit (the reproduction checks every input's hash before a job runs)
        if not checked and self.git_root is not None:
            for r in roots:
                uncommitted = commit_of[(r.raw, r.hash)][1]
                if r.source == "missing" and _under(r.raw, self.git_root) and not uncommitted:
                    r.source = "commit"

    async def _by_hash(self, paths: list[bytes]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for path, (digest, _) in (await hash_cached(self.store, paths)).items():
            found.setdefault(digest, path)
        return found

    def _committed(
        self, roots: list[RootInput], commit_of: dict[tuple[bytes, str], tuple[str | None, bool]]
    ) -> tuple[set[tuple[bytes, str]], bool]:
        """The roots whose content is the file at their path in their job's commit, read from
        the local repository; and whether it could be read."""
        if self.git_root is None:
            return set(), True
        inside = [r for r in roots if _under(r.raw, self.git_root)]
        try:
            import pygit2

            repo = pygit2.Repository(os.fsdecode(self.git_root))
        except Exception:
            return set(), False
        found = set()
        trees: dict[str, pygit2.Tree] = {}
        for r in inside:
            commit, _ = commit_of[(r.raw, r.hash)]
            if commit is None:
                continue
            try:
                if commit not in trees:
                    trees[commit] = repo.revparse_single(commit).peel(pygit2.Tree)
                rel = os.fsdecode(os.path.relpath(r.raw, self.git_root))
                blob = trees[commit][rel]
            except Exception:
                continue
            if not isinstance(blob, pygit2.Blob) or blob.size != r.size:
                continue
            if blake3.blake3(blob.data).hexdigest() == r.hash:
                found.add((r.raw, r.hash))
        return found, True

    # ------------------------------------------------------------ environments

    async def _interpreters(
        self, order: list[Job], jobs: list[PlanJob], built: bool
    ) -> list[PlanInterpreter]:
        """The environments to make (each once) and which jobs run which."""
        # (the packages of a script run through its #! line are keyed by the script: only
        # entries that name an interpreter are environments to make)
        paths = sorted({i for j in order for i in j.context.packages if packages.is_python(i)})
        origins = {}
        for interp in paths:
            origins[interp] = await anyio.to_thread.run_sync(packages.origins, interp)
        for interp in [i for i in paths if not os.path.exists(i)]:
            self.problems.append(
                f"the interpreter {interp} is not on this machine: its environment cannot be "
                "made (install that Python there, or reproduce where it is)"
            )
        # a build step installs into its interpreter's environment: every interpreter of that
        # environment (bin/python and bin/python3.11 alike) is the build's
        build_prefixes = {
            _prefix(i) for j in order if j.kind == "build" for i in j.context.packages
        }
        done: dict[tuple[str, int], tuple[list[str], list[str], list[str]]] = {}
        made: dict[tuple[str, tuple[str, ...], bool], int] = {}
        found: list[PlanInterpreter] = []
        unbuilt: dict[str, list[str]] = {}  # a package from a local directory -> its jobs
        for job, view in zip(order, jobs, strict=True):
            for interp, pkgs in job.context.packages.items():
                if not packages.is_python(interp):
                    continue
                key = (interp, id(pkgs))  # jobs with one package list share its decoded list
                if key not in done:
                    done[key] = _requirements(pkgs, origins.get(interp) or {}, built)
                reqs, provided, local = done[key]
                for what in local:
                    users = unbuilt.setdefault(what, [])
                    users.append(view.ref or view.id)
                build = _prefix(interp) in build_prefixes
                which = (interp, (*reqs, "--", *provided), build)
                if which not in made:
                    made[which] = len(found)
                    found.append(PlanInterpreter(interp, reqs, provided, build))
                view.interpreters.append(made[which])
        for what, users in unbuilt.items():
            who = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
            self.problems.append(
                f"{who} used {what} (not from an index), and no build step installs it: "
                "record the install as one (`roarctl build pip install -e .`)"
            )
        return found

    def _differences(self, order: list[Job], jobs: list[PlanJob]) -> list[str]:
        """Name each way this machine differs from the jobs' record: per job (system packages,
        conda environment) and shared (container, hardware)."""
        machine: list[str] = []
        here_hw = hardware.hardware()
        here_ct = system.this_container()
        for job, view in zip(order, jobs, strict=True):
            ctx = job.context
            if ctx.system is not None:
                names = [p.name for p in ctx.system.packages]
                now = system.installed(names, ctx.system.manager)
                for p in ctx.system.packages:
                    if now.get(p.name) != p.version:
                        have = now.get(p.name)
                        view.differs.append(
                            f"{ctx.system.manager} {p.name} {p.version}: "
                            + (f"{have} here" if have else "not installed here")
                        )
            if ctx.conda is not None:
                view.differs += _conda_differences(ctx.conda.prefix, ctx.conda.packages)
            if ctx.container != here_ct:
                was = _container(ctx.container)
                line = f"container: {was} when recorded, {_container(here_ct)} here"
                if line not in machine:
                    machine.append(line)
            hw = ctx.hardware
            if hw is not None:
                for what, a, b in (
                    ("host", hw.hostname, here_hw.hostname),
                    ("os", hw.os, here_hw.os),
                    ("cpu", f"{hw.cpu} x{hw.cpus}", f"{here_hw.cpu} x{here_hw.cpus}"),
                    ("memory", hw.memory_bytes, here_hw.memory_bytes),
                    ("gpus", "; ".join(hw.gpus) or "none", "; ".join(here_hw.gpus) or "none"),
                ):
                    line = f"{what}: {a} when recorded, {b} here"
                    if a != b and line not in machine:
                        machine.append(line)
        return machine

    # ------------------------------------------------------------ secrets and the source

    async def _secrets(self, jobs: list[PlanJob]) -> list[str]:
        """Redacted variables: the caller's environment or the project's `roarctl env` must
        supply each; those neither has are problems. Returns those the project supplies."""
        have = set(self.req.env)
        root = self.target_job.project
        pid = await rows.project(self.store, os.fsencode(root)) if root else None
        project_env = set(await settings.env(self.store, pid)) if pid is not None else set()
        missing: dict[str, list[str]] = {}
        for view in jobs:
            for name in view.secrets:
                if name not in have and name not in project_env:
                    missing.setdefault(name, []).append(view.ref or view.id)
        for name, who in missing.items():
            self.problems.append(
                f"{name} is a secret (its value was redacted when {', '.join(who)} ran): set "
                f"it in your environment, or with `roarctl env set {name} ...` in "
                f"{root or 'the project'}"
            )
        return sorted(project_env & {n for v in jobs for n in v.secrets} - have)

    def _checkout(self, order: list[Job]) -> tuple[Literal["local", "remote", "none"], str | None]:
        commits = sorted(
            {j.context.git.commit for j in order if j.context.git and j.context.git.commit}
        )
        if self.git_root is None or not commits:
            if self.git_root is not None:
                self.notes.append(f"{show_path(self.git_root)} had no commit: no checkout")
            return "none", None
        try:
            import pygit2

            repo = pygit2.Repository(os.fsdecode(self.git_root))
            if all(repo.get(c) is not None for c in commits):
                return "local", show_path(self.git_root)
        except Exception:
            pass
        remotes = {}
        for job in order:
            if job.context.git is not None:
                remotes.update(job.context.git.remotes)
        url = remotes.get("origin") or next(iter(remotes.values()), None)
        if url is None:
            self.problems.append(
                f"commit {commits[0][:12]} is in neither {show_path(self.git_root)} nor a "
                "recorded remote: the source cannot be checked out"
            )
            return "none", None
        if os.path.isdir(self.git_root):
            self.notes.append(
                f"{show_path(self.git_root)} does not have commit "
                f"{', '.join(c[:12] for c in commits)}: cloning {url}"
            )
        else:  # (a record from the registry: the repository was on another machine)
            self.notes.append(f"{show_path(self.git_root)} is not on this machine: cloning {url}")
        return "remote", url


def _prefix(interpreter: str) -> str:
    """The environment an interpreter belongs to: X for X/bin/python (a venv, conda env or
    installation prefix)."""
    parent = os.path.dirname(interpreter)
    return os.path.dirname(parent) if os.path.basename(parent) == "bin" else parent


def _ref(job: Job) -> str | None:
    if job.step is None:
        return None
    return f"@B{job.step}" if job.kind == "build" else f"@{job.step}"


def _requirements(
    pkgs: list[Package], origins: dict[str, dict[str, object]], built: bool
) -> tuple[list[str], list[str], list[str]]:
    """What to install for a package list: (requirements, packages left to the plan's build
    steps, packages installed from a local directory that no build step installs)."""
    reqs, provided, local = [], [], []
    for p in pkgs:
        req, directory = _requirement(p, origins.get(packages.normalize(p.name)))
        if directory is None:
            reqs.append(req)
        elif built:
            provided.append(p.name)
        else:
            local.append(f"{p.name} {p.version}, installed from the directory {directory}")
    return reqs, provided, local


def _requirement(p: Package, origin: dict[str, object] | None) -> tuple[str, str | None]:
    """(what to install, None) or (_, the local directory it was installed from)."""
    if origin is None:
        return f"{p.name}=={p.version}", None
    url = str(origin.get("url", ""))
    if "dir_info" in origin:
        return "", url.removeprefix("file://")
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
        return f"{p.name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}", None
    return f"{p.name} @ {url}", None


def _conda_differences(prefix: str, recorded: list[Package]) -> list[str]:
    meta = os.path.join(prefix, "conda-meta")
    try:
        stamp = os.stat(meta).st_mtime_ns
    except OSError:
        return [f"conda environment {prefix}: not on this machine"]
    now = {p.name: p.version for p in system.conda_packages(meta, stamp)}
    return [
        f"conda {p.name} {p.version}: " + (f"{now[p.name]} here" if p.name in now else "missing")
        for p in recorded
        if now.get(p.name) != p.version
    ]


def _container(c: object) -> str:
    if c is None:
        return "no container"
    runtime, image = getattr(c, "runtime", "?"), getattr(c, "image", None)
    return f"{runtime} container" + (f" of {image}" if image else "")


def _scan(dirs: list[bytes], sizes: set[int]) -> list[bytes]:
    """Regular files under these directories whose size is one of `sizes` (only those can
    have a wanted content), skipping .git directories."""
    found: list[bytes] = []
    seen = 0
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != b".git"]
            for name in filenames:
                seen += 1
                if seen > MAX_SCAN:
                    return found
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if st.st_size in sizes and os.path.isfile(path):
                    found.append(path)
    return found
