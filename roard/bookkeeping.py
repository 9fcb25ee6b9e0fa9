"""Bookkeeping requests: project env vars (injected into runs, shown redacted), labels on jobs
and artifacts, and named collections of artifacts."""

from __future__ import annotations

import os

from roar import project, redact
from roar.errors import Invalid, NotFound
from roar.protocol import (
    CollectionOp,
    CollectionReply,
    EnvOp,
    EnvReply,
    IORecord,
    LabelOp,
    LabelReply,
    show_path,
    target_text,
)
from roard import queries
from roard.prerun import PrerunFile
from roard.store import Store, jobs
from roard.store import bookkeeping as rows


async def project_of(store: Store, cwd: bytes) -> tuple[int | None, str | None]:
    """The project id and display root of cwd (None, None outside any project)."""
    root = project.find_root(cwd)
    if root is None:
        return None, None
    return await jobs.project_id(store, root), show_path(root)


async def refresh_prerun(store: Store, prerun: PrerunFile) -> None:
    """List the projects with env vars in the prerun file: their runs wait for roard."""
    await prerun.write(await rows.roots_with_env(store))


async def env(store: Store, req: EnvOp, prerun: PrerunFile) -> EnvReply:
    project_id, root = await project_of(store, req.cwd)
    if project_id is None or root is None:
        raise NotFound(
            "not inside a project",
            "cd into a git repository or run `roarctl init`: env variables belong to a project",
        )
    if req.op == "set":
        if not req.name or "=" in req.name:
            raise Invalid(f"invalid variable name '{req.name}'")
        async with store.write() as tx:
            await rows.set_env(tx, project_id, req.name, req.value)
    elif req.op == "unset":
        async with store.write() as tx:
            if not await rows.unset_env(tx, project_id, req.name):
                raise NotFound(f"{req.name} is not set in {root}")
    if req.op in ("set", "unset"):
        await refresh_prerun(store, prerun)  # runs in this project now wait for their env vars
    values = await rows.env(store, project_id)
    if req.op == "get":
        if req.name not in values:
            raise NotFound(
                f"{req.name} is not set in {root}", "`roarctl env list` shows what is set"
            )
        return EnvReply(project=root, values={req.name: values[req.name]})
    return EnvReply(project=root, values={k: redact.REDACTED for k in values})


async def _target(store: Store, target: str, cwd: bytes) -> str:
    kind, key = await queries.resolve(store, target, cwd)
    return f"{kind}:{key}"


async def labels(store: Store, req: LabelOp) -> LabelReply:
    target = await _target(store, target_text(req.target), req.cwd)
    if req.op == "set":
        async with store.write() as tx:
            await rows.set_labels(tx, target, req.pairs)
    elif req.op == "rm":
        async with store.write() as tx:
            await rows.remove_labels(tx, target, list(req.pairs))
    return LabelReply(target=target, labels=await rows.labels(store, target))


async def collections(store: Store, req: CollectionOp) -> CollectionReply:
    if req.op == "add":
        if not req.name:
            raise Invalid("a collection needs a name")
        for target in map(target_text, req.targets):
            kind, key = await queries.resolve(store, target, req.cwd)
            if kind != "artifact":
                raise Invalid(
                    f"'{target}' is a job, not an artifact",
                    "collections hold artifacts: give files or hashes",
                )
            path = os.path.realpath(os.path.join(req.cwd, os.fsencode(target)))
            async with store.write() as tx:
                await rows.collect(tx, req.name, key, path if os.path.exists(path) else None)
    found = await rows.collections(store, req.name or None)
    if req.name and not found and req.op != "add":
        raise NotFound(f"no collection '{req.name}'")
    out: dict[str, list[IORecord]] = {}
    for name, member, digest, size in found:
        out.setdefault(name, []).append(
            IORecord(path=show_path(member or b""), hash=digest, size=size)
        )
    return CollectionReply(collections=out)
