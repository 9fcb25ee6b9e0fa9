"""Which observed paths are system noise rather than the user's data.

Filtered paths are not inputs or outputs, but they are counted per rule (and listed with
`show --verbose`) so nothing is dropped silently. User data anywhere, /tmp included, is kept.
Every rule is about where a file lives (system directories, an interpreter's or environment's
prefix, a toolchain manager's tree), never only about its name: a `libfoo.so` or a `.pyc`
built in the project is the project's.
"""

from __future__ import annotations

import fnmatch
import os
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
# Where interpreters keep their libraries and caches: any prefix's stdlib and site-packages,
# and CPython's bytecode cache (a cached .pyc that was read counts as its .py: roarctl.record).
_PYTHON = re.compile(rb"/lib/python\d+(\.\d+)?t?/|/site-packages/|/dist-packages/|/__pycache__/")
# Tool managers' own files (pyenv shims and hooks, rustup and nvm toolchains): not user data.
_TOOLCHAIN = re.compile(rb"/\.pyenv/|/\.rustup/|/\.nvm/|/\.cargo/registry/")
# An environment's own directories: X/bin, X/lib, ... where X holds a virtualenv's pyvenv.cfg or
# a conda environment's conda-meta/ (a project that is itself a venv keeps its other files).
_ENV_DIRS = frozenset((b"bin", b"lib", b"lib64", b"include", b"share", b"etc"))
_ENV_MARKERS = (b"pyvenv.cfg", b"conda-meta")


class Filters:
    def __init__(
        self, exclude: Sequence[str] = (), include: Sequence[str] = (), own: Sequence[bytes] = ()
    ) -> None:
        self.exclude = [p.encode() for p in exclude]
        self.include = [p.encode() for p in include]
        self.own = tuple(own)  # roar's own files (its store, logs)
        self._envs: dict[bytes, bool] = {}  # directory -> is an environment's root

    def for_run(self) -> Filters:
        """These filters with a cache of what the file system says (which directories are
        environments) that lives for one run's classification."""
        out = Filters((), (), self.own)
        out.exclude, out.include = self.exclude, self.include
        return out

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
        if path.startswith(SYSTEM):
            return "system"
        if _TOOLCHAIN.search(path):
            return "toolchain"
        if self._in_environment(path):
            return "environment"
        if any(fnmatch.fnmatchcase(path, pat) for pat in self.exclude):
            return "config"
        return None

    def _in_environment(self, path: bytes) -> bool:
        """X/pyvenv.cfg, or a path under X/bin, X/lib, ... of a virtualenv or conda env X."""
        parts = path.split(b"/")
        for i in range(1, len(parts) - 1):
            if parts[i] in _ENV_DIRS and self._is_env(b"/".join(parts[:i])):
                return True
        return parts[-1] == b"pyvenv.cfg" and self._is_env(b"/".join(parts[:-1]))

    def _is_env(self, root: bytes) -> bool:
        known = self._envs.get(root)
        if known is None:
            known = self._envs[root] = any(
                os.path.exists(root + b"/" + marker) for marker in _ENV_MARKERS
            )
        return known
