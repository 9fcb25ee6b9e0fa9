"""What roard holds for its clients at once (file descriptors, connections, frame bytes, time to
say Hello), and how often it retries the spool. Every limit has a default here and an
environment variable to change it (the tests use them to make a limit small).

- RLIMIT_NOFILE: the soft limit is raised to the hard limit at start-up.
- Connections: at most `max_connections` are served at once; more wait, unaccepted, in the
  socket's backlog (they cost roard no descriptor) until one closes. The cap leaves descriptors
  for roard's own files (store, logs, hashing threads, git).
- Hello: a connection that has not said Hello within `hello_timeout` seconds is dropped.
- Frame bytes: frames larger than SMALL_FRAME are read and decoded within a budget shared by
  every connection (`frame_bytes`); a frame that does not fit waits for others to be decoded.
  Once in, such a frame must arrive whole within `frame_timeout` seconds, or its connection is
  dropped (a stalled sender never holds the budget).
- Spool: runs saved while no roard (or no store) could take them are ingested at start-up and
  every `spool_retry` seconds.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import TypeVar

import anyio

from roar.protocol import MAX_FRAME

MAX_CONNECTIONS = 1024  # ROARD_MAX_CONNECTIONS; lowered to what the descriptor limit allows
RESERVED_FDS = 128  # kept for roard's own files (at most half of a small limit)
HELLO_TIMEOUT = 10.0  # ROARD_HELLO_TIMEOUT, seconds
FRAME_BYTES = 4 * MAX_FRAME  # ROARD_FRAME_BYTES; never below MAX_FRAME (one frame must fit)
SMALL_FRAME = 64 * 1024  # frames up to this size are never held back (Hello, queries)
FRAME_TIMEOUT = 60.0  # ROARD_FRAME_TIMEOUT, seconds for a large frame's body to arrive
SPOOL_RETRY = 60.0  # ROARD_SPOOL_RETRY, seconds between passes over the spool
ACCEPT_RETRY = 0.1  # seconds between accept()s while the process is out of descriptors

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Limits:
    nofile: int  # the descriptor limit in effect (soft, after raising it)
    max_connections: int
    hello_timeout: float
    frame_bytes: int
    frame_timeout: float
    spool_retry: float


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # kept: the cap below follows the soft limit
    return soft


def from_env(nofile: int) -> Limits:
    """The limits, for a process allowed `nofile` descriptors; ValueError names a bad variable."""
    wanted = _number("ROARD_MAX_CONNECTIONS", MAX_CONNECTIONS, int)
    reserve = min(RESERVED_FDS, nofile // 2)
    return Limits(
        nofile=nofile,
        max_connections=max(1, min(wanted, nofile - reserve)),
        hello_timeout=_number("ROARD_HELLO_TIMEOUT", HELLO_TIMEOUT, float),
        frame_bytes=max(MAX_FRAME, _number("ROARD_FRAME_BYTES", FRAME_BYTES, int)),
        frame_timeout=_number("ROARD_FRAME_TIMEOUT", FRAME_TIMEOUT, float),
        spool_retry=_number("ROARD_SPOOL_RETRY", SPOOL_RETRY, float),
    )


def _number(name: str, default: N, kind: type[N]) -> N:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{name}={text!r} must be more than 0")
    return value


class FrameBudget:
    """Bytes of large frames being read and decoded, across every connection."""

    def __init__(self, total: int, timeout: float) -> None:
        self.total = total
        self.timeout = timeout  # seconds a frame holding bytes may take to arrive
        self.used = 0
        self._freed = anyio.Condition()

    def fits(self, n: int) -> bool:
        return self.used + n <= self.total

    async def acquire(self, n: int) -> None:
        """Take `n` bytes (n <= total), waiting until they fit."""
        if not n:
            return
        async with self._freed:
            while not self.fits(n):
                await self._freed.wait()
            self.used += n

    async def release(self, n: int) -> None:
        if not n:
            return
        async with self._freed:
            self.used -= n
            self._freed.notify_all()
