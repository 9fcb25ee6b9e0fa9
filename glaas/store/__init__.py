"""Where the registry keeps its records: one interface (`Store`), two backends.

`open_store(url)`: `postgresql://user@host/db` for a team's server, else a SQLite file
(`sqlite:///path`, or a plain path); the default is `$XDG_DATA_HOME/glaas/glaas.db`."""

from __future__ import annotations

import os
from pathlib import Path

from glaas.store.base import ANONYMOUS, Account, Prepared, Store, Written
from roar.errors import Invalid

__all__ = ["ANONYMOUS", "Account", "Prepared", "Store", "Written", "default_url", "open_store"]


def default_url() -> str:
    base = os.environ.get("XDG_DATA_HOME")
    data = Path(base) if base and os.path.isabs(base) else Path.home() / ".local/share"
    return f"sqlite:///{data / 'glaas' / 'glaas.db'}"


def _sqlite_path(url: str) -> Path:
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    if not path:
        raise Invalid(f"no file in database URL {url!r}", "e.g. sqlite:///var/lib/glaas/glaas.db")
    return Path(path).expanduser()


def describe(url: str) -> str:
    """The URL without a password, for logs and messages."""
    from roar.canonical import strip_credentials

    return strip_credentials(url)


async def open_store(url: str | None = None, pool_size: int = 10) -> Store:
    url = url or default_url()
    if url.startswith(("postgresql://", "postgres://")):
        from glaas.store.postgres import PostgresStore

        return await PostgresStore.open(url, pool_size)
    if "://" in url and not url.startswith("sqlite://"):
        raise Invalid(
            f"unsupported database URL {describe(url)!r}",
            "use postgresql://... or sqlite:///path (or a plain file path)",
        )
    from glaas.store.sqlite import SQLiteStore

    return await SQLiteStore.open(url, _sqlite_path(url))
