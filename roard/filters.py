"""Which observed paths are system noise rather than the user's data.

Filtered paths are not inputs or outputs, but they are counted per rule (and listed with
`show --verbose`) so nothing is dropped silently. User data anywhere, /tmp included, is kept.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

PSEUDO = (b"/proc/", b"/sys/", b"/dev/", b"/run/")
SYSTEM = (
    b"/usr/",
    b"/lib/",
    b"/lib32/",
    b"/lib64/",
    b"/libx32/",
    b"/bin/",
    b"/sbin/",
    b"/etc/",
    b"/nix/store/",
    b"/var/lib/dpkg/",
    b"/var/cache/",
)
_PYTHON = re.compile(
    rb"/lib/python\d+(\.\d+)?t?/|/site-packages/|/dist-packages/|/__pycache__/|\.pyc$|/pyvenv\.cfg$"
)
_SHARED_LIB = re.compile(rb"\.so(\.\d+)*$")
# Tool managers' own files (pyenv shims and hooks, rustup and nvm toolchains): not user data.
_TOOLCHAIN = re.compile(rb"/\.pyenv/|/\.rustup/|/\.nvm/|/\.cargo/registry/")


class Filters:
    def __init__(
        self, exclude: Sequence[str] = (), include: Sequence[str] = (), own: Sequence[bytes] = ()
    ) -> None:
        self.exclude = [p.encode() for p in exclude]
        self.include = [p.encode() for p in include]
        self.own = tuple(own)  # roar's own files (its store, logs)

    def extended(self, exclude: Sequence[str], include: Sequence[str]) -> Filters:
        """These filters plus a project's own rules."""
        if not exclude and not include:
            return self
        out = Filters((), (), self.own)
        out.exclude = self.exclude + [p.encode() for p in exclude]
        out.include = self.include + [p.encode() for p in include]
        return out

    def rule(self, path: bytes) -> str | None:
        """The name of the rule that filters this (resolved, absolute) path, or None to keep it."""
        if any(fnmatch.fnmatchcase(path, pat) for pat in self.include):
            return None
        if path.startswith(PSEUDO) or path in (b"/proc", b"/sys", b"/dev"):
            return "pseudo-fs"
        if self.own and path.startswith(self.own):
            return "roar"
        if _PYTHON.search(path):
            return "python"
        if _SHARED_LIB.search(path):
            return "shared-library"
        if path.startswith(SYSTEM):
            return "system"
        if _TOOLCHAIN.search(path):
            return "toolchain"
        if any(fnmatch.fnmatchcase(path, pat) for pat in self.exclude):
            return "config"
        return None
