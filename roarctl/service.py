"""`roarctl daemon install-service`: write the systemd user units from systemd/ in the install."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from roarctl.errors import RoarError

UNITS = ("roard.service", "roard.socket")


def unit_sources() -> Path:
    """systemd/ of the source tree (editable install) or share/roar/systemd (wheel install)."""
    for candidate in (
        Path(__file__).resolve().parents[1] / "systemd",
        Path(sys.prefix) / "share" / "roar" / "systemd",
    ):
        if all((candidate / u).is_file() for u in UNITS):
            return candidate
    raise RoarError(
        "the systemd unit files are missing from this installation", "reinstall roar (make install)"
    )


def roard_path() -> str:
    beside = Path(sys.executable).with_name("roard")
    found = str(beside) if beside.exists() else shutil.which("roard")
    if not found:
        raise RoarError("cannot find the roard executable", "reinstall roar (make install)")
    return os.path.abspath(found)


def install(unit_dir: str | None = None) -> list[Path]:
    if unit_dir is None:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        unit_dir = os.path.join(config, "systemd", "user")
    target = Path(unit_dir)
    target.mkdir(parents=True, exist_ok=True)
    source = unit_sources()
    written = []
    for unit in UNITS:
        text = (source / unit).read_text()
        text = text.replace("ExecStart=/usr/bin/env roard", f"ExecStart={roard_path()}")
        (target / unit).write_text(text)
        written.append(target / unit)
    return written
