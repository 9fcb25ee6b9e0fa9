"""Which job made what a job read: the one rule behind `show`, `dag` (edges and staleness),
`lineage`, `inputs` and `diff`.

Artifacts are identified by content, so the same bytes are often written by several jobs: the
job that made them, copies of them (`cp`, `rsync`, `tar -x` of an archive), re-runs that made
the same bytes, and unrelated jobs that happen to write the same small file. The rule:

- **The source of an input** (job R read content A at path P) is a job that wrote A and
  *started before R started* (on a tie, the one recorded first). Of those, the latest that
  wrote A at P. A job is never its own source, and every link points back in time, so a walk
  upstream goes strictly back in time and cannot loop (the walks keep a visited set anyway).
- **Only when no such job wrote A at P** (the bytes reached P outside roar's view: copied by
  hand, downloaded into place) does a job that wrote A at another path count, and only if A
  is not empty, the job is in R's project (runs outside any project get no such link), it did
  not read A itself (a copy passes content on, it does not make it), and P is not a committed,
  unmodified file in the git state R started in (committed files are raw sources, whatever
  else holds the same bytes; when that commit can no longer be read, a clean file inside the
  work tree counts as committed). Of those, the earliest. So empty files, identical
  `__init__.py`s or configs do not join unrelated pipelines, and a `cp a.txt b.txt` run
  later never becomes the maker of `a.txt`.
- **The producer of a content** is the earliest job that wrote it without reading it; every
  other job that wrote it is a copy (or a re-run that made the same bytes). `show` of an
  artifact lists both; a hash given to `lineage`, `inputs` or `diff` starts at the producer,
  and a path given starts at the job that last wrote that content at that path.
- **Downstream** is the same links read the other way: the jobs made from a job's output are
  those whose inputs link to that job. From an artifact, they are the jobs that read it (at
  the path given).

Why "started before the reader started", not "finished before": start times order all jobs
once, so links cannot form cycles, and a producer still running when its consumer read its
output (two runs side by side, a writer and a reader of a stream) keeps its link. What this
gives up: a job that started first and then read what a later-started job wrote (a watcher
polling for results) gets no link to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from roar.model import GitState
from roar.protocol import show_path
from roard.store import Store
from roard.store import sources as rows
from roard.store.sources import LinkRow


@dataclass(slots=True)
class Link:
    """One input of a job and the job it links to."""

    reader: int  # the job that read (seq)
    artifact: int  # row id
    hash: str
    path: bytes
    size: int
    source: int | None  # the job it came from (seq), None: no recorded job made it


async def inputs(store: Store, seqs: list[int]) -> list[Link]:
    """Every input of these jobs with its source, by job, then path."""
    return await _settle(store, await rows.inputs(store, seqs))


async def consumers(store: Store, seqs: list[int]) -> list[Link]:
    """The inputs, of other jobs, whose source is one of these jobs, in the readers' start
    order."""
    wanted = set(seqs)
    found = await _settle(store, await rows.reads_of_outputs(store, seqs))
    return [link for link in found if link.source in wanted]


async def maker(store: Store, artifact: int, path: bytes | None) -> tuple[int, bytes] | None:
    """The job a lineage walk starts at for an artifact, and the path it wrote it at: the job
    that last wrote it at `path`, if a path was given and a job wrote it there; else its
    producer."""
    if path is not None:
        found = await rows.last_writer_at(store, artifact, path)
        if found is not None:
            return found, path
    return await rows.producer(store, artifact)


async def made_by(store: Store, digest: str, path: bytes | None) -> str | None:
    """The id of the job that made an artifact, as `maker` chooses it (None: no recorded job)."""
    artifact = await rows.artifact_id(store, digest)
    made = None if artifact is None else await maker(store, artifact, path)
    return None if made is None else (await rows.names(store, [made[0]]))[made[0]][0]


async def _settle(store: Store, found: list[LinkRow]) -> list[Link]:
    """Each row's source: the writer at its path, else the candidate elsewhere unless the path
    is a committed file of the reader's git state."""
    doubtful = [(r[0], bytes(r[3])) for r in found if r[5] is None and r[6] is not None]
    raw: set[tuple[int, bytes]] = set()
    if doubtful:
        states = await rows.git_states(store, sorted({seq for seq, _ in doubtful}))
        raw = await anyio.to_thread.run_sync(_committed, doubtful, states)
    links = []
    for reader, artifact, digest, path, size, at_path, elsewhere in found:
        path = bytes(path)
        source = at_path
        if source is None and (reader, path) not in raw:
            source = elsewhere
        links.append(Link(reader, artifact, digest, path, size, source))
    return links


def _committed(
    inputs: list[tuple[int, bytes]], states: dict[int, GitState | None]
) -> set[tuple[int, bytes]]:
    """The (reader, path) pairs whose path was a committed, unmodified file of the git state
    the reader started in. Runs in a thread: it reads git objects."""
    from roard.capture.git import committed

    asked: dict[tuple[str, str], set[str]] = {}  # (root, commit) -> paths relative to root
    candidates: list[tuple[int, bytes, tuple[str, str], str]] = []
    dirty: dict[int, set[str]] = {}
    for reader, path in inputs:
        git = states.get(reader)
        if git is None or git.commit is None:
            continue  # not in a repository, or nothing committed yet
        prefix = git.root.rstrip("/") + "/"
        shown = show_path(path)
        if not shown.startswith(prefix):
            continue  # outside the work tree
        rel = shown[len(prefix) :]
        if reader not in dirty:
            dirty[reader] = {f.path for f in git.dirty}
        if rel in dirty[reader]:
            continue  # modified, added, untracked, ...: not as committed
        key = (git.root, git.commit)
        asked.setdefault(key, set()).add(rel)
        candidates.append((reader, path, key, rel))
    tracked = {key: committed(*key, sorted(rels)) for key, rels in asked.items()}
    out = set()
    for reader, path, key, rel in candidates:
        found = tracked[key]
        if found is None or rel in found:  # unreadable: a clean file is taken as committed
            out.add((reader, path))
    return out
