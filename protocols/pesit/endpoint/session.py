"""One sans-IO PeSIT core driven over an asyncio stream: bytes in, events out, timers kept.

The loop is h11's: hand received bytes to the core, give each event to the application, write
what the core queued, sleep until the next byte or the core's next deadline. Work the
application runs beside the loop (making data durable, reading the file to send) calls the core
directly and then `poke()`s the loop, which flushes and re-reads the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from protocols.pesit.connection import PesitConnection
from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.events import Event
from protocols.pesit.state import State

__all__ = ["READ_LIMIT", "EventHandler", "Session", "peer_certificate"]

EventHandler = Callable[[Event], Awaitable[None]]
READ_SIZE = 262144
READ_LIMIT = 2 * READ_SIZE  # StreamReader limit: the transport pauses at twice this, not at 128 KB
_TRANSPORT_ERRORS = (OSError, ssl.SSLError, EOFError)
_log = structlog.get_logger(module=__name__)


def peer_certificate(writer: asyncio.StreamWriter) -> bytes | None:
    """The DER certificate the TLS peer authenticated with, if any."""
    tls = writer.get_extra_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject):
        return None
    return tls.getpeercert(binary_form=True)


class Session:
    """Runs `core` over (`reader`, `writer`) until the core is closed and the transport done."""

    def __init__(
        self,
        core: PesitConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.core = core
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._reading: asyncio.Task[None] | None = None
        self._received: bytes | None = None  # the mailbox between the reader and the loop
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: list[asyncio.Future[None]] = []
        self._eof = False

    def now(self) -> float:
        return self._loop.time()

    def poke(self) -> None:
        """The core was called from outside the loop: flush and look at the deadline again."""
        self._wake.set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run `work` beside the loop; it is cancelled when the session ends."""
        task = self._loop.create_task(self._guarded(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """A bug in side work ends the connection (ABORT 3/399) instead of stalling it."""
        try:
            await work
        except Exception:  # noqa: BLE001 - the peer must not wait for a task that died
            _log.exception("pesit.side_task_crashed", task=name)
            if self.core.state is not State.CLOSED:
                self.core.abort(Diagnostic.CONNECTION_OTHER, now=self.now())
            self.poke()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` holds, tested after each input the core takes."""
        while not condition():
            watcher: asyncio.Future[None] = self._loop.create_future()
            self._watchers.append(watcher)
            await watcher

    def _changed(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)

    async def flush(self) -> None:
        data = self.core.data_to_send()  # one write: TLS cuts it into full records
        if data and not self._writer.is_closing():
            self._writer.write(data)
            with contextlib.suppress(*_TRANSPORT_ERRORS):
                await self._writer.drain()

    async def run(self, handle: EventHandler) -> None:
        """Serve until the core is closed and (after Tr at most) the transport too."""
        self._reading = self._loop.create_task(self._read_loop(), name="pesit-read")
        try:
            while True:
                while (event := self.core.next_event()) is not None:
                    await handle(event)
                await self.flush()
                if self._finished():
                    return
                await self._wait()
                data, self._received = self._received, None
                if data is not None:
                    self._room.set()
                    self._eof = not data
                    self.core.receive_data(data, now=self.now())
                else:
                    self.core.handle_timeout(self.now())
                self._changed()
        finally:
            await self.close()

    def _finished(self) -> bool:
        if self.core.state is not State.CLOSED:
            return False
        return self._eof or self.core.next_deadline() is None

    async def _wait(self) -> None:
        """Until bytes arrived, the session was poked, or the core's deadline passed."""
        if self._received is None and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self.core.next_deadline()):  # now() is loop time
                    await self._wake.wait()
        self._wake.clear()

    async def _read_loop(self) -> None:
        """One chunk at a time into the mailbox; the next read waits until it is taken."""
        while True:
            try:
                data = await self._reader.read(READ_SIZE)
            except _TRANSPORT_ERRORS as exc:
                _log.info("pesit.transport_lost", error=type(exc).__name__, detail=str(exc))
                data = b""
            self._room.clear()
            self._received = data
            self._wake.set()
            if not data:
                return
            await self._room.wait()

    async def close(self) -> None:
        """Cancel side work and the pending read; close the transport."""
        pending = [*self._tasks, *([self._reading] if self._reading else [])]
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, _TRANSPORT_ERRORS):
                _log.error("pesit.side_task_failed", error=repr(result))
        self._reading = None
        self._changed()
        if not self._writer.is_closing():
            with contextlib.suppress(*_TRANSPORT_ERRORS):
                self._writer.close()
        with contextlib.suppress(*_TRANSPORT_ERRORS, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 5.0)
