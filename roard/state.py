"""roard's own state, beside its store: what a request may need that is not a record."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import anyio

from roar.config import Config
from roar.paths import Paths
from roard.filters import Filters
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

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.config.registry)

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config."""
        self.config = config
        self.filters = filters(config, self.paths)
        self.outbox.configure(config.registry)


def filters(config: Config, paths: Paths) -> Filters:
    own = (
        os.fsencode(paths.data) + b"/",
        os.fsencode(paths.state) + b"/",
        os.fsencode(paths.runtime) + b"/",
    )
    return Filters(config.filters.exclude, config.filters.include, own)
