"""Bookkeeping requests: project env vars (injected into runs, shown redacted), labels on jobs
and artifacts, and named collections of artifacts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from roar import redact
from roar.protocol import (
    CollectionOp,
    CollectionReply,
    EnvOp,
    EnvReply,
    IORecord,
    LabelOp,
    LabelReply,
    show_path,
)
from roard import queries

if TYPE_CHECKING:
    from roard.daemon import Daemon


async def project_of(d: Daemon, cwd: bytes) -> tuple[int | None, str | None]:
    """The project id and display root of cwd (None, None outside any project)."""
    from roar import project

    root = project.find_root(cwd)
    if root is None:
        return None, None
    return await d.store.project_id(root), show_path(root)


async def refresh_prerun(d: Daemon) -> None:
    """List the projects with env vars in the prerun file: their runs wait for roard."""
    rows = await d.store.rows(
        "SELECT DISTINCT p.root FROM project_env e JOIN projects p ON p.id = e.project_id"
    )
    if d.prerun is not None:
        await d.prerun.write([bytes(r[0]) for r in rows])


async def env(d: Daemon, req: EnvOp) -> EnvReply:
    project_id, root = await project_of(d, req.cwd)
    if project_id is None or root is None:
        raise queries.NotFound(
            "not inside a project",
            "cd into a git repository or run `roarctl init`: env variables belong to a project",
        )
    if req.op == "set":
        if not req.name or "=" in req.name:
            raise queries.NotFound(f"invalid variable name '{req.name}'")
        async with d.store.write() as db:
            await db.execute(
                "INSERT INTO project_env (project_id, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET value = excluded.value",
                (project_id, req.name, req.value),
            )
    elif req.op == "unset":
        async with d.store.write() as db:
            cur = await db.execute(
                "DELETE FROM project_env WHERE project_id = ? AND name = ?",
                (project_id, req.name),
            )
            if cur.rowcount == 0:
                raise queries.NotFound(f"{req.name} is not set in {root}")
    if req.op in ("set", "unset"):
        await refresh_prerun(d)  # runs in this project now wait for their env vars
    rows = await d.store.rows(
        "SELECT name, value FROM project_env WHERE project_id = ? ORDER BY name", (project_id,)
    )
    values = dict(rows)
    if req.op == "get":
        if req.name not in values:
            raise queries.NotFound(
                f"{req.name} is not set in {root}", "`roarctl env list` shows what is set"
            )
        return EnvReply(project=root, values={req.name: values[req.name]})
    return EnvReply(project=root, values={k: redact.REDACTED for k in values})


async def _target(d: Daemon, target: str, cwd: bytes) -> str:
    kind, key = await queries.resolve(d, target, cwd)
    return f"{kind}:{key}"


async def labels(d: Daemon, req: LabelOp) -> LabelReply:
    target = await _target(d, req.target, req.cwd)
    if req.op == "set":
        async with d.store.write() as db:
            await db.executemany(
                "INSERT INTO labels (target, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET value = excluded.value",
                [(target, k, v) for k, v in req.pairs.items()],
            )
    elif req.op == "rm":
        async with d.store.write() as db:
            await db.executemany(
                "DELETE FROM labels WHERE target = ? AND key = ?", [(target, k) for k in req.pairs]
            )
    rows = await d.store.rows(
        "SELECT key, value FROM labels WHERE target = ? ORDER BY key", (target,)
    )
    return LabelReply(target=target, labels=dict(rows))


async def collections(d: Daemon, req: CollectionOp) -> CollectionReply:
    if req.op == "add":
        if not req.name:
            raise queries.NotFound("a collection needs a name")
        for target in req.targets:
            kind, key = await queries.resolve(d, target, req.cwd)
            if kind != "artifact":
                raise queries.NotFound(
                    f"'{target}' is a job, not an artifact",
                    "collections hold artifacts: give files or hashes",
                )
            path = os.path.realpath(os.path.join(req.cwd, os.fsencode(target)))
            async with d.store.write() as db:
                await db.execute(
                    "INSERT INTO collections (name, artifact, path) SELECT ?, id, ?"
                    " FROM artifacts WHERE hash = ? ON CONFLICT DO NOTHING",
                    (req.name, path if os.path.exists(path) else None, key),
                )
    where, params = ("WHERE c.name = ?", [req.name]) if req.name else ("", [])
    rows = await d.store.rows(
        "SELECT c.name, c.path, a.hash, a.size FROM collections c JOIN artifacts a"
        f" ON a.id = c.artifact {where} ORDER BY c.name, c.path",
        params,
    )
    if req.name and not rows and req.op != "add":
        raise queries.NotFound(f"no collection '{req.name}'")
    out: dict[str, list[IORecord]] = {}
    for name, path, digest, size in rows:
        out.setdefault(name, []).append(
            IORecord(path=show_path(path or b""), hash=digest, size=size)
        )
    return CollectionReply(collections=out)
