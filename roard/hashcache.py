"""Hashing files through the hash cache: a file whose stat key (device, inode, size, mtime,
ctime) matches a cached entry is not read again."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from roar import hashing
from roar.hashing import Key
from roar.protocol import Progress
from roard.store import Store, hashcache

SendProgress = Callable[[Progress], Coroutine[Any, Any, None]]
Hashed = dict[bytes, tuple[str, int, Key | None]]  # path -> (hash, size, cache key to store)


async def hash_files(
    store: Store,
    paths: list[bytes],
    progress: SendProgress | None,
    limit: int | None = None,
    stat_keys: dict[bytes, Key] | None = None,
) -> Hashed:
    """Hash files (content hash, size, cache key to store) using and feeding the hash cache.
    `stat_keys` may carry the keys of regular files already stat'ed, to spare a second stat."""
    known_keys = stat_keys or {}
    keys: dict[bytes, Key] = {}
    for path in paths:
        key = known_keys.get(path)
        if key is None:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            key = Key.of(st)
        if limit is None or key.size <= limit:
            keys[path] = key
    known = await hashcache.cached(store, keys.values())
    result: Hashed = {}
    misses = []
    for path, key in keys.items():
        if key in known:
            result[path] = (known[key], key.size, None)
        else:
            misses.append((path, key))
    if not misses:
        return result
    total = sum(k.size for _, k in misses)
    done = 0
    last_sent = 0.0
    began = time.monotonic()

    def report(n: int) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if progress is not None and now - began > 0.25 and now - last_sent > 0.1:
            last_sent = now
            anyio.from_thread.run(progress, Progress(label="hashing", done=done + n, total=total))

    def work() -> None:
        nonlocal done
        for path, key in misses:
            try:
                digest = hashing.hash_file(path, report)
                after = Key.of(os.stat(path))
            except OSError:
                continue
            # Cache only if the file did not change while it was hashed.
            result[path] = (digest, key.size, key if after == key else None)
            done += key.size
            report(0)

    await anyio.to_thread.run_sync(work)
    return result


async def hash_cached(store: Store, paths: list[bytes]) -> dict[bytes, tuple[str, int]]:
    """Hash regular files through the cache and store what was learnt: path -> (hash, size).
    (A run's finish writes its cache rows with its record; this is for everything else.)"""
    hashed = await hash_files(store, paths, None)
    rows = [(*key, digest) for digest, _, key in hashed.values() if key is not None]
    if rows:
        async with store.write() as tx:
            await hashcache.put(tx, rows)
    return {path: (digest, size) for path, (digest, size, _) in hashed.items()}
