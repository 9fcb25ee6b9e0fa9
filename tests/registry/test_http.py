"""glaas.http: a response's head and body reach the socket in one write, and a connection that
closes still sends what was written before it closed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from glaas.http import _Gathered


class _Socket:
    """A real socket pair's one end, as a transport (what a write sends is what the peer reads)."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.sends = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends += 1
        self.ours.sendall(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.ours.close()

    def get_write_buffer_size(self) -> int:
        return 0


def test_one_turns_writes_go_together() -> None:
    async def main() -> tuple[int, bytes, int, bytes]:
        sock = _Socket()
        t: Any = _Gathered(sock, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert sock.sends == 0 and t.get_write_buffer_size() == 40
        await asyncio.sleep(0)  # the turn ends
        first = sock.sends, sock.theirs.recv(1000)
        t.write(b"last")
        t.close()  # sent before the socket closes
        rest = sock.theirs.recv(1000)
        return first[0], first[1], sock.sends, rest

    sends, data, after, rest = asyncio.run(main())
    assert sends == 1
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    assert after == 2 and rest == b"last"
