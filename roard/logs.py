"""Structured logs: JSON lines in $XDG_STATE_HOME/roar/roard.log (and stderr in the foreground).

Never log environment values, argv or file contents: log ids, counts and paths only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> None:
        for s in self.streams:
            s.write(text)
            s.flush()

    def flush(self) -> None:
        pass


def setup(path: Path, level: str = "info", echo: bool = False) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (daemon lifetime)
    path.chmod(0o600)
    out: TextIO = _Tee(handle, sys.stderr) if echo else handle  # type: ignore[assignment]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return handle


def set_level(level: str) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO))
    )


log = structlog.get_logger("roard")
