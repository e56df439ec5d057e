"""An incoming file into its spool, with ACK(SYN) only once the data before it is on disk.

Articles are buffered on the loop and written by one worker task beside it, so reading the
network never waits for the disk. Each pass of the worker writes what arrived, fsyncs, logs
the newest sync point it covers, and only then lets the core answer ACK(SYN) for it (one
ACK(SYN) settles every earlier pending point too). The sender may keep `window` sync points
unacknowledged, which is what keeps the pipe full while an fsync runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from protocols.pesit.diagnostics import PesitLocalError
from protocols.pesit.endpoint.ports import Offload
from protocols.pesit.endpoint.sending import blocks
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.spool import PartialFile
from protocols.pesit.events import Position

__all__ = ["Receiver"]

FLUSH_AT = 1 << 20  # buffered bytes that start a write even without a sync point
HIGH_WATER = 8 << 20  # buffered bytes at which the loop waits for the disk
READ_BACK = 1 << 20


class Receiver:
    """Spools one transfer; `finish()` returns once the whole file is durable."""

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
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._points: list[Position] = []
        self._final = False
        self._due = asyncio.Event()
        self._idle = asyncio.Event()
        self._failure: OSError | None = None
        self.size = partial.durable.byte_offset
        self._worker = session.spawn(self._work(), name="pesit-spool")

    @property
    def failure(self) -> OSError | None:
        return self._failure

    async def article(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= FLUSH_AT:
            self._due.set()
        if self._buffered >= HIGH_WATER and self._failure is None:
            self._idle.clear()
            await self._idle.wait()

    def sync_point(self, position: Position) -> None:
        self._points.append(position)
        self._due.set()

    async def finish(self) -> None:
        """Everything received is written and fsynced; raises the disk's error if it failed."""
        self._final = True
        self._due.set()
        await asyncio.shield(self._worker)
        if self._failure is not None:
            raise self._failure

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
        """Stop the worker (what was not durable may be lost: the peer restarts before it)."""
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        await self._offload(self.partial.close)

    async def _work(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            while self._chunks or self._points or self._final:
                chunks, self._chunks, self._buffered = self._chunks, [], 0
                points, self._points = self._points, []
                final = self._final
                point = points[-1] if points else None
                try:
                    await self._offload(self._write, chunks, point, sync=final or point is not None)
                except OSError as exc:
                    self._failure = exc
                    self._idle.set()
                    self._on_failure(exc)
                    return
                self._idle.set()
                if point is not None:
                    self._confirm(points)
                if final and not self._chunks and not self._points:
                    return

    def _write(self, chunks: list[bytes], point: Position | None, *, sync: bool) -> None:
        self.partial.append(chunks, point, durable=sync)

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
