"""A job as it leaves the machine: the registration payload, and the id the registry keys it by.

`for_registry(job, home=...)` makes the canonical record: paths relative to the git root inside
a repository and with $HOME written as `~` outside one (in argv, env and the rest too), git
remotes without credentials, everything redacted once more, and what only means something on
this machine dropped (the local job id, session number and project path, the filtered system
files' names). `job_id` is the BLAKE3 of that record in a fixed encoding (sorted keys, without
`id` and `version`), so the same job sent twice, by a retry or from two machines, has one id.

The server runs `scrub` on what it receives (idempotent: a canonical record comes out unchanged)
and recomputes `job_id`, so a client that forgot to redact cannot store a secret.
"""

from __future__ import annotations

import functools
import os
import re

import blake3
import msgspec

from roar.model import IO, GitState, Job, RunContext, TrackerRun
from roar.redact import REDACTED, is_secret_name, redact_text
from roar.registry import Session

_ENCODER = msgspec.json.Encoder(order="sorted")
# Context fields added to the model after version 1: left out of the id's encoding while they
# hold their default (None), so adding a field never re-keys the jobs registered before it.
_LATER_CONTEXT = ("system", "conda", "container")
_LATER_JOB = ("request", "usage")  # the same, for the job's own fields


_JOB_FIELDS = tuple(f for f in Job.__struct_fields__ if f not in ("id", "version", "context"))
_CONTEXT_FIELDS = RunContext.__struct_fields__


def job_id(job: Job) -> str:
    """The registry id of a canonical job: 64 hex digits, stable across machines and retries.

    The encoding is that of the job as builtins (`msgspec.to_builtins(job, order="sorted")`)
    less `id`, `version` and the later fields that are None; the two levels that lose keys are
    made as dicts of the Structs' own values, and the encoder writes the rest as it would their
    builtins (the same bytes; a fifth of the registry's CPU at ingest went to to_builtins)."""
    record = {name: getattr(job, name) for name in _JOB_FIELDS}
    for name in _LATER_JOB:
        if record[name] is None:
            del record[name]
    ctx = job.context
    context = {name: getattr(ctx, name) for name in _CONTEXT_FIELDS}
    for name in _LATER_CONTEXT:
        if context[name] is None:
            del context[name]
    record["context"] = context
    return blake3.blake3(_ENCODER.encode(record)).hexdigest()


def session_hash(host: str, started: float, local_id: int) -> str:
    """A session's registry id: which machine, when, and its number in that machine's store."""
    return blake3.blake3(_ENCODER.encode([host, started, local_id])).hexdigest()


def session_record(host: str, started: float, local_id: int, project: str | None) -> Session:
    name = os.path.basename(project.rstrip("/")) if project else None
    return Session(session_hash(host, started, local_id), host, started, name or None)


# ---------------------------------------------------------------- credentials and secrets

_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/?#]*)@")


def strip_credentials(url: str) -> str:
    """A git remote without credentials: http(s) loses its userinfo, other schemes a password."""
    m = _URL_USERINFO.match(url)
    if m is None:
        return redact_text(url)
    scheme, userinfo = m["scheme"], m["userinfo"]
    if scheme.lower() in ("http://", "https://"):
        return scheme + url[m.end() :]
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{user}@{url[m.end() :]}" if user else scheme + url[m.end() :]


# The same names and values come back in every job (PATH, HOME, the project's flags): the server
# scrubs thousands of jobs a second, so the pure checks are memoized (short strings only;
# is_secret_name where it is defined).
_redact_short = functools.lru_cache(maxsize=65536)(redact_text)


def _redact(s: str) -> str:
    return _redact_short(s) if len(s) <= 512 else redact_text(s)


def _env(env: dict[str, str], home: str | None) -> dict[str, str]:
    items = tuple(env.items())
    if len(items) > MEMO_NAMES or sum(map(len, env.values())) > MEMO_CHARS:
        return _scrub_env(items, home)
    return dict(_env_memo(items, home))


def _scrub_env(items: tuple[tuple[str, str], ...], home: str | None) -> dict[str, str]:
    text = _Text(home)
    return {
        name: REDACTED if value and is_secret_name(name) else text(value) for name, value in items
    }


# A machine sends the same environment with each of its jobs: the server scrubs each one once
# (measured: 45% of scrub's time, for 16 variables a job), if it is of an ordinary size.
MEMO_NAMES, MEMO_CHARS = 64, 16384


@functools.lru_cache(maxsize=256)
def _env_memo(items: tuple[tuple[str, str], ...], home: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(_scrub_env(items, home).items())


class _Text:
    """Redaction, and $HOME -> ~, for free text (argv words, env values, sentences)."""

    def __init__(self, home: str | None) -> None:
        home = home.rstrip("/") if home else None
        self.home = re.compile(re.escape(home) + r"(?=/|$|[\s:;,'\"=])") if home else None

    def __call__(self, s: str) -> str:
        s = _redact(s)
        return self.home.sub("~", s) if self.home else s


def scrub(job: Job, home: str | None = None) -> Job:
    """Redact every free-text field and strip remote credentials; with `home`, write it as ~."""
    text = _Text(home)
    ctx = job.context
    git = ctx.git
    if git is not None:
        remotes = {name: strip_credentials(url) for name, url in git.remotes.items()}
        git = msgspec.structs.replace(git, remotes=remotes)
    return msgspec.structs.replace(
        job,
        command=text(job.command),
        argv=[text(a) for a in job.argv],
        cwd=text(job.cwd),
        context=msgspec.structs.replace(
            ctx,
            git=git,
            env=_env(ctx.env, home),
            processes=[
                msgspec.structs.replace(
                    p, argv=[text(a) for a in p.argv], exe=text(p.exe) if p.exe else p.exe
                )
                for p in ctx.processes
            ],
            blind_spots=[text(s) for s in ctx.blind_spots],
            trackers=[_tracker(t, text) for t in ctx.trackers],
            external=[text(e) for e in ctx.external],
        ),
    )


def _tracker(t: TrackerRun, text: _Text) -> TrackerRun:
    return msgspec.structs.replace(
        t,
        url=text(t.url) if t.url else t.url,
        project=text(t.project) if t.project else t.project,
        source=text(t.source),
    )


# ---------------------------------------------------------------- paths


class _Place:
    """Where a path is, said without this machine's layout: inside the git root relative to
    it ("data/x.csv", "." for the root), under $HOME as "~/...", else as it is."""

    def __init__(self, root: str | None, home: str | None) -> None:
        self.root = root.rstrip("/") if root else None
        self.home = home.rstrip("/") if home else None

    def tilde(self, path: str) -> str:
        if self.home and (path == self.home or path.startswith(self.home + "/")):
            return "~" + path[len(self.home) :]
        return path

    def __call__(self, path: str) -> str:
        if self.root and path == self.root:
            return "."
        if self.root and path.startswith(self.root + "/"):
            return path[len(self.root) + 1 :]
        return self.tilde(path)


def _io(items: list[IO], place: _Place) -> list[IO]:
    return [msgspec.structs.replace(io, path=place(io.path)) for io in items]


def for_registry(job: Job, *, home: str | None = None) -> Job:
    """The canonical record of a finished job, with its registry id (see the module docstring).

    `home` is the user's home directory (default: $HOME).
    """
    home = home if home is not None else os.environ.get("HOME")
    ctx = job.context
    git: GitState | None = ctx.git
    place = _Place(git.root if git else None, home)
    if git is not None:
        git = msgspec.structs.replace(git, root=place.tilde(git.root))
    processes = [
        msgspec.structs.replace(p, exe=place.tilde(p.exe) if p.exe else p.exe)
        for p in ctx.processes
    ]
    conda = ctx.conda
    if conda is not None:
        conda = msgspec.structs.replace(conda, prefix=place.tilde(conda.prefix))
    context: RunContext = msgspec.structs.replace(
        ctx,
        git=git,
        conda=conda,
        packages={place.tilde(k): v for k, v in ctx.packages.items()},
        processes=processes,
        filtered=msgspec.structs.replace(ctx.filtered, paths=[]),
    )
    project = os.path.basename(job.project.rstrip("/")) if job.project else None
    out = msgspec.structs.replace(
        job,
        id="",
        cwd=place(job.cwd),
        project=project or None,
        session=None,
        inputs=_io(job.inputs, place),
        outputs=_io(job.outputs, place),
        context=context,
    )
    out = scrub(out, home)
    return msgspec.structs.replace(out, id=job_id(out))
