"""Projects: the nearest directory marked by `roarctl init` (.roar/config.toml) or git top-level."""

from __future__ import annotations

import os
from pathlib import Path

from roar import config
from roar.config import Config

CONFIG_TEMPLATE = """\
# roar project configuration. Everything here is optional.
# [filters]
# exclude = ["/data/scratch/*"]   # globs of paths never recorded as inputs or outputs
# include = []                    # globs kept even where a default rule filters them
"""


def find_root(cwd: bytes) -> bytes | None:
    path = os.path.abspath(cwd)
    while True:
        if os.path.isfile(os.path.join(path, b".roar", b"config.toml")) or os.path.exists(
            os.path.join(path, b".git")
        ):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def load_config(root: bytes) -> Config:
    """The project's .roar/config.toml (defaults when absent or invalid: runs never fail on it)."""
    try:
        return config.load(Path(os.fsdecode(os.path.join(root, b".roar", b"config.toml"))))
    except config.ConfigError:
        return Config()


def init(cwd: bytes) -> tuple[bytes, bytes, bool]:
    """Mark the project (git top-level, else cwd); never dirties the git tree."""
    root = find_root(cwd)
    if root is None or not os.path.exists(os.path.join(root, b".git")):
        root = os.path.abspath(cwd)
    config = os.path.join(root, b".roar", b"config.toml")
    created = not os.path.exists(config)
    if created:
        os.makedirs(os.path.dirname(config), exist_ok=True)
        with open(config, "w") as f:
            f.write(CONFIG_TEMPLATE)
    git_dir = os.path.join(root, b".git")
    if os.path.isdir(git_dir):  # keep .roar/ out of `git status` without touching .gitignore
        exclude = os.path.join(git_dir, b"info", b"exclude")
        os.makedirs(os.path.dirname(exclude), exist_ok=True)
        try:
            with open(exclude, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        if b".roar/" not in lines and b"/.roar/" not in lines:
            with open(exclude, "ab") as f:
                f.write(b"\n/.roar/\n" if lines and lines[-1] != b"" else b"/.roar/\n")
    return root, config, created
