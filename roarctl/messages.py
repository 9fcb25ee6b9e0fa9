"""roar's own lines on stderr, all with one prefix: `roar: ...` (notes), `roar: warning: ...`,
`roar: error: ...` (with an indented hint), and the progress bar of a long delivery. What a
command prints as its answer (on stdout) is the command's business, not this module's.

Loaded by `roarctl run` before its command starts: `os`, `sys` and `time` only.
"""

from __future__ import annotations

import os
import sys
import time

PREFIX = "roar"


def note(text: str) -> None:
    """A line of roar's own about what it did (`roar: job 3f2a9c1b20aa · ...`)."""
    print(f"{PREFIX}: {text}", file=sys.stderr)


def warn(text: str) -> None:
    note(f"warning: {text}")


def error(message: str, hint: str | None = None) -> None:
    note(f"error: {message}")
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)


class ProgressBar:
    """A one-line bar on stderr while roard finishes a large record (or registers jobs): shown
    only on a terminal and only once the work has taken more than a second
    (ROAR_PROGRESS_AFTER seconds)."""

    def __init__(self, unit: str = "bytes") -> None:
        self.unit = unit  # "bytes", or what is counted ("jobs")
        self.enabled = sys.stderr.isatty()
        self.after = float(os.environ.get("ROAR_PROGRESS_AFTER", "1.0"))
        self.shown = False
        self.began = time.monotonic()

    def start(self) -> None:
        """The work begins (again, on a retry): the second's grace counts from here."""
        self.began = time.monotonic()

    def update(self, label: str, done: int, total: int) -> None:
        if not self.enabled or time.monotonic() - self.began < self.after or total <= 0:
            return
        frac = min(1.0, done / total)
        width = 30
        filled = int(frac * width)
        if self.unit == "bytes":
            count = f"{_size(done)}/{_size(total)}"
        else:
            count = f"{done}/{total} {self.unit}"
        sys.stderr.write(
            f"\r{PREFIX}: {label} [{'#' * filled}{' ' * (width - filled)}] {frac:4.0%} {count}"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"
