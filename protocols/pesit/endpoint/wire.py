"""The transport end of a PeSIT session: an asyncio `BufferedProtocol` the session reads from.

TLS decrypts straight into the protocol's buffer and each read is kept as one `bytes` (the only
copy before the core cuts units out of it as views), where a `StreamReader` copied each chunk
three times and needed a task of its own to wait on. What arrives waits in `take()` for the
session; past `limit` bytes not taken, reading pauses, so a slow application holds the peer
back instead of filling memory. Writes go straight to the transport, with `drain()` waiting
while asyncio says the transport's buffer is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable

import structlog

__all__ = ["READ_LIMIT", "READ_SIZE", "Wire"]

READ_SIZE = 262144  # one TLS read burst at most
READ_LIMIT = 2 * READ_SIZE  # bytes received and not yet taken before reading pauses
_log = structlog.get_logger(module=__name__)


def _nothing() -> None:
    return None


class Wire(asyncio.BufferedProtocol):
    """One connection's bytes in and out; `on_ready` is called whenever `take()` has news."""

    def __init__(self, *, limit: int = READ_LIMIT) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.on_ready: Callable[[], None] = _nothing
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._received: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended = False  # the peer closed, or the connection was lost

    # -- what asyncio calls ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        del sizehint
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._received.append(bytes(self._buffer[:nbytes]))
        self._size += nbytes
        if self._size >= self._limit and not self._reading_paused:
            self._reading_paused = True
            self._pause(True)
        self.on_ready()

    def eof_received(self) -> None:
        self.ended = True
        self.on_ready()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:  # the session sees an end of stream either way
            _log.info("pesit.transport_lost", error=type(exc).__name__, detail=str(exc))
        self.ended = True
        _settle(self._writable)
        _settle(self._lost)
        self.on_ready()

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        _settle(self._writable)

    # -- what the session calls -------------------------------------------------------------

    @property
    def has_data(self) -> bool:
        """Bytes arrived that `take()` has not handed out yet."""
        return bool(self._received)

    def take(self) -> list[bytes]:
        """The reads since the last call, in order (reading resumes if it was paused)."""
        chunks = list(self._received)
        self._received.clear()
        self._size = 0
        if self._reading_paused:
            self._reading_paused = False
            self._pause(False)
        return chunks

    def write(self, data: bytes) -> None:
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        """Until the transport takes more (at once when it is not full, or is gone)."""
        waiter = self._writable
        if waiter is not None and not waiter.done() and not self.ended:
            await asyncio.shield(waiter)

    def peer_certificate(self) -> bytes | None:
        """The DER certificate the TLS peer authenticated with, if any."""
        tls = None if self.transport is None else self.transport.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None

    async def close(self, *, timeout: float = 5.0) -> None:
        """Close the transport and wait (at most `timeout`) for it to be gone."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._lost), timeout)

    def forget(self) -> None:
        """The transport was closed under another protocol (a failed handshake): it is gone."""
        self.ended = True
        _settle(self._lost)

    def _pause(self, paused: bool) -> None:
        transport = self.transport
        if not isinstance(transport, asyncio.ReadTransport) or transport.is_closing():
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()


def _settle(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
