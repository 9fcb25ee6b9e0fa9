"""The few ways a request can fail, shared by roard (which raises them), the wire (which carries
their code) and roarctl and glaas (which show them). Each maps to one `ErrorCode` at the edge."""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "bad-frame",  # a frame that cannot be read (too large, truncated, not a message)
    "version",  # the peer speaks another protocol version
    "not-found",  # no such job, artifact, step, project value
    "ambiguous",  # a prefix that matches more than one record
    "invalid",  # a well-formed message with a value that is not allowed
    "forbidden",  # the peer is not the daemon's user
    "unauthorized",  # the registry could not tell who signed the request (or it was replayed)
    "conflict",  # the record changed since it was read, or another request got there first
    "store",  # the store failed (disk full, corrupt): nothing was changed
    "busy",  # too many clients at once: try again
    "unavailable",  # the registry cannot be reached, or failed: try again later
    "internal",  # a bug: details in the log
]


class RoarFailure(Exception):
    """A request that cannot be answered as asked: what went wrong, and what to do next."""

    code: ClassVar[ErrorCode] = "internal"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class NotFound(RoarFailure):
    code = "not-found"


class Ambiguous(RoarFailure):
    code = "ambiguous"


class Invalid(RoarFailure):
    code = "invalid"


class Forbidden(RoarFailure):
    code = "forbidden"


class Conflict(RoarFailure):
    """A change refused because the record is not in the state it was asked from (a double
    claim, an approval of a revision that has since changed)."""

    code = "conflict"


class Unauthorized(RoarFailure):
    """A registry request that is unsigned where it must be, or whose signature is refused."""

    code = "unauthorized"


class Unavailable(RoarFailure):
    """The registry cannot be reached (down, timed out) or answered with a server error."""

    code = "unavailable"


class StoreError(RoarFailure):
    """The store cannot be opened or used (corrupt, too new, unwritable, full)."""

    code = "store"
