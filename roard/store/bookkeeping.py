"""Project env vars (injected into runs), labels on jobs and artifacts, named collections."""

from __future__ import annotations

from roard.store import Store, Tx

# ---------------------------------------------------------------- project env vars


async def env(store: Store, project_id: int | None) -> dict[str, str]:
    """The project's env vars by name (none outside a project)."""
    if project_id is None:
        return {}
    rows = await store.rows(
        "SELECT name, value FROM project_env WHERE project_id = ? ORDER BY name", (project_id,)
    )
    return dict(rows)


async def env_names_of_job(store: Store, job_id: str) -> set[str]:
    """The names of the env vars set (now) in the project of a job."""
    rows = await store.rows(
        "SELECT e.name FROM jobs j JOIN project_env e ON e.project_id = j.project_id"
        " WHERE j.id = ?",
        (job_id,),
    )
    return {r[0] for r in rows}


async def set_env(tx: Tx, project_id: int, name: str, value: str) -> None:
    await tx.execute(
        "INSERT INTO project_env (project_id, name, value) VALUES (?, ?, ?)"
        " ON CONFLICT DO UPDATE SET value = excluded.value",
        (project_id, name, value),
    )


async def unset_env(tx: Tx, project_id: int, name: str) -> bool:
    """Remove a variable; False if it was not set."""
    changed = await tx.execute(
        "DELETE FROM project_env WHERE project_id = ? AND name = ?", (project_id, name)
    )
    return changed > 0


async def roots_with_env(store: Store) -> list[bytes]:
    """The roots of the projects that have env vars (their runs wait for roard: roar.prerun)."""
    rows = await store.rows(
        "SELECT DISTINCT p.root FROM project_env e JOIN projects p ON p.id = e.project_id"
    )
    return [bytes(r[0]) for r in rows]


# ---------------------------------------------------------------- labels


async def set_labels(tx: Tx, target: str, pairs: dict[str, str]) -> None:
    await tx.executemany(
        "INSERT INTO labels (target, key, value) VALUES (?, ?, ?)"
        " ON CONFLICT DO UPDATE SET value = excluded.value",
        [(target, k, v) for k, v in pairs.items()],
    )


async def remove_labels(tx: Tx, target: str, keys: list[str]) -> None:
    await tx.executemany(
        "DELETE FROM labels WHERE target = ? AND key = ?", [(target, k) for k in keys]
    )


async def labels(store: Store, target: str) -> dict[str, str]:
    rows = await store.rows(
        "SELECT key, value FROM labels WHERE target = ? ORDER BY key", (target,)
    )
    return dict(rows)


# ---------------------------------------------------------------- collections


async def collect(tx: Tx, name: str, digest: str, path: bytes | None) -> None:
    """Add an artifact (by hash) to a collection, under the path it was named by."""
    await tx.execute(
        "INSERT INTO collections (name, artifact, path) SELECT ?, id, ?"
        " FROM artifacts WHERE hash = ? ON CONFLICT DO NOTHING",
        (name, path, digest),
    )


async def collections(store: Store, name: str | None) -> list[tuple[str, bytes | None, str, int]]:
    """(collection, path, hash, size) of one collection's artifacts, or of every collection's."""
    where, params = ("WHERE c.name = ?", [name]) if name else ("", [])
    return await store.rows(
        "SELECT c.name, c.path, a.hash, a.size FROM collections c JOIN artifacts a"
        f" ON a.id = c.artifact {where} ORDER BY c.name, c.path",
        params,
    )
