"""The CLI's error type: what went wrong, in one line, and what to do next. Raised anywhere in
roarctl; shown to the user in one place, roarctl.entry.main (through roarctl.messages)."""

from __future__ import annotations


class RoarError(Exception):
    """Something the user should read: one line of what went wrong, one of what to do."""

    def __init__(
        self, message: str, hint: str | None = None, exit_code: int = 1, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.code = code  # roard's error code (roar.errors.ErrorCode), when it said one
