"""Deciding what a run's paths were: input, output, both, or neither.

The tracer's facts name paths as the command did; each is resolved (realpath of its directory,
symlinks followed) and stat'ed once at the end of the run, facts for one resolved path are
merged, and one rule per path decides (`decide`). Small runs do this in memory (`classify`);
a run whose facts were streamed does it a chunk at a time from the store's staging tables
(roard.staging), so that memory does not grow with the number of paths.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from roar.hashing import Key
from roar.protocol import FileFact
from roard.filters import Filters

READ, WRITTEN, RDWR = 1, 2, 4  # fact bits, as staged


@dataclass(slots=True)
class Merged:
    """All facts about one resolved path."""

    bits: int = 0
    pre_existed: bool | None = None
    pre_hash: str | None = None
    pre_size: int | None = None

    def add(
        self, bits: int, pre_existed: bool | None, pre_hash: str | None, pre_size: int | None
    ) -> None:
        self.bits |= bits
        if self.pre_existed is None and pre_existed is not None:
            self.pre_existed = pre_existed
        if self.pre_hash is None and pre_hash is not None:
            self.pre_hash, self.pre_size = pre_hash, pre_size


def bits_of(fact: FileFact) -> int:
    return (
        (READ if fact.read else 0) | (WRITTEN if fact.written else 0) | (RDWR if fact.rdwr else 0)
    )


@dataclass
class Classified:
    """What was decided, for one chunk of paths (or the whole of a small run); what adds up
    across chunks is in `Totals`."""

    inputs: dict[bytes, tuple[str | None, int | None]] = field(default_factory=dict)
    outputs: dict[bytes, str | None] = field(default_factory=dict)  # path -> previous hash
    rdwr: dict[bytes, str] = field(default_factory=dict)  # path -> content hash before the run
    keys: dict[bytes, Key] = field(default_factory=dict)  # end state of files to hash


@dataclass
class Totals:
    filtered: dict[str, int] = field(default_factory=dict)  # rule -> count
    filtered_paths: list[bytes] = field(default_factory=list)  # the first FILTERED_KEPT
    inputs: int = 0
    outputs: int = 0


FILTERED_KEPT = 10000


def resolve(path: bytes, dirs: dict[bytes, bytes]) -> tuple[bytes, os.stat_result | None]:
    """realpath(path) and its stat (None if it does not exist), resolving each directory once."""
    head, tail = os.path.split(path)
    real_head = dirs.get(head)
    if real_head is None:
        real_head = dirs[head] = os.path.realpath(head)
    full = os.path.join(real_head, tail) if tail else real_head
    try:
        st = os.lstat(full)
    except OSError:
        return full, None
    if stat.S_ISLNK(st.st_mode):  # a symlink is recorded as its resolved target
        full = os.path.realpath(full)
        try:
            st = os.stat(full)
        except OSError:
            return full, None
    return full, st


def decide(
    path: bytes,
    m: Merged,
    mode: int | None,
    key: Key | None,
    filters: Filters,
    out: Classified,
    totals: Totals,
) -> None:
    """The rule for one resolved path; `mode`/`key`: its end state (None: it does not exist)."""
    rule = filters.rule(path)
    if rule is None and mode is not None and not stat.S_ISREG(mode):
        rule = "not-a-file"
    if rule is not None:
        totals.filtered[rule] = totals.filtered.get(rule, 0) + 1
        if len(totals.filtered_paths) < FILTERED_KEPT:
            totals.filtered_paths.append(path)
        return
    exists = mode is not None
    if key is not None:
        out.keys[path] = key
    read, written, rdwr = m.bits & READ, m.bits & WRITTEN, m.bits & RDWR
    if written:
        if exists:
            # previous: the replaced content's hash; "" when the file existed but its old
            # content was not needed (never read), so it is known not to be new.
            out.outputs[path] = (m.pre_hash or "") if m.pre_existed else None
        if read and m.pre_existed and m.pre_hash is not None:
            out.inputs[path] = (m.pre_hash, m.pre_size)
    elif rdwr:
        # Opened read-write only: an input if the content is unchanged, else an output.
        if not exists:
            if m.pre_hash is not None:
                out.inputs[path] = (m.pre_hash, m.pre_size)
        elif m.pre_existed is False:
            out.outputs[path] = None
        elif m.pre_hash is not None:
            out.rdwr[path] = m.pre_hash
        else:
            out.inputs[path] = (None, None)
    elif read:
        if exists and m.pre_existed is False:  # O_RDONLY|O_CREAT made it: not an input
            out.outputs[path] = None
        elif exists:
            out.inputs[path] = (None, None)
        elif m.pre_hash is not None:  # read, then deleted: the content read is known
            out.inputs[path] = (m.pre_hash, m.pre_size)


def classify(facts: list[FileFact], filters: Filters, totals: Totals) -> Classified:
    """A small run's facts, all in memory."""
    filters = filters.for_run()
    merged: dict[bytes, Merged] = {}
    stats: dict[bytes, os.stat_result | None] = {}
    dirs: dict[bytes, bytes] = {}
    for fact in facts:
        path, st = resolve(fact.path, dirs)
        stats.setdefault(path, st)
        m = merged.get(path)
        if m is None:
            m = merged[path] = Merged()
        m.add(bits_of(fact), fact.pre_existed, fact.pre_hash, fact.pre_size)
    out = Classified()
    for path, m in merged.items():
        st = stats[path]
        mode = None if st is None else st.st_mode
        key = Key.of(st) if st is not None and stat.S_ISREG(st.st_mode) else None
        decide(path, m, mode, key, filters, out, totals)
    return out
