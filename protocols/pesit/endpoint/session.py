"""One sans-IO PeSIT core driven over a `Wire`: bytes in, events out, timers kept.

The loop is h11's: hand received bytes to the core, give each event to the application, write
what the core queued, sleep until the next byte or the core's next deadline. Work the
application runs beside the loop (making data durable, reading the file to send) calls the core
directly and then `poke()`s the loop, which flushes and re-reads the deadline. The wire wakes
the loop itself when bytes arrive: no task waits on the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from protocols.pesit.connection import PesitConnection
from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint.wire import Wire
from protocols.pesit.events import Event
from protocols.pesit.state import State

__all__ = ["EventHandler", "Session"]

EventHandler = Callable[[Event], Awaitable[None]]
_log = structlog.get_logger(module=__name__)


class Session:
    """Runs `core` over `wire` until the core is closed and the transport done."""

    def __init__(self, core: PesitConnection, wire: Wire) -> None:
        self.core = core
        self.wire = wire
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._poked = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: list[asyncio.Future[None]] = []
        self._eof = False  # the end of the stream was given to the core
        wire.on_ready = self._wake

    def now(self) -> float:
        return self._loop.time()

    def poke(self) -> None:
        """The core was called from outside the loop: flush and look at the deadline again."""
        self._poked = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
        if data:
            self.wire.write(data)
            await self.wire.drain()

    async def run(self, handle: EventHandler) -> None:
        """Serve until the core is closed and (after Tr at most) the transport too."""
        try:
            while True:
                while (event := self.core.next_event()) is not None:
                    await handle(event)
                await self.flush()
                if self._finished():
                    return
                await self._wait()
                self._feed()
                self._changed()
        finally:
            await self.close()

    def _feed(self) -> None:
        """What arrived, or the end of the stream once; else the timers' turn."""
        chunks = self.wire.take()
        now = self.now()
        for chunk in chunks:
            self.core.receive_data(chunk, now=now)
        if self.wire.ended and not self._eof:
            self._eof = True
            self.core.receive_data(b"", now=now)
        elif not chunks:
            self.core.handle_timeout(now)

    def _finished(self) -> bool:
        if self.core.state is not State.CLOSED:
            return False
        return self._eof or self.core.next_deadline() is None

    async def _wait(self) -> None:
        """Until bytes arrived, the session was poked, or the core's deadline passed."""
        if self._poked or self.wire.has_data or (self.wire.ended and not self._eof):
            self._poked = False
            return
        waiter = self._waiter = self._loop.create_future()
        deadline = self.core.next_deadline()  # now() is loop time
        timer = None if deadline is None else self._loop.call_at(deadline, self._wake)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        self._poked = False

    async def close(self) -> None:
        """Cancel side work; close the transport."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, OSError):
                _log.error("pesit.side_task_failed", error=repr(result))
        self._changed()
        await self.wire.close()
