"""roard's start-up, top to bottom, and the per-connection loop."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from roar import __version__, config
from roar.errors import Invalid
from roar.paths import Paths, private_dir
from roar.protocol import (
    PROTOCOL_VERSION,
    Error,
    FrameError,
    Hello,
    Request,
    Welcome,
    body_length,
    decode_request,
)
from roard import bookkeeping, handlers, logs, registration, runs
from roard.logs import log
from roard.prerun import PrerunFile
from roard.state import State, filters
from roard.store import Store


class AlreadyRunning(Exception):
    pass


async def run(
    paths: Paths,
    *,
    echo_logs: bool = False,
    on_ready: Callable[[], None] = lambda: None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Start roard: its directories private, lock, logs, store (migrate, recover), socket,
    spool; serve until stopped."""
    for directory in (paths.runtime, paths.data, paths.state, paths.config_dir):
        private_dir(directory)  # made 0700, or tightened to it (an older roar made them 0755)
    with _lock(paths.lock):
        cfg = _load_config(paths)
        with logs.setup(paths.log, cfg.log.level, echo=echo_logs):
            store = await Store.open(paths.db)
            try:
                recovered = await runs.recover(store)
                state = State(paths, cfg, filters(cfg, paths), PrerunFile(paths.prerun))
                activated = _socket_activated()
                listener = await _listen(paths.socket)
                try:
                    # Runs in projects with env vars wait for roard; others may start before.
                    await bookkeeping.refresh_prerun(store, state.prerun)
                    log.info(
                        "roard.start",
                        pid=os.getpid(),
                        version=__version__,
                        socket=str(paths.socket),
                        store=str(paths.db),
                        interrupted_runs=recovered,
                    )
                    _notify_systemd(b"READY=1")
                    on_ready()
                    task_status.started()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_warm_up)
                        # after the socket is up: clients never wait for the spool
                        tg.start_soon(_ingest_spool, store, state)
                        tg.start_soon(_stop_on_signal, state)
                        tg.start_soon(_watch_config, state)
                        tg.start_soon(state.outbox.run, store)  # registration, in the background
                        tg.start_soon(listener.serve, lambda s: _connection(store, state, s))
                        await state.stop.wait()
                        tg.cancel_scope.cancel()
                finally:
                    _notify_systemd(b"STOPPING=1")
                    state.prerun.remove()  # from now on, runs wait for (and start) the next roard
                    with anyio.CancelScope(shield=True):
                        await listener.aclose()
                    if not activated:  # systemd's socket stays, for its next start
                        _unlink_socket(paths.socket)
            finally:
                with anyio.CancelScope(shield=True):
                    await store.close()
                log.info("roard.stop", pid=os.getpid())


def _lock(path: Path) -> IO[bytes]:
    """One daemon per user: an exclusive lock held for the daemon's lifetime."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    handle = os.fdopen(fd, "ab")  # held until shutdown
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunning(f"another roard holds {path}") from None
    return handle


def _load_config(paths: Paths) -> config.Config:
    try:
        return config.load(paths.config)
    except config.ConfigError as exc:
        log.warning("config.invalid", error=str(exc))
        return config.Config()


async def _listen(path: Path) -> SocketListener:
    """The listening socket: systemd's (socket activation) or our own, mode 0600."""
    if _socket_activated():
        sock = socket.socket(fileno=3)
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
        return await SocketListener.from_socket(sock)
    _remove_stale_socket(path)
    old = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return listener


def _socket_activated() -> bool:
    return (
        os.environ.get("LISTEN_PID") == str(os.getpid())
        and int(os.environ.get("LISTEN_FDS", "0")) > 0
    )


def _remove_stale_socket(path: Path) -> None:
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            path.unlink(missing_ok=True)
            return
        raise
    else:
        raise AlreadyRunning(f"a daemon is already answering on {path}")
    finally:
        probe.close()


def _unlink_socket(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _notify_systemd(state: bytes) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(state, address)
        except OSError:
            pass


async def _warm_up() -> None:
    """Import pygit2 (~35 ms) off the request path, so the first run or status is not slower."""

    def load() -> None:
        import pygit2  # noqa: F401

    await anyio.to_thread.run_sync(load)


async def _stop_on_signal(state: State) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("roard.signal", signal=signal.Signals(signum).name)
            state.stop.set()
            return


async def _watch_config(state: State) -> None:
    import watchfiles

    private_dir(state.paths.config_dir)
    async for _changes in watchfiles.awatch(state.paths.config_dir, stop_event=state.stop):
        try:
            cfg = config.load(state.paths.config)
        except config.ConfigError as exc:
            log.warning("config.invalid", error=str(exc), kept="previous")
            continue
        state.configure(cfg)
        logs.set_level(cfg.log.level)
        log.info("config.reloaded", path=str(state.paths.config))


async def _ingest_spool(store: Store, state: State) -> None:
    """Runs the CLI finished while no daemon could take them (runs.ingest_spool). Queries wait
    for this (state.spool_done) so that they see those runs; new runs do not."""
    register = registration.auto(state.config.registry)
    try:
        await runs.ingest_spool(store, state.filters, state.runs, state.paths.spool, register)
    finally:
        state.spool_done.set()
        state.outbox.wake()


_PEERCRED = struct.Struct("3i")


class _Closed(Exception):
    """The client went away, or the stream can no longer be trusted."""


async def _connection(store: Store, state: State, stream: ByteStream) -> None:
    """Serve one client: check its uid, shake hands, then answer requests until it goes away."""
    conn = handlers.Connection(stream)
    receive = BufferedByteReceiveStream(stream)
    async with stream:
        try:
            _check_peer(stream)
            await _handshake(conn, receive)
            while True:
                request = await _next_request(conn, receive)
                if request is not None:
                    await handlers.handle(store, state, conn, request)
        except PermissionError as exc:
            log.warning("connection.refused", reason=str(exc))
            await _try_send(conn, Error(code="forbidden", message=str(exc)))
        except (_Closed, *handlers.GONE):
            pass
        finally:
            await handlers.disconnected(store, state, conn)


def _check_peer(stream: ByteStream) -> None:
    raw = stream.extra(SocketAttribute.raw_socket)
    creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(creds)
    if uid != os.getuid():
        raise PermissionError(f"this roard belongs to uid {os.getuid()}, not to uid {uid}")


async def _handshake(conn: handlers.Connection, receive: BufferedByteReceiveStream) -> None:
    request = await _next_request(conn, receive)
    if request is None:  # unreadable: answered already, once
        raise _Closed
    if not isinstance(request, Hello) or request.protocol != PROTOCOL_VERSION:
        await conn.send(
            Error(
                code="version",
                message=f"roard speaks protocol {PROTOCOL_VERSION}; send Hello first",
                hint="after upgrading roar, restart the daemon: roarctl daemon stop",
            )
        )
        raise _Closed
    await conn.send(Welcome(protocol=PROTOCOL_VERSION, server=__version__, pid=os.getpid()))


async def _next_request(
    conn: handlers.Connection, receive: BufferedByteReceiveStream
) -> Request | None:
    """The next request; None (after an error reply) for a well-framed but malformed one."""
    try:
        length = body_length(await receive.receive_exactly(4))
        body = await receive.receive_exactly(length)
    except (anyio.IncompleteRead, anyio.EndOfStream):
        raise _Closed from None
    except FrameError as exc:  # oversized: the stream cannot be resynchronized
        await conn.send(Error(code="bad-frame", message=str(exc)))
        raise _Closed from None
    try:
        return decode_request(body)
    except FrameError as exc:
        await conn.send(Error(code="bad-frame", message=str(exc)))
    except Invalid as exc:  # a known message with a value of the wrong type or out of range
        await conn.send(Error(code=exc.code, message=exc.message))
    return None


async def _try_send(conn: handlers.Connection, message: Error) -> None:
    try:
        await conn.send(message)
    except handlers.GONE:
        pass
