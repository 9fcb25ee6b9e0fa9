"""What the database and the log call a webhook: never its URL, whose path is often its secret
(Slack's). Apart from glaas.webhooks so that the store's migrations can use it too."""

from __future__ import annotations

import hashlib
import re

# scheme://host[:port] of a URL, without its user:password@ (the same pattern is in the
# migration 0007 for PostgreSQL; SQLite's calls hook_id itself)
ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#]*@)?([^/?#@]*)")


def hook_id(url: str) -> str:
    """What the database and the log say of a hook: `https://hooks.slack.com [3f9a0c1d2e4b]`,
    its scheme and host (no user or password) and the first 12 hex digits of the SHA-256 of the
    whole URL (which hook of that host; 48 bits say nothing of a secret path)."""
    m = ORIGIN.match(url)
    origin = m[1] + m[2] if m else "?"
    return f"{origin} [{hashlib.sha256(url.encode()).hexdigest()[:12]}]"
