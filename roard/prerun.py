"""roard's side of the prerun file (its format and reader are roar.prerun): rewritten from the
store when roard starts and on every env change, locked (shared) for as long as roard lives, and
removed when it stops."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import anyio

from roar.paths import PRERUN
from roar.prerun import render


class PrerunFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = anyio.Lock()

    async def write(self, roots: list[bytes]) -> None:
        """Rewrite the file atomically (a reader sees the old or the new one) and hold a shared
        lock on it: a file nobody holds is stale."""
        async with self._lock:  # two env changes at once: the last one read is written last
            tmp = self.path.with_name(f".{PRERUN}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, render(roots))
                fcntl.flock(fd, fcntl.LOCK_SH)
                os.replace(tmp, self.path)
            except BaseException:
                os.close(fd)
                raise
            if self._fd is not None:
                os.close(self._fd)
            self._fd = fd

    def remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
