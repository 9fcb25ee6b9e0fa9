"""The registry seen from this machine: its URLs, signed requests, and its answers as roar's
failures. roard (registration) sends with httpx's async client, roarctl (auth, reads) with the
sync one; both build and read requests here.

httpx (~120 ms to import) is loaded when a request is first made, not with this module: roard
imports it at start-up, and `roarctl run` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from roar.errors import (
    Ambiguous,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RoarFailure,
    Unauthorized,
    Unavailable,
)
from roar.keys import Signing
from roar.registry import API, Problem, Visibility, authorization

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
WEB_KINDS = {"artifact": "artifacts", "job": "jobs", "session": "sessions"}


def web_url(base: str, kind: str, ref: str) -> str:
    """The page of a record in the registry: the one place such URLs are made."""
    return f"{base.rstrip('/')}/{WEB_KINDS[kind]}/{ref}"


def timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(60.0, connect=10.0)


def check_url(url: str) -> str:
    """A registry URL as configured: http(s)://host[:port][/prefix], without a trailing /."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise Invalid(f"not a registry URL: {url!r} ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid(f"not a registry URL: {url!r}", "give one like https://glaas.example.org")
    if parsed.query or parsed.fragment:
        raise Invalid(f"a registry URL has no query or fragment: {url!r}")
    return url.rstrip("/")


class Registry:
    """One registry (its base URL) and the key that signs for us (None: unsigned)."""

    def __init__(self, url: str, signing: Signing | None) -> None:
        self.url = url.rstrip("/")
        self.signing = signing

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes = b"",
        sign: bool = True,
    ) -> httpx.Request:
        """A request for `{url}/api/v1{path}`, signed over the path and query exactly as they
        go on the wire. Blocking (the agent signs): roard calls it in a worker thread."""
        import httpx

        headers = {"Content-Type": "application/json"} if body or method == "POST" else {}
        try:
            req = httpx.Request(
                method, self.url + API + path, params=params, content=body, headers=headers
            )
        except httpx.InvalidURL as exc:  # a registry.url edited into the file by hand
            raise Unavailable(
                f"registry.url {self.url!r} is not a URL: {exc}",
                "roarctl config set registry.url https://glaas.example.org",
            ) from None
        if sign and self.signing is not None:
            raw_path, _, query = req.url.raw_path.decode("latin-1").partition("?")
            try:
                req.headers["Authorization"] = authorization(
                    self.signing.sign, method, raw_path, query, body
                )
            except Exception as exc:  # the agent went away, refused, or ssh-keygen failed
                raise Unauthorized(
                    f"could not sign the request with {self.signing.source}: {exc}",
                    "is the key still in ssh-agent? ssh-add -l",
                ) from None
        return req

    def unreachable(self, exc: Exception) -> Unavailable:
        what = type(exc).__name__ if not str(exc) else str(exc)
        return Unavailable(
            f"cannot reach the registry at {self.url}: {what}",
            "is it running? `roarctl config get registry.url` is where roar looks",
        )

    def answer(self, response: httpx.Response, expect: type[T]) -> T:
        """The decoded body of a 2xx answer; any other answer as a roar failure."""
        if 200 <= response.status_code < 300:
            try:
                return msgspec.json.decode(response.content, type=expect)
            except msgspec.DecodeError as exc:
                raise Unavailable(
                    f"the registry at {self.url} sent an answer roar cannot read: {exc}",
                    "roar and the registry may be of different versions",
                ) from None
        raise self.failure(response)

    def failure(self, response: httpx.Response) -> RoarFailure:
        status = response.status_code
        problem: Problem | None = None
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            try:
                problem = msgspec.json.decode(response.content, type=Problem)
            except msgspec.DecodeError:
                problem = None
        detail = problem.detail if problem else f"HTTP {status} {response.reason_phrase}"
        hint = problem.hint if problem else None
        if status == 401:
            return Unauthorized(f"the registry refused the request: {detail}", hint)
        if status == 403:
            return Forbidden(f"the registry refused the request: {detail}", hint)
        if status == 404:
            return NotFound(detail, hint)
        if status == 409 and problem is not None and problem.code == "conflict":
            return Conflict(f"the registry refused the request: {detail}", hint)
        if status == 409:
            candidates = problem.candidates if problem and problem.candidates else []
            names = ", ".join(f"{c.kind} {c.id[:16]}" for c in candidates[:8])
            return Ambiguous(
                f"{detail}" + (f": {names}" if names else ""), "give more characters of the hash"
            )
        if 400 <= status < 500:
            return Invalid(f"the registry refused the request: {detail}", hint)
        return Unavailable(f"the registry at {self.url} failed: {detail}", hint)


def visibility(value: str) -> Visibility | None:
    """A visibility setting ("" for the registry's default)."""
    if value in ("private", "team", "public"):
        return value  # type: ignore[return-value]
    return None
