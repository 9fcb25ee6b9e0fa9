"""`roarctl diff A B`: what differs in the provenance of two jobs (or of the jobs that made two
artifacts): code, command, inputs (followed upstream to the first divergence), packages,
environment, machine, outcome."""

from __future__ import annotations

import os

from roar.errors import NotFound
from roar.protocol import DiffEntry, DiffReply, JobDetail
from roard import queries, sources
from roard.store import Store

MAX_UPSTREAM = 25


async def _job_of(store: Store, target: str, cwd: bytes) -> str:
    """A job, or the job that made an artifact (roard.sources: the one that wrote it at the path
    given, else its producer)."""
    kind, key, path = await queries.locate(store, target, cwd)
    if kind == "job":
        return key
    made = await sources.made_by(store, key, path)
    if made is None:
        raise NotFound(f"no recorded job produced {target}", "diff compares how things were made")
    return made


def _code(j: JobDetail) -> str | None:
    """The commit plus uncommitted changes to tracked files. Untracked files (often the
    outputs of earlier steps) are not code; those the job read are compared as its inputs."""
    g = j.git
    if g is None:
        return None
    dirty = ", ".join(
        f"{f.path}@{(f.hash or '-')[:12]}" for f in g.dirty if f.status != "untracked"
    )
    return f"{g.commit or '(no commit)'}" + (f" + uncommitted: {dirty}" if dirty else "")


def _rel(path: str, cwd: str) -> str:
    return os.path.relpath(path, cwd) if path.startswith(cwd.rstrip("/") + "/") else path


async def compare(store: Store, a: str, b: str, cwd: bytes) -> DiffReply:
    ja, jb = await _job_of(store, a, cwd), await _job_of(store, b, cwd)
    da = await queries.job_detail(store, ja, False)
    db = await queries.job_detail(store, jb, False)
    entries: list[DiffEntry] = []
    code_a, code_b = _code(da), _code(db)
    if code_a != code_b:
        entries.append(DiffEntry(field="code", a=code_a, b=code_b))
    if da.argv != db.argv:
        changed = [f"{x} -> {y}" for x, y in zip(da.argv, db.argv, strict=False) if x != y]
        if len(da.argv) != len(db.argv):
            changed.append(f"{len(da.argv)} vs {len(db.argv)} arguments")
        entries.append(
            DiffEntry(field="command", a=da.job.command, b=db.job.command, note="; ".join(changed))
        )
    entries += await _inputs(store, da, db, 0)
    entries += _packages(da, db)
    entries += _beyond_python(da, db)
    for key in sorted(set(da.env) | set(db.env)):
        if da.env.get(key) != db.env.get(key):
            entries.append(DiffEntry(field=f"env {key}", a=da.env.get(key), b=db.env.get(key)))
    hw_a, hw_b = _machine(da), _machine(db)
    if hw_a != hw_b:
        entries.append(DiffEntry(field="hardware", a=hw_a, b=hw_b))
    if (da.job.exit_code, da.job.signal) != (db.job.exit_code, db.job.signal):
        entries.append(
            DiffEntry(field="outcome", a=f"exit {da.job.exit_code}", b=f"exit {db.job.exit_code}")
        )
    return DiffReply(a=ja, b=jb, same=not entries, entries=entries)


async def _inputs(store: Store, da: JobDetail, db: JobDetail, depth: int) -> list[DiffEntry]:
    """Inputs that differ, by path relative to each job's cwd; for each, follow the producers
    upstream and name the first place the two histories diverge."""
    ins_a = {_rel(r.path, da.cwd): r for r in da.inputs}
    ins_b = {_rel(r.path, db.cwd): r for r in db.inputs}
    entries = []
    for path in sorted(set(ins_a) | set(ins_b)):
        ra, rb = ins_a.get(path), ins_b.get(path)
        if ra and rb and ra.hash == rb.hash:
            continue
        note = ""
        if ra and rb:
            note = await _divergence(store, ra.producer, rb.producer, path, depth)
        entries.append(
            DiffEntry(
                field=f"input {path}",
                a=ra.hash if ra else None,
                b=rb.hash if rb else None,
                note=note,
            )
        )
    return entries


async def _divergence(store: Store, pa: str | None, pb: str | None, path: str, depth: int) -> str:
    if pa is None or pb is None or depth >= MAX_UPSTREAM:
        return f"first divergence: {path} itself (no recorded job made it differently)"
    if pa == pb:
        return f"first divergence: {path} was changed after job {pa} wrote it"
    ja = await queries.job_detail(store, pa, False)
    jb = await queries.job_detail(store, pb, False)
    if ja.argv != jb.argv:
        return (
            f"first divergence: the command that made {path} ({ja.job.command} vs {jb.job.command})"
        )
    for e in await _inputs(store, ja, jb, depth + 1):  # the most upstream difference first
        if e.note:
            return e.note
        return (
            f"first divergence: {e.field.removeprefix('input ')}, an input of the jobs "
            f"that made {path}"
        )
    if _code(ja) != _code(jb):
        return f"first divergence: the code of the jobs that made {path} ({pa} vs {pb})"
    return f"first divergence: the jobs that made {path} ({pa} vs {pb}) read the same inputs"


def _machine(j: JobDetail) -> str | None:
    h = j.hardware
    if h is None:
        return None
    gpus = f", GPUs {'; '.join(h.gpus)}" if h.gpus else ""
    return f"{h.hostname}: {h.cpu} x{h.cpus}, {h.memory_bytes} B RAM{gpus}"


def _packages(da: JobDetail, db: JobDetail) -> list[DiffEntry]:
    pa = {p.name: p.version for pkgs in da.packages.values() for p in pkgs}
    pb = {p.name: p.version for pkgs in db.packages.values() for p in pkgs}
    return [
        DiffEntry(field=f"package {name}", a=pa.get(name), b=pb.get(name))
        for name in sorted(set(pa) | set(pb))
        if pa.get(name) != pb.get(name)
    ]


def _beyond_python(da: JobDetail, db: JobDetail) -> list[DiffEntry]:
    """System packages (by name), the conda environment and the container."""
    sa = {p.name: p.version for p in (da.system.packages if da.system else [])}
    sb = {p.name: p.version for p in (db.system.packages if db.system else [])}
    entries = [
        DiffEntry(field=f"system package {name}", a=sa.get(name), b=sb.get(name))
        for name in sorted(set(sa) | set(sb))
        if sa.get(name) != sb.get(name) and da.system is not None and db.system is not None
    ]
    ca = {p.name: p.version for p in (da.conda.packages if da.conda else [])}
    cb = {p.name: p.version for p in (db.conda.packages if db.conda else [])}
    where_a = da.conda.prefix if da.conda else None
    where_b = db.conda.prefix if db.conda else None
    if where_a != where_b:
        entries.append(DiffEntry(field="conda environment", a=where_a, b=where_b))
    entries += [
        DiffEntry(field=f"conda package {name}", a=ca.get(name), b=cb.get(name))
        for name in sorted(set(ca) | set(cb))
        if ca.get(name) != cb.get(name)
    ]
    if da.container != db.container:
        entries.append(DiffEntry(field="container", a=_container(da), b=_container(db)))
    return entries


def _container(j: JobDetail) -> str | None:
    c = j.container
    if c is None:
        return None
    return " ".join(x for x in (c.runtime, c.image, c.id) if x)
