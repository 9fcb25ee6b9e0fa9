"""Talking to roard about one run: announce it, stream its facts, deliver the record (to a
restarted roard if the first one died), or spool it to disk when no roard can take it.

Loaded off the command's critical path: `roarctl run` starts the command first where it may
(see roarctl.run) and imports this in a helper thread while the command runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import IO

import msgspec

from roar.paths import paths
from roar.protocol import (
    Error,
    FileFact,
    Progress,
    RunDone,
    RunFiles,
    RunFinish,
    RunStart,
    RunStarted,
    frame,
)
from roarctl.client import Client, DaemonGone
from roarctl.errors import RoarError
from roarctl.record import CHUNK  # facts per RunFiles message, as streamed during the run


class Announced:
    """roard's answer to a run's start (or a stand-in when roard could not be reached)."""

    def __init__(
        self,
        start: RunStart,
        client: Client | None,
        job_id: str,
        inject: list[bytes] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.start = start
        self.client = client
        self.job_id = job_id
        self.inject = inject or []
        self.warnings = warnings or []


def announce(start: RunStart) -> Announced:
    """Register the run with roard; a run goes ahead even when roard cannot be reached.

    An early start (the command already runs, start.early) never starts or replaces roard
    here: this runs beside the tracer, whose waitpid(-1) must not meet other children. The
    record then goes to a roard started at the end."""
    try:
        client = Client.connect(autostart=not start.early)
        reply = client.call(start)
    except RoarError as exc:
        if start.step is not None:  # re-running a step needs the daemon's answer
            raise
        # Early: the delivery at the end starts roard, or says where the record went.
        warnings = [] if start.early else [f"{exc.message}; the run is recorded when roard is back"]
        return Announced(start, None, os.urandom(6).hex(), warnings=warnings)
    assert isinstance(reply, RunStarted)
    if reply.refuse:
        client.close()
        raise RoarError(f"not running: {reply.refuse}")
    return Announced(start, client, reply.job_id, reply.inject, reply.warnings)


class Stream:
    """Facts flushed during the run: sent to roard at once (on the run's connection) and kept
    in an unlinked temporary file, so that a roard that dies mid-run can be sent them again
    (or they can be spooled) without holding them in memory."""

    def __init__(self, client: Client | None, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self.sent_ok = client is not None  # every chunk so far reached `client`
        self.file: IO[bytes] | None = None
        self.chunks = 0

    def __call__(self, facts: list[FileFact]) -> None:
        if self.file is None:
            import tempfile

            self.file = tempfile.NamedTemporaryFile(prefix="roar-facts-")  # noqa: SIM115
        body = msgspec.msgpack.encode(facts)
        self.file.write(len(body).to_bytes(4, "big") + body)
        self.chunks += 1
        if self.sent_ok and self.client is not None:
            try:
                self.client.send(RunFiles(job_id=self.job_id, files=facts))
            except DaemonGone:
                self.sent_ok = False

    def replay(self) -> Iterator[list[FileFact]]:
        if self.file is None:
            return
        f = self.file
        f.flush()
        f.seek(0)
        while header := f.read(4):
            body = f.read(int.from_bytes(header, "big"))
            yield msgspec.msgpack.decode(body, type=list[FileFact])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def deliver(
    client: Client | None,
    finish: RunFinish,
    facts: list[FileFact],
    quiet: bool,
    stream: Stream | None = None,
) -> RunDone | None:
    """Send the record; on a lost daemon, restart it and send again; failing that, spool it.
    Facts streamed during the run are sent again on any new connection."""
    try:
        return _deliver_once(client, finish, facts, quiet, stream)
    finally:
        if stream is not None:
            stream.close()


def _deliver_once(
    client: Client | None,
    finish: RunFinish,
    facts: list[FileFact],
    quiet: bool,
    stream: Stream | None,
) -> RunDone | None:
    # The run's own connection already carries the streamed chunks, unless sending failed;
    # any new connection (a restarted roard) is sent them again first.
    fresh = stream is not None and not stream.sent_ok
    for attempt in range(2):
        try:
            if client is None or fresh:
                if client is not None:
                    client.close()
                client = Client.connect()
                if stream is not None:
                    for chunk in stream.replay():
                        client.send(RunFiles(job_id=finish.job_id, files=chunk))
            for i in range(0, len(facts), CHUNK):
                client.send(RunFiles(job_id=finish.job_id, files=facts[i : i + CHUNK]))
            client.send(finish)
            bar = _ProgressBar(quiet)
            while True:
                reply = client.recv()
                if isinstance(reply, Progress):
                    bar.update(reply)
                    continue
                bar.close()
                if isinstance(reply, Error):
                    raise RoarError(reply.message, reply.hint)
                assert isinstance(reply, RunDone)
                return reply
        except DaemonGone:
            if client is not None:
                client.close()
            client = None
            fresh = True
            if attempt == 0:
                continue
        except RoarError as exc:
            print(f"roarctl: warning: {exc.message}", file=sys.stderr)
            break
        finally:
            if client is not None:
                client.close()
                client = None
    if stream is not None:  # the record spooled must be whole: the streamed chunks too
        facts = [f for chunk in stream.replay() for f in chunk] + facts
    _spool(finish, facts)
    return None


def _spool(finish: RunFinish, facts: list[FileFact]) -> None:
    """Save the record for the next roard; secrets are redacted first (nothing unredacted is
    ever stored). A failure to save costs the record, never the command's exit status."""
    from roar.redact import redact_run

    whole = msgspec.structs.replace(redact_run(finish), files=facts)
    try:
        spool = paths().spool
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = spool / f"{finish.job_id}.msgpack"
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(frame(whole)[4:])
        os.replace(tmp, target)
    except OSError as exc:
        print(
            f"roarctl: warning: could not save the record of job {finish.job_id} "
            f"({exc.strerror or exc}); it is lost",
            file=sys.stderr,
        )


class _ProgressBar:
    """A one-line bar on stderr, shown only on a terminal and only once work passes a second
    (ROAR_PROGRESS_AFTER seconds)."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.after = float(os.environ.get("ROAR_PROGRESS_AFTER", "1.0"))
        self.shown = False
        self.began = time.monotonic()

    def update(self, p: Progress) -> None:
        if not self.enabled or time.monotonic() - self.began < self.after or p.total <= 0:
            return
        frac = min(1.0, p.done / p.total)
        width = 30
        filled = int(frac * width)
        sys.stderr.write(
            f"\rroar: {p.label} [{'#' * filled}{' ' * (width - filled)}] {frac:4.0%} "
            f"{_size(p.done)}/{_size(p.total)}"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}TB"
