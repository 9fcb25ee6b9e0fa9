"""The lineage walk's own queries (roard.lineage): its root, a level's outputs, sizes. Which job
each input links to is roard.store.sources."""

from __future__ import annotations

from roard.store import Store


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def artifact(store: Store, digest: str) -> tuple[int, bytes | None] | None:
    """An artifact's row id and the path it was last seen at."""
    rows = await store.rows(
        "SELECT a.id, (SELECT p.path FROM job_io io JOIN paths p ON p.id = io.path"
        "  JOIN jobs j ON j.seq = io.job WHERE io.artifact = a.id"
        "  ORDER BY j.started DESC, j.seq DESC, io.role, p.path LIMIT 1)"
        " FROM artifacts a WHERE a.hash = ?",
        (digest,),
    )
    return (rows[0][0], rows[0][1]) if rows else None


async def job(store: Store, job_id: str) -> tuple[int, str] | None:
    """A job's seq and command."""
    rows = await store.rows("SELECT seq, command FROM jobs WHERE id = ?", (job_id,))
    return (rows[0][0], rows[0][1]) if rows else None


async def files(store: Store, seqs: list[int], outputs: bool) -> list[tuple[int, int, str, bytes]]:
    """The inputs (or outputs) of these jobs, by path: (seq, artifact id, hash, path)."""
    return await store.rows(
        "SELECT io.job, a.id, a.hash, p.path FROM job_io io"
        " JOIN artifacts a ON a.id = io.artifact JOIN paths p ON p.id = io.path"
        f" WHERE io.role = ? AND io.job IN ({_marks(len(seqs))}) ORDER BY p.path",
        [1 if outputs else 0, *seqs],
    )


async def sizes(store: Store, hashes: list[str]) -> dict[str, int]:
    if not hashes:
        return {}
    rows = await store.rows(
        f"SELECT hash, size FROM artifacts WHERE hash IN ({_marks(len(hashes))})", hashes
    )
    return {digest: size for digest, size in rows}
