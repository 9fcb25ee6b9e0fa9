"""The hash cache's table: content hashes of files, valid while their stat key matches."""

from __future__ import annotations

from collections.abc import Iterable

from roar.hashing import Key
from roard.store import Store, Tx

CacheRow = tuple[int, int, int, int, int, str]  # dev, ino, size, mtime_ns, ctime_ns, hash


async def cached(store: Store, keys: Iterable[Key]) -> dict[Key, str]:
    """The cached hashes that are still valid for these stat keys."""
    wanted = {(k.dev, k.ino): k for k in keys}
    by_dev: dict[int, list[int]] = {}
    for dev, ino in wanted:
        by_dev.setdefault(dev, []).append(ino)
    found: dict[Key, str] = {}
    for dev, inodes in by_dev.items():
        for start in range(0, len(inodes), 500):
            chunk = inodes[start : start + 500]
            rows = await store.rows(
                "SELECT ino, size, mtime_ns, ctime_ns, hash FROM hash_cache"
                f" WHERE dev = ? AND ino IN ({','.join('?' * len(chunk))})",
                [dev, *chunk],
            )
            for ino, size, mtime_ns, ctime_ns, digest in rows:
                key = wanted[(dev, ino)]
                if key == Key(dev, ino, size, mtime_ns, ctime_ns):
                    found[key] = digest
    return found


async def put(tx: Tx, rows: Iterable[CacheRow]) -> None:
    await tx.executemany(
        "INSERT INTO hash_cache (dev, ino, size, mtime_ns, ctime_ns, hash)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(dev, ino) DO UPDATE SET size = excluded.size,"
        " mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, hash = excluded.hash",
        rows,
    )
