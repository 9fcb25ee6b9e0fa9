"""roard's start-up, top to bottom, and the per-connection loop."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import sqlite3
import struct
from collections.abc import Awaitable, Callable
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
from roard import bookkeeping, handlers, limits, logs, registration, runs
from roard.logs import log
from roard.prerun import PrerunFile
from roard.state import State, config_stamp, filters
from roard.store import Store, StoreError


class AlreadyRunning(Exception):
    pass


async def run(
    paths: Paths,
    *,
    echo_logs: bool = False,
    on_ready: Callable[[], None] = lambda: None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Start roard: its directories private, lock, logs, limits, store (migrate, recover),
    socket, spool; serve until stopped. A store or setting roard cannot start with is a
    StartupError (exit 78)."""
    for directory in (paths.runtime, paths.data, paths.state, paths.config_dir):
        private_dir(directory)  # made 0700, or tightened to it (an older roar made them 0755)
    with _lock(paths.lock):
        stamp = config_stamp(paths.config)  # before the load: a change after it is seen
        cfg = _load_config(paths)
        with logs.setup(paths.log, cfg.log.level, echo=echo_logs):
            reason = "stopped"
            try:
                caps = _limits()
                with _store_lock(paths):
                    store, recovered, note = await _open_store(paths.db)
                    state = State(paths, cfg, filters(cfg, paths), PrerunFile(paths.prerun))
                    state.config_stamp = stamp
                    state.store_note = note
                    await _serve(paths, caps, store, state, recovered, on_ready, task_status)
                    reason = state.stop_reason or reason
            except StartupError as exc:
                reason = f"error: {exc}"
                raise
            except (anyio.get_cancelled_exc_class(), KeyboardInterrupt) as exc:
                reason = type(exc).__name__  # by its caller (the tests' event loop, Ctrl-C)
                raise
            except BaseException as exc:
                reason = f"error: {exc!r}"
                log.exception("roard.failed")
                raise
            finally:
                log.info("roard.stop", pid=os.getpid(), reason=reason)


class StartupError(Exception):
    """roard cannot start with this store or these settings: said in one line with what to do;
    roard exits 78 (EX_CONFIG), which its systemd unit does not restart on."""


def _limits() -> limits.Limits:
    nofile = limits.raise_nofile()
    try:
        return limits.from_env(nofile)
    except ValueError as exc:
        log.error("roard.bad_setting", error=str(exc))
        raise StartupError(str(exc)) from None


async def _open_store(path: Path) -> tuple[Store, int, str | None]:
    """The store, migrated; how many runs a dead roard left `running` (now `interrupted`); a
    note for `status` when the store was an empty file."""
    wal = Path(f"{path}-wal")
    emptied = _size(path) == 0 and not _size(wal)
    try:
        store = await Store.open(path)
        try:
            recovered = await runs.recover(store)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await store.close()
            raise
    except (StoreError, sqlite3.Error) as exc:
        message = _unusable(path, exc)
        log.error("store.unusable", store=str(path), error=message)
        raise StartupError(message) from exc
    note = None
    if emptied:  # truncated (a full disk, a bad copy): never begun afresh silently
        note = f"{path} was an empty (0-byte) file at start-up: roard began a new, empty store"
        log.warning("store.was_empty", store=str(path))
    return store, recovered, note


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _unusable(path: Path, exc: Exception) -> str:
    """One line: which store, what is wrong with it, what to do."""
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return (
            f"the store {path} is damaged ({cause}): move it aside (mv {path} {path}.damaged) "
            f"to begin an empty one; `sqlite3 {path}.damaged .recover` may save its records"
        )
    if isinstance(cause, (sqlite3.Error, OSError)):
        return (
            f"cannot use the store {path} ({cause}): check that its disk has room and that it "
            "and its directory are yours and writable"
        )
    return str(exc)  # already names the store and what to do (a newer schema: upgrade roar)


async def _serve(
    paths: Paths,
    caps: limits.Limits,
    store: Store,
    state: State,
    recovered: int,
    on_ready: Callable[[], None],
    task_status: TaskStatus[None],
) -> None:
    """Listen, then serve until state.stop is set; the store is closed when this returns."""
    try:
        activated = _socket_activated()
        listener = await _listen(paths.socket)
        try:
            # Runs in projects with env vars wait for roard; others may start before.
            try:
                await bookkeeping.refresh_prerun(store, state.prerun)
            except (StoreError, sqlite3.Error) as exc:
                message = _unusable(paths.db, exc)
                log.error("store.unusable", store=str(paths.db), error=message)
                raise StartupError(message) from exc
            log.info(
                "roard.start",
                pid=os.getpid(),
                version=__version__,
                socket=str(paths.socket),
                store=str(paths.db),
                interrupted_runs=recovered,
                nofile=caps.nofile,
                max_connections=caps.max_connections,
            )
            _notify_systemd(b"READY=1")
            on_ready()
            task_status.started()
            budget = limits.FrameBudget(caps.frame_bytes, caps.frame_timeout)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_warm_up)
                # after the socket is up: clients never wait for the spool
                tg.start_soon(_ingest_spool, store, state, caps.spool_retry)
                tg.start_soon(_stop_on_signal, state)
                if os.environ.get("ROARD_WATCH_CONFIG", "1") != "0":  # 0: where inotify is short
                    tg.start_soon(_watch_config, state)
                tg.start_soon(state.outbox.run, store)  # registration, in the background
                tg.start_soon(
                    _accept, listener, caps, lambda s: _connection(store, state, caps, budget, s)
                )
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


def _store_lock(paths: Paths) -> IO[bytes]:
    """One daemon per store too, not only per socket: two roards of one user with different
    runtime directories (a login with XDG_RUNTIME_DIR, an ssh session without it) would share
    the store, and each would take the other's runs in flight for interrupted ones at start.
    The lock sits beside the store and names the roard that holds it."""
    path = paths.data / "roard.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartupError(f"cannot use {path}: {exc.strerror or exc}") from exc
    handle = os.fdopen(fd, "r+b")  # held until shutdown
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read(512).decode(errors="replace").strip() or "another roard"
        handle.close()
        raise StartupError(
            f"{holder} serves the store {paths.db}: use it with the same XDG_RUNTIME_DIR, "
            "or stop it first"
        ) from None
    handle.truncate(0)
    handle.write(f"roard (pid {os.getpid()}, socket {paths.socket})".encode())
    handle.flush()
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
            name = signal.Signals(signum).name
            log.info("roard.signal", signal=name)
            state.stop_reason = f"signal {name}"
            state.stop.set()
            return


async def _watch_config(state: State) -> None:
    import watchfiles

    private_dir(state.paths.config_dir)
    async for _changes in watchfiles.awatch(state.paths.config_dir, stop_event=state.stop):
        state.refresh_config()  # unless a request has taken the change already


async def _ingest_spool(store: Store, state: State, every: float) -> None:
    """Runs the CLI finished while no daemon (or no store) could take them (runs.ingest_spool),
    at start-up and every `every` seconds after. Queries wait for the first pass
    (state.spool_done) so that they see those runs; new runs do not."""
    while True:
        register = registration.auto(state.config.registry)
        try:
            ingested = await runs.ingest_spool(
                store, state.filters, state.runs, state.paths.spool, register
            )
        finally:
            state.spool_done.set()
        if ingested:
            state.outbox.wake()
        await anyio.sleep(every)


# accept() failing for want of descriptors or memory: wait and accept again, never stop serving
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


async def _accept(
    listener: SocketListener,
    caps: limits.Limits,
    serve: Callable[[ByteStream], Awaitable[None]],
) -> None:
    """Accept clients, at most caps.max_connections at once: more wait in the listening
    socket's backlog (costing roard no descriptor) until one closes."""
    slots = anyio.Semaphore(caps.max_connections)
    starved = capped = False  # logged once per episode, not at every accept

    async def one(stream: ByteStream) -> None:
        try:
            await serve(stream)
        except Exception:  # a bug: it costs this connection, never the others or roard
            log.exception("connection.failed")
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        while True:
            if slots.value == 0 and not capped:
                log.warning("connection.cap_reached", max_connections=caps.max_connections)
            capped = slots.value == 0
            await slots.acquire()
            try:
                stream = await listener.accept()
            except anyio.BrokenResourceError as exc:
                slots.release()
                cause = exc.__cause__
                if not isinstance(cause, OSError) or cause.errno not in _OUT_OF_FDS:
                    raise
                if not starved:
                    log.error("connection.accept_failed", error=str(cause), nofile=caps.nofile)
                starved = True
                await anyio.sleep(limits.ACCEPT_RETRY)
                continue
            starved = False
            tg.start_soon(one, stream)


_PEERCRED = struct.Struct("3i")


class _Closed(Exception):
    """The client went away, or the stream can no longer be trusted."""


async def _connection(
    store: Store,
    state: State,
    caps: limits.Limits,
    budget: limits.FrameBudget,
    stream: ByteStream,
) -> None:
    """Serve one client: check its uid, shake hands (within caps.hello_timeout), then answer
    requests until it goes away."""
    conn = handlers.Connection(stream)
    receive = BufferedByteReceiveStream(stream)
    async with stream:
        try:
            _check_peer(stream)
            with anyio.move_on_after(caps.hello_timeout) as hello:
                await _handshake(conn, receive, budget)
            if hello.cancelled_caught:
                log.warning("connection.dropped", reason="no Hello", seconds=caps.hello_timeout)
                return
            while True:
                request = await _next_request(conn, receive, budget)
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


async def _handshake(
    conn: handlers.Connection, receive: BufferedByteReceiveStream, budget: limits.FrameBudget
) -> None:
    request = await _next_request(conn, receive, budget)
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
    conn: handlers.Connection, receive: BufferedByteReceiveStream, budget: limits.FrameBudget
) -> Request | None:
    """The next request; None (after an error reply) for a well-framed but malformed one. A
    large frame is read and decoded within the bytes all connections share (limits)."""
    try:
        length = body_length(await receive.receive_exactly(4))
    except (anyio.IncompleteRead, anyio.EndOfStream):
        raise _Closed from None
    except FrameError as exc:  # oversized: the stream cannot be resynchronized
        await conn.send(Error(code="bad-frame", message=str(exc)))
        raise _Closed from None
    held = length if length > limits.SMALL_FRAME else 0
    if held and not budget.fits(held):
        log.info("frame.waits", bytes=held, in_flight=budget.used, budget=budget.total)
    await budget.acquire(held)
    try:
        with anyio.fail_after(budget.timeout if held else None):
            body = await receive.receive_exactly(length)
        return await _decoded(conn, body)
    except (anyio.IncompleteRead, anyio.EndOfStream):
        raise _Closed from None
    except TimeoutError:
        log.warning("connection.dropped", reason="frame not sent whole", seconds=budget.timeout)
        raise _Closed from None
    finally:
        with anyio.CancelScope(shield=True):
            await budget.release(held)


async def _decoded(conn: handlers.Connection, body: bytes) -> Request | None:
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
