"""roard's own state, beside its store: what a request may need that is not a record."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import anyio

from roar import config as config_file
from roar.config import Config
from roar.paths import Paths
from roard import logs
from roard.filters import Filters
from roard.logs import log
from roard.prerun import PrerunFile
from roard.registration import Outbox
from roard.runs import InFlight


@dataclass
class State:
    paths: Paths
    config: Config
    filters: Filters  # from the config, plus roar's own files
    prerun: PrerunFile  # runs that must wait for roard (roar.prerun)
    started: float = field(default_factory=time.time)
    runs: InFlight = field(default_factory=dict)  # runs in progress -> facts staged
    stop: anyio.Event = field(default_factory=anyio.Event)
    stop_reason: str = ""  # why `stop` was set (logged as roard stops)
    store_note: str | None = None  # what `status` must say about the store (roard.daemon)
    spool_done: anyio.Event = field(default_factory=anyio.Event)  # queries wait for the spool
    outbox: Outbox = field(init=False)  # registration: the sender's state (roard.registration)
    config_stamp: tuple[int, int, int] | None = None  # the config file's, as last loaded

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.config.registry)

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config."""
        self.config = config
        self.filters = filters(config, self.paths)
        self.outbox.configure(config.registry)

    def refresh_config(self) -> bool:
        """Take the config file as it is now if it changed since it was last loaded. The file
        watcher's events come up to 2 s late (watchfiles' debounce), so every request checks
        first: a `register` sent right after `config set registry.key` signs with the new key.
        False if unchanged, or invalid (the previous config is kept, and why is logged)."""
        stamp = config_stamp(self.paths.config)
        if stamp == self.config_stamp:
            return False
        self.config_stamp = stamp
        try:
            cfg = config_file.load(self.paths.config)
        except config_file.ConfigError as exc:
            log.warning("config.invalid", error=str(exc), kept="previous")
            return False
        self.configure(cfg)
        logs.set_level(cfg.log.level)
        log.info("config.reloaded", path=str(self.paths.config))
        return True


def config_stamp(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    """What tells one version of the config file from another (None: there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def filters(config: Config, paths: Paths) -> Filters:
    own = (
        os.fsencode(paths.data) + b"/",
        os.fsencode(paths.state) + b"/",
        os.fsencode(paths.runtime) + b"/",
    )
    return Filters(config.filters.exclude, config.filters.include, own)
