"""Refs: a full hash or id, or a unique prefix of at least MIN_PREFIX hex digits. An ambiguous
prefix names its candidates; what the reader cannot see is not a candidate."""

from __future__ import annotations

import re

from glaas.store import Store
from roar.errors import Ambiguous, Invalid, NotFound
from roar.registry import MIN_PREFIX, Kind, Match

MAX_CANDIDATES = 20
_HEX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},64}}")
_NOUN = {"artifact": "artifact", "job": "job", "session": "session"}


class AmbiguousPrefix(Ambiguous):
    def __init__(self, ref: str, candidates: list[Match], more: bool) -> None:
        listed = ", ".join(f"{m.kind} {m.id[:16]}" for m in candidates[:5])
        super().__init__(
            f"{ref} matches {'more than ' if more else ''}{len(candidates)} records: {listed}",
            "give more digits",
        )
        self.candidates = candidates


def check(ref: str) -> str:
    ref = ref.strip().lower()
    if not _HEX.fullmatch(ref):
        raise Invalid(
            f"not a hash or id: {ref[:70]!r}",
            f"give a hex hash or id, or a prefix of at least {MIN_PREFIX} digits",
        )
    return ref


async def matches(store: Store, kinds: tuple[Kind, ...], ref: str, viewer: int) -> list[Match]:
    out: list[Match] = []
    for kind in kinds:
        ids = await store.find(kind, ref, ref + "g", viewer, MAX_CANDIDATES + 1)
        out.extend(Match(kind, i) for i in ids)
    return out


async def resolve(store: Store, kinds: tuple[Kind, ...], ref: str, viewer: int) -> Match:
    """The one record of one of `kinds` that `ref` names, readable by `viewer`."""
    ref = check(ref)
    found = await matches(store, kinds, ref, viewer)
    if not found:
        what = " or ".join(_NOUN[k] for k in kinds)
        raise NotFound(f"no {what} {ref}")
    if len(found) > 1:
        raise AmbiguousPrefix(ref, found[:MAX_CANDIDATES], len(found) > MAX_CANDIDATES)
    return found[0]


async def full_id(store: Store, kind: Kind, ref: str, viewer: int) -> str:
    """The full hash or id `ref` names: itself when it is whole (the record's own read then
    decides whether the viewer may see it), else the one record of `kind` its prefix names."""
    ref = check(ref)
    if len(ref) < 64:
        ref = (await resolve(store, (kind,), ref, viewer)).id
    return ref
