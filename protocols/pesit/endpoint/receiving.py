"""An incoming file into its spool, with ACK(SYN) only once the data before it is on disk.

Articles are handed to one thread per transfer, so reading the network never waits for the
disk. Each pass of the thread writes what arrived, makes it durable with the newest sync
point it covers, and only then lets the core answer ACK(SYN) for the points of the pass; it
hashes the bytes after that, off the acknowledgement path. The sender may keep `window` sync
points unacknowledged, which is what keeps the pipe full while a pass runs.

Why a thread of its own rather than `Offload` (the gateway's pool), like the store's writer
thread: a pass is the latency every ACK(SYN) waits for, and a pool job costs a future, a
queue hop and a task wake-up on the loop for each one; the thread sleeps on a queue, takes
everything handed over, and reports back with one `call_soon_threadsafe`. The rule it keeps
is the pool's: blocking work never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import structlog

from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.endpoint.ports import Offload, bare_name
from protocols.pesit.endpoint.sending import blocks
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.spool import PartialFile
from protocols.pesit.events import Position
from protocols.pesit.state import State
from protocols.ports import Accepted, InboxPort, Incoming, SpoolAdopter

__all__ = ["Receiver"]

FLUSH_AT = 1 << 20  # buffered bytes that start a write even without a sync point
HIGH_WATER = 8 << 20  # buffered bytes at which the loop waits for the disk
READ_BACK = 1 << 20
_GO, _END, _STOP = 1, 2, 3  # what wakes the thread: write what is there, then end, or stop
_log = structlog.get_logger(module=__name__)
T = TypeVar("T")


class Receiver:
    """Spools one transfer; `finish()` returns once the whole file is durable and hashed.

    The loop hands articles and sync points over in two deques (appends are atomic) and
    wakes the thread with a token on a `SimpleQueue` at each sync point or `FLUSH_AT` bytes:
    a C call each, nothing on the loop waits for a lock the thread holds.
    """

    def __init__(
        self,
        session: Session,
        partial: PartialFile,
        *,
        offload: Offload,
        on_durable: Callable[[Position], None],
        on_failure: Callable[[OSError], None],
    ) -> None:
        self._session = session
        self.partial = partial
        self._offload = offload
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._data: deque[bytes] = deque()
        self._points: deque[Position] = deque()
        self._signal: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._unwritten = 0  # bytes handed over and not yet written (loop side)
        self._unsignalled = 0  # bytes handed over since the thread was last woken
        self._room = asyncio.Event()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._complete = False  # the thread wrote, synced and hashed the last byte
        self._failure: OSError | None = None
        self.size = partial.durable.byte_offset
        self._thread = threading.Thread(target=self._run, name="pesit-spool", daemon=True)
        self._thread.start()

    @property
    def failure(self) -> OSError | None:
        return self._failure

    def take(self, data: bytes) -> bool:
        """Hand one article to the thread; True if the loop should now wait for `room()`."""
        size = len(data)
        self._data.append(data)
        self.size += size
        self._unwritten += size
        self._unsignalled += size
        if self._unsignalled >= FLUSH_AT:
            self._wake(_GO)
        return self._unwritten >= HIGH_WATER and self._failure is None

    async def room(self) -> None:
        """Until the disk caught up below `HIGH_WATER` (or failed, or the thread is gone)."""
        while self._unwritten >= HIGH_WATER and self._failure is None and not self._exited.done():
            self._room.clear()
            await self._room.wait()

    async def article(self, data: bytes) -> None:
        if self.take(data):
            await self.room()

    def sync_point(self, position: Position) -> None:
        self._points.append(position)
        self._wake(_GO)

    def _wake(self, signal: int) -> None:
        self._unsignalled = 0
        self._signal.put(signal)

    async def finish(self) -> None:
        """Everything received is written, durable and hashed; raises the disk's error.

        A receiver closed meanwhile (the transfer was interrupted) cancels the caller.
        """
        self._wake(_END)
        await asyncio.shield(self._exited)
        if self._failure is not None:
            raise self._failure
        if not self._complete:
            raise asyncio.CancelledError

    def incoming(self, *, connection: str, code: str) -> Incoming:
        """What the inbox is told of this received file: its peer message id is the transfer's
        identity (PI 13 and when we first saw it), kept across restarts by the spool."""
        meta = self.partial.meta
        return Incoming(
            protocol="pesit",
            direction="reception",
            source=connection,
            interface_code=code,
            connection=connection,
            peer_message_id=f"{meta.transfer_id}@{meta.started}",
            file_name=bare_name(meta.label),
            expected_size=self.size,
        )

    async def hand_over(self, inbox: InboxPort, incoming: Incoming) -> Accepted:
        """The finished spool to the inbox: adopted as a file if it can, else read back."""
        if isinstance(inbox, SpoolAdopter):
            partial = self.partial
            await self._offload(partial.close)  # ours no more: nothing may write to it now
            return await inbox.accept_spooled(
                partial.path, incoming, size=partial.size, sha256=partial.sha256
            )
        return await inbox.accept(self.chunks(), incoming)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The spooled file from its first byte, read back in bounded pieces."""
        offset = 0
        source = blocks(self._offload, self.partial.read, start=0, size=READ_BACK, end=self.size)
        async with contextlib.aclosing(source):
            async for piece in source:
                offset += len(piece)
                yield piece
        if offset != self.size:
            raise OSError(f"spool ended at {offset} of {self.size} bytes")

    async def close(self) -> None:
        """Stop the thread (what was not durable may be lost: the peer restarts before it)."""
        self._wake(_STOP)
        await asyncio.shield(self._exited)
        await self._offload(self.partial.close)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._pass():
                pass
        except BaseException as exc:  # noqa: BLE001 - a bug here must end the connection
            self._post(self._crashed, exc)
        finally:
            self._post(_settle, self._exited)

    def _pass(self) -> bool:
        """One write of everything handed over: False once there is nothing more to do."""
        signals = {self._signal.get()}
        while not self._signal.empty():  # tokens that piled up while the last pass ran
            signals.add(self._signal.get())
        if _STOP in signals:
            return False
        final = _END in signals
        points = _drained(self._points)  # points first: their data was handed over before
        chunks = _drained(self._data)
        if not (chunks or points or final):
            return True
        point = points[-1] if points else None
        try:
            self.partial.append(chunks, point, durable=final or point is not None)
        except OSError as exc:
            self._post(self._failed, exc)
            return False
        self._post(self._passed, points, sum(map(len, chunks)))  # ACK(SYN) may go now
        self.partial.digest(chunks)
        self._complete = final
        return not final

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(callback, *args)

    # -- back on the loop ------------------------------------------------------------------

    def _passed(self, points: list[Position], written: int) -> None:
        self._unwritten -= written
        if self._unwritten < HIGH_WATER:
            self._room.set()
        if points:
            self._confirm(points)

    def _failed(self, error: OSError) -> None:
        self._failure = error
        self._room.set()
        self._on_failure(error)

    def _crashed(self, error: BaseException) -> None:
        _log.error("pesit.spool_thread_crashed", error=repr(error))
        self._failure = OSError(f"spool writer failed: {error!r}")
        self._room.set()
        core = self._session.core
        if core.state is not State.CLOSED:
            core.abort(Diagnostic.CONNECTION_OTHER, now=self._session.now())
        self._session.poke()

    def _confirm(self, points: list[Position]) -> None:
        """One ACK(SYN) for the newest point settles the earlier ones too."""
        core = self._session.core
        try:
            core.confirm_durable(points[-1].point, now=self._session.now())
        except PesitLocalError:
            return  # the transfer ended meanwhile (IDT, ABORT): nothing left to acknowledge
        for position in points:
            self._on_durable(position)
        self._session.poke()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _drained(items: deque[T]) -> list[T]:
    """What `items` holds now, taken out in order (the loop may append meanwhile)."""
    return [items.popleft() for _ in range(len(items))]
