"""Talking to roard: connect (starting it when none runs), handshake, request/reply."""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import time
from typing import Any, TypeVar, overload

import msgspec

from roar import __version__
from roar.paths import Paths, paths, unsafe_dir
from roar.protocol import (
    PROTOCOL_VERSION,
    Error,
    FrameError,
    Hello,
    Reply,
    Welcome,
    body_length,
    decode_reply,
    frame,
)
from roarctl.errors import RoarError

START_TIMEOUT = 15.0
VERSIONS_HINT = "roarctl and roard versions may differ: roarctl daemon stop"

R = TypeVar("R", bound=msgspec.Struct)
S = TypeVar("S", bound=msgspec.Struct)


class DaemonGone(RoarError):
    """The connection to roard broke (it died or was stopped)."""


class OtherProtocol(RoarError):
    """roard refused our Hello: it speaks another protocol (an upgrade left the old one
    running). It closes the connection, so it cannot be asked to stop: `terminate` it."""

    def __init__(self, pid: int, message: str) -> None:
        super().__init__(
            f"roard (pid {pid}) speaks another protocol: {message}", "roarctl daemon stop"
        )
        self.pid = pid


@overload
def checked(reply: Reply, expect: type[R], request: str) -> R: ...
@overload
def checked(reply: Reply, expect: tuple[type[R], type[S]], request: str) -> R | S: ...
def checked(reply: Reply, expect: Any, request: str) -> Any:
    """`reply` when it is of the type (or one of the types) `expect` names. An Error reply, or
    a reply of another type (roard and roarctl of different versions), is a RoarError: never an
    assert, which `python -O` would remove."""
    if isinstance(reply, Error):
        raise RoarError(reply.message, reply.hint, code=reply.code)
    if isinstance(reply, expect):
        return reply
    wanted = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
    raise RoarError(
        f"roard answered {request} with {type(reply).__name__}, not {wanted}", VERSIONS_HINT
    )


class Client:
    def __init__(self, sock: socket.socket, welcome: Welcome) -> None:
        self.sock = sock
        self.welcome = welcome

    @classmethod
    def connect(
        cls, autostart: bool = True, where: Paths | None = None, replace: bool = True
    ) -> Client:
        where = where or paths()
        sock = _try_connect(str(where.socket))
        if sock is None:
            if not autostart:
                raise RoarError("roard is not running", "start it with: roarctl daemon start")
            sock = start_daemon(where)
        client = cls(sock, Welcome(protocol=0, server="", pid=0))
        client.send(Hello(protocol=PROTOCOL_VERSION, client=f"roarctl {__version__}"))
        reply = client.recv()
        if isinstance(reply, Error) and reply.code == "version":
            pid = _peer_pid(sock)
            client.close()
            if not (autostart and replace):
                raise OtherProtocol(pid, reply.message)
            terminate(pid, where)
            return cls.connect(autostart=True, where=where, replace=False)  # once, never a loop
        client.welcome = reply = checked(reply, Welcome, "Hello")
        if reply.server != __version__ and autostart and replace:
            # An upgrade left the old daemon running: replace it (runs in flight are
            # delivered to the new one, as after any daemon restart).
            return cls._replace_daemon(client, where)
        return client

    @classmethod
    def _replace_daemon(cls, old: Client, where: Paths) -> Client:
        from roar.protocol import Shutdown

        try:
            old.send(Shutdown())
            old.recv()
        except RoarError:
            pass
        old.close()
        deadline = time.monotonic() + START_TIMEOUT
        while where.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return cls.connect(autostart=True, where=where, replace=False)  # once, never a loop

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: msgspec.Struct) -> None:
        try:
            self.sock.sendall(frame(message))
        except OSError as exc:
            raise DaemonGone(f"lost the connection to roard: {exc.strerror or exc}") from None

    def recv(self) -> Reply:
        try:
            length = body_length(self._exactly(4))
            return decode_reply(self._exactly(length))
        except FrameError as exc:
            raise RoarError(f"roard sent something unreadable: {exc}", VERSIONS_HINT) from None

    @overload
    def call(self, message: msgspec.Struct, expect: type[R]) -> R: ...
    @overload
    def call(self, message: msgspec.Struct, expect: tuple[type[R], type[S]]) -> R | S: ...
    def call(self, message: msgspec.Struct, expect: Any) -> Any:
        """Send a request and return its reply, of the type (or one of the types) `expect`
        names; an Error reply, or any other reply, raises a RoarError."""
        self.send(message)
        return checked(self.recv(), expect, type(message).__name__)

    def _exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            try:
                chunk = self.sock.recv(min(n, 1 << 20))
            except OSError as exc:
                raise DaemonGone(f"lost the connection to roard: {exc.strerror or exc}") from None
            if not chunk:
                raise DaemonGone("roard closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)


def _try_connect(path: str) -> socket.socket | None:
    """A connection to the user's own roard at `path`; None when none listens there. Before a
    byte is sent: the socket's directory must be the user's and not writable by others, and the
    process listening must run as the user (SO_PEERCRED). Anything else may be another user
    impersonating roard to receive the run's environment: refused."""
    unsafe = unsafe_dir(os.path.dirname(path))
    if unsafe is not None:
        raise RoarError(f"refusing to talk to roard at {path}: {unsafe}", _IMPOSTOR_HINT)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            return None
        raise RoarError(
            f"cannot reach roard at {path}: {exc.strerror}",
            f"check the permissions of {os.path.dirname(path)}",
        ) from None
    _pid, uid, _gid = _PEERCRED.unpack(creds)
    if uid != os.getuid():
        sock.close()
        raise RoarError(
            f"refusing to talk to roard at {path}: it runs as uid {uid}, not as you "
            f"(uid {os.getuid()})",
            _IMPOSTOR_HINT,
        )
    return sock


_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _peer_pid(sock: socket.socket) -> int:
    """The pid of the roard at the other end (checked to run as this user on connect)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(creds)[0])


def terminate(pid: int, where: Paths) -> None:
    """Stop a roard that cannot be asked to (OtherProtocol) with SIGTERM, which it handles as
    a Shutdown; wait until its socket is gone."""
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + START_TIMEOUT
    while where.socket.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


_IMPOSTOR_HINT = (
    "another user may be impersonating roard; set XDG_RUNTIME_DIR to a directory of your own "
    "(mode 0700), or remove that directory if it is yours by mistake"
)


def start_daemon(where: Paths) -> socket.socket:
    """Start roard in the background and wait until its socket answers."""
    import subprocess

    try:
        started = subprocess.run(
            [sys.executable, "-m", "roard", "--detach"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
            timeout=START_TIMEOUT,
            close_fds=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RoarError(f"could not start roard: {exc}") from None
    if started.returncode != 0:
        reason = started.stderr.decode(errors="replace").strip().removeprefix("roard: error: ")
        raise RoarError(
            f"could not start roard: {reason or 'it exited at once'}",
            f"its log may say more: {where.log}",
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        sock = _try_connect(str(where.socket))
        if sock is not None:
            return sock
        time.sleep(0.01)
    raise RoarError(
        "roard did not come up",
        f"see its log: {where.log} (or run `roard --log-stderr` to watch it start)",
    )
