"""Where roar keeps things (XDG base directories).

Imported by `roarctl run` before it starts the command: only `os` at import time."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not `from typing`: this module loads before the command starts

if TYPE_CHECKING:
    from pathlib import Path

PRERUN = "prerun"  # in the runtime directory: see roard.prerun


def _xdg(var: str, default: str) -> Path:
    from pathlib import Path

    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / default


def runtime_base() -> str:
    """Where roard's socket, lock and prerun file live: $XDG_RUNTIME_DIR/roar, or, without a
    login manager's runtime directory (ssh, cron, containers), $XDG_STATE_HOME/roar/run in the
    user's own home, which no other user can create first (a directory in /tmp could be, and
    its owner would then receive every run's environment). /tmp/roar-UID is used only when
    that path is too long for a socket, and the client refuses it unless it is the user's."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base) and os.access(base, os.W_OK | os.X_OK):
        return os.path.join(base, "roar")
    state = os.environ.get("XDG_STATE_HOME")
    if not (state and os.path.isabs(state)):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    run = os.path.join(state, "roar", "run")
    if len(os.fsencode(run)) + len(b"/roard.sock") < SOCKET_PATH_MAX:
        return run
    return f"/tmp/roar-{os.getuid()}"


SOCKET_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path) on Linux, with its NUL


def unsafe_dir(path: str | bytes) -> str | None:
    """Why the directory at `path` cannot be trusted with roar's socket or files (another user
    owns it, or other users may write in it), or None if it can (or does not exist yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot check {os.fsdecode(path)}: {exc.strerror}"
    if st.st_uid != os.getuid():
        return f"{os.fsdecode(path)} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"{os.fsdecode(path)} is writable by other users (mode {st.st_mode & 0o777:o})"
    return None


def runtime_dir() -> Path:
    from pathlib import Path

    return Path(runtime_base())


class Paths:
    __slots__ = ("config_dir", "data", "runtime", "state")

    def __init__(self, runtime: Path, data: Path, state: Path, config_dir: Path) -> None:
        self.runtime = runtime
        self.data = data
        self.state = state
        self.config_dir = config_dir

    def __repr__(self) -> str:
        return f"Paths(runtime={self.runtime}, data={self.data}, state={self.state})"

    @property
    def socket(self) -> Path:
        return self.runtime / "roard.sock"

    @property
    def lock(self) -> Path:
        return self.runtime / "roard.lock"

    @property
    def db(self) -> Path:
        return self.data / "roar.db"

    @property
    def log(self) -> Path:
        return self.state / "roard.log"

    @property
    def spool(self) -> Path:
        """Finished runs the CLI could not deliver; ingested when the daemon starts."""
        return self.state / "spool"

    @property
    def config(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def prerun(self) -> Path:
        return self.runtime / PRERUN


def paths() -> Paths:
    return Paths(
        runtime=runtime_dir(),
        data=_xdg("XDG_DATA_HOME", ".local/share") / "roar",
        state=_xdg("XDG_STATE_HOME", ".local/state") / "roar",
        config_dir=_xdg("XDG_CONFIG_HOME", ".config") / "roar",
    )


class private_umask:
    """Inside `with private_umask():` every file and directory made is its owner's alone (umask
    077: files 0600, directories 0700), from the moment it exists. The umask is the process's:
    roarctl uses this only around its own writes, never while it starts a command."""

    __slots__ = ("_old",)

    def __enter__(self) -> None:
        self._old = os.umask(0o077)

    def __exit__(self, *exc: object) -> None:
        os.umask(self._old)


def private_dir(path: Path) -> Path:
    """Create a directory only its owner can use (0700, its missing parents too); tighten one
    that other users could read or enter; refuse one that belongs to someone else."""
    with private_umask():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to you")
    if st.st_mode & 0o077:
        path.chmod(0o700)
    return path
