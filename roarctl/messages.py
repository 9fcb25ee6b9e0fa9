"""roar's own lines on stderr, all with one prefix: `roar: ...` (notes), `roar: warning: ...`,
`roar: error: ...` (with an indented hint). What a command prints as its answer (on stdout) is
the command's business, not this module's.

Loaded by `roarctl run` before its command starts: `sys` only.
"""

from __future__ import annotations

import sys

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
