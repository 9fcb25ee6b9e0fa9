"""What both benchmarks share: a private HOME/XDG tree, so their jobs never reach your store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def private_tree(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh temp directory and the environment that makes roarctl/roard live inside it."""
    base = Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix)))
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    env = {
        **os.environ,
        "HOME": str(base),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(base / "data"),
        "XDG_STATE_HOME": str(base / "state"),
        "XDG_CONFIG_HOME": str(base / "config"),
    }
    return base, env
