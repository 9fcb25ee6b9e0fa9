"""The CLI's error type, and the one place errors are shown to the user."""

from __future__ import annotations

import sys


class RoarError(Exception):
    """Something the user should read: one line of what went wrong, one of what to do."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


def show(exc: RoarError) -> int:
    print(f"roarctl: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"  hint: {exc.hint}", file=sys.stderr)
    return exc.exit_code
