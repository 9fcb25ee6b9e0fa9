"""BLAKE3 content hashes, and the cache that spares re-hashing files that did not change.

The cache key is (device, inode) and an entry is valid only while size, mtime_ns and ctime_ns all
match: `touch -d` can put mtime back, but it cannot put back ctime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

import blake3

if TYPE_CHECKING:
    from roard.store import Store


CHUNK = 8 * 1024 * 1024
SMALL = 1024 * 1024


class Key(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Key:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_file(path: bytes | str, progress: Callable[[int], None] | None = None) -> str:
    """BLAKE3 hex digest of a file's content; `progress` is called with bytes hashed so far."""
    # read(), not mmap: a file truncated while it is hashed must not kill us with SIGBUS.
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= SMALL:
            return blake3.blake3(f.read()).hexdigest()
        hasher = blake3.blake3()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        done = 0
        while n := f.readinto(buf):
            hasher.update(view[:n])
            done += n
            if progress is not None:
                progress(done)
        return hasher.hexdigest()


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


CACHE_UPSERT = (
    "INSERT INTO hash_cache (dev, ino, size, mtime_ns, ctime_ns, hash) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(dev, ino) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
    "ctime_ns = excluded.ctime_ns, hash = excluded.hash"
)
