"""User configuration ($XDG_CONFIG_HOME/roar/config.toml), reloaded by the daemon when it changes.

[filters]
exclude = ["/data/scratch/*"]   # globs of paths that are never inputs or outputs
include = ["/etc/myapp/*"]      # globs kept even where a default rule would filter them

[log]
level = "info"                  # debug | info | warning | error

[hygiene]
committed_code_only = false     # refuse to run when the git tree has uncommitted changes

[registry]
url = "https://glaas.example.org"   # the team registry (GLaaS); "" for none
key = "~/.ssh/id_ed25519"       # signs requests: a private key file, or a .pub whose private half
                                # is in ssh-agent; "" for the agent's first key; "none": unsigned
auto = false                    # register every finished job in the background
visibility = ""                 # private | team | public; "" for the registry's default
team = ""                       # for "team", which of your teams (if you are in several)

A project's .roar/config.toml takes the same form: its [filters] add to the user's, and its
[hygiene] rules apply to runs in that project. [log] and [registry] are the user's only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec


class FilterConfig(msgspec.Struct, forbid_unknown_fields=True):
    exclude: list[str] = []
    include: list[str] = []


class LogConfig(msgspec.Struct, forbid_unknown_fields=True):
    level: str = "info"


class HygieneConfig(msgspec.Struct, forbid_unknown_fields=True):
    committed_code_only: bool = False


UNSIGNED = "none"  # registry.key after `roarctl auth logout`: sign nothing


class RegistryConfig(msgspec.Struct, forbid_unknown_fields=True):
    url: str = ""
    key: str = ""
    auto: bool = False
    visibility: Literal["", "private", "team", "public"] = ""
    team: str = ""


class Config(msgspec.Struct, forbid_unknown_fields=True):
    filters: FilterConfig = msgspec.field(default_factory=FilterConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    hygiene: HygieneConfig = msgspec.field(default_factory=HygieneConfig)
    registry: RegistryConfig = msgspec.field(default_factory=RegistryConfig)


class ConfigError(Exception):
    pass


def load(path: Path) -> Config:
    """The configuration in `path` (defaults when it does not exist)."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
