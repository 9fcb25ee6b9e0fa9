"""Talking to roard about one run: announce it, stream its facts, deliver the record (to a
restarted roard if the first one died), or spool it to disk when no roard can take it.

Loaded off the command's critical path: `roarctl run` starts the command first where it may
(see roarctl.run) and imports this in a helper thread while the command runs. Prints nothing:
warnings go to the caller's `warn`, roard's progress to its ProgressBar.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from roar.paths import paths, private_dir, private_umask
from roar.protocol import (
    FileFact,
    Progress,
    RunDone,
    RunFiles,
    RunFinish,
    RunStart,
    RunStarted,
    frame,
)
from roarctl.client import Client, DaemonGone, checked
from roarctl.errors import RoarError
from roarctl.messages import ProgressBar
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
    client = None
    try:
        client = Client.connect(autostart=not start.early)
        reply = client.call(start, expect=RunStarted)
    except RoarError as exc:
        if client is not None:
            client.close()
        if start.step is not None:  # re-running a step needs the daemon's answer
            raise
        # Early: the delivery at the end starts roard, or says where the record went.
        warnings = [] if start.early else [f"{exc.message}; the run is recorded when roard is back"]
        return Announced(start, None, os.urandom(6).hex(), warnings=warnings)
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
    warn: Callable[[str], None],
    stream: Stream | None = None,
    progress: ProgressBar | None = None,
) -> RunDone | Path | None:
    """Send the record; on a lost daemon, restart it and send again; failing that, spool it.
    Facts streamed during the run are sent again on any new connection. Returns roard's
    answer, or the spool file the record was saved to, or None: the record is lost (`warn`
    was told why)."""
    try:
        return _deliver_once(client, finish, facts, warn, stream, progress)
    finally:
        if stream is not None:
            stream.close()


def _deliver_once(
    client: Client | None,
    finish: RunFinish,
    facts: list[FileFact],
    warn: Callable[[str], None],
    stream: Stream | None,
    progress: ProgressBar | None,
) -> RunDone | Path | None:
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
            if progress is not None:
                progress.start()
            while True:
                reply = client.recv()
                if isinstance(reply, Progress):
                    if progress is not None:
                        progress.update(reply.label, reply.done, reply.total)
                    continue
                if progress is not None:
                    progress.close()
                return checked(reply, RunDone, "RunFinish")
        except DaemonGone:
            if client is not None:
                client.close()
            client = None
            fresh = True
            if attempt == 0:
                continue
        except RoarError as exc:
            warn(exc.message)
            break
        finally:
            if client is not None:
                client.close()
                client = None
    if stream is not None:  # the record spooled must be whole: the streamed chunks too
        facts = [f for chunk in stream.replay() for f in chunk] + facts
    return _spool(finish, facts, warn)


def _spool(finish: RunFinish, facts: list[FileFact], warn: Callable[[str], None]) -> Path | None:
    """Save the record for the next roard; secrets are redacted first (nothing unredacted is
    ever stored). A failure to save costs the record, never the command's exit status."""
    from roar.redact import redact_run

    whole = msgspec.structs.replace(redact_run(finish), files=facts)
    try:
        with private_umask():  # the state directory too, when this makes it: 0700
            spool = private_dir(paths().spool)
            target = spool / f"{finish.job_id}.msgpack"
            tmp = target.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(frame(whole)[4:])
            os.replace(tmp, target)
    except OSError as exc:
        warn(
            f"could not save the record of job {finish.job_id} ({exc.strerror or exc}); it is lost"
        )
        return None
    return target
