"""Filling a registry from real `roarctl run` jobs: the one place the browser tests register.

Each registration is the real `roarctl register` of the user's roar: roard reads the jobs' whole
upstream from its store, makes it canonical and sends it, signed with the key file given
(`registry.key`), to the real `glaas serve`."""

from __future__ import annotations

from typing import Any

from registry_support import Key

from roar import registry


def register(
    roar: Any,
    url: str,
    key: Key,
    job_ids: list[str],
    visibility: registry.Visibility = "public",
    team: str | None = None,
) -> list[str]:
    """Register these of `roar`'s recorded jobs (with their upstream) as `key`'s owner; their
    registry ids, in order."""
    roar("config", "set", "registry.url", url)
    roar("config", "set", "registry.key", str(key.path))
    if team is not None:
        roar("config", "set", "registry.team", team)
    done = roar.json("register", *job_ids, "--visibility", visibility)
    assert not done["skipped"], done
    ids = [t["id"] for t in done["targets"]]
    assert len(ids) == len(job_ids) and all(t["kind"] == "job" for t in done["targets"]), done
    return ids
