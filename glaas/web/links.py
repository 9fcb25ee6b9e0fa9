"""Links to other sites, made only from values that were checked: a commit on a known forge, and
http(s) URLs (a tracker's run page). Anything else is shown as text, never put in an href."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# host -> the path of a commit under the repository's page
FORGES = {
    "github.com": "/commit/",
    "gitlab.com": "/-/commit/",
    "bitbucket.org": "/commits/",
    "codeberg.org": "/commit/",
    "git.sr.ht": "/commit/",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")
_COMMIT = re.compile(r"[0-9a-f]{7,64}")
_SCP = re.compile(r"^(?:[A-Za-z0-9_.-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")


def _repository(remote: str) -> tuple[str, list[str]] | None:
    """(host, path segments) of a git remote: https://host/a/b(.git), ssh://git@host/a/b,
    git@host:a/b.git."""
    remote = remote.strip()
    if "://" in remote:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh"):
            return None
        host, path = (parts.hostname or ""), parts.path
    else:
        m = _SCP.match(remote)
        if m is None:
            return None
        host, path = m["host"], m["path"]
    segments = [s for s in path.strip("/").removesuffix(".git").split("/") if s]
    if not segments or not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        return None
    return host.lower(), segments


def commit_url(remotes: dict[str, str], commit: str | None) -> str | None:
    """The forge's page of `commit` (from the `origin` remote first), if the forge is known."""
    if not commit or not _COMMIT.fullmatch(commit):
        return None
    names = sorted(remotes, key=lambda n: (n != "origin", n))
    for name in names:
        found = _repository(remotes[name])
        if found is None:
            continue
        host, segments = found
        if host in FORGES and len(segments) >= 2:
            return f"https://{host}/{'/'.join(segments)}{FORGES[host]}{commit}"
    return None


def web_url(value: str | None) -> str | None:
    """`value` if it is an absolute http(s) URL with a host (else None: shown as text)."""
    if not value or any(c in value for c in "\x00\r\n\t \"'<>`\\"):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return value
