"""BLAKE3 content hashes, and the stat key of roard's hash cache.

The cache key is (device, inode) and an entry is valid only while size, mtime_ns and ctime_ns all
match: `touch -d` can put mtime back, but it cannot put back ctime.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import blake3

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
