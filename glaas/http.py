"""The HTTP/1.1 protocol `glaas serve` runs: uvicorn's (httptools), with what a response writes
in one turn of the event loop sent to the socket together.

uvicorn writes a response's head and its body with two `send` calls. On loopback each wakes the
client, which reads the head and sleeps again until the body comes (measured: a third of a
worker's CPU for a look-up went to those writes). Gathering the writes of one turn and sending
them at its end (`loop.call_soon`) makes one send of both: the same bytes, in the same order,
no later than the turn in which they were written."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _Gathered:
    """A transport whose writes are sent together when the loop's current turn ends."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # the rest is the transport's own
        return getattr(self._transport, name)


class Protocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        gathered: Any = _Gathered(transport, self.loop)
        super().connection_made(gathered)
