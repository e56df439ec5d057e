"""Stream a submission's bytes to a temp file: limits and sniffing on the loop, I/O off it.

Limits are enforced on the running total *before* a chunk is written or shown to the sniffer,
so an oversize or over-long stream is cut at the first chunk that crosses the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path

from gateway.offload import run_blocking
from gateway.store import (
    ChunkHook,
    InvalidSubmission,
    PayloadTooLarge,
    StoreError,
    Submission,
    TruncatedPayload,
)
from gateway.store.payloads import PayloadDir
from gateway.store.tempfiles import Spooled

FLUSH_AT = 1 << 20  # bytes buffered on the loop before one write hop
SYNC_EVERY = 16 << 20  # bytes written between two fdatasyncs: the final fsync stays short


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise InvalidSubmission("data", f"chunks must be bytes, got {type(chunk).__name__}")


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned flush's failure is not an unhandled error


class Spooler:
    """One submission's journey to a complete temp file (made durable when it is placed).

    Writes leave the loop in batches of `FLUSH_AT` bytes, one batch in flight while the next
    one fills, so hashing and writing overlap the transfer. Every `SYNC_EVERY` bytes a sync of
    what is already written starts beside the writes (one at a time), so a large payload's
    final fsync does not wait for all of it and the transfer never stalls on the disk. A sync
    that failed is raised before the payload can be sealed: after a failed fdatasync Linux may
    report the next one clean although the pages were lost.
    """

    def __init__(self, payloads: PayloadDir, sub: Submission, on_chunk: ChunkHook | None) -> None:
        self.file = payloads.new_spool()
        self._max = sub.max_size
        self._expected = sub.expected_size
        self._on_chunk = on_chunk
        self._pending: list[bytes] = []
        self._buffered = 0
        self._unsynced = 0
        self._inflight: asyncio.Future[None] | None = None
        self._syncing: asyncio.Future[None] | None = None
        self.size = 0
        if self._max is not None and self._expected is not None and self._expected > self._max:
            raise PayloadTooLarge(limit=self._max, received=self._expected)

    async def feed_all(self, data: object) -> None:
        """Take `bytes` or an async iterable of chunks; raises before anything is recorded."""
        if isinstance(data, bytes | bytearray | memoryview):
            await self.feed(data)
        elif isinstance(data, AsyncIterable):
            async for chunk in data:
                await self.feed(chunk)
        else:
            raise InvalidSubmission("data", f"expected bytes or chunks, got {type(data).__name__}")
        await self.drain_all()

    async def feed(self, chunk: object) -> None:
        """Count, check, show to the sniffer, buffer; write out once enough is buffered."""
        data = _as_bytes(chunk)
        if not data:
            return
        self.size += len(data)
        if self._max is not None and self.size > self._max:
            raise PayloadTooLarge(limit=self._max, received=self.size)
        if self._expected is not None and self.size > self._expected:
            raise TruncatedPayload(expected=self._expected, received=self.size)
        if self._on_chunk is not None:
            self._on_chunk(data)
        self._pending.append(data)
        self._buffered += len(data)
        if self._buffered >= FLUSH_AT:
            await self.drain()
            self._start_sync()
            self._unsynced += self._buffered
            pending, self._pending, self._buffered = self._pending, [], 0
            self._inflight = asyncio.ensure_future(run_blocking(self._write, pending))
            self._inflight.add_done_callback(_retrieve)

    def _start_sync(self) -> None:
        """Everything before the batch about to go is written: sync it, unless one is running."""
        if self._syncing is not None:
            if not self._syncing.done():
                return
            self._raise_failed_sync()
        if self._unsynced >= SYNC_EVERY:
            self._unsynced = 0
            self._syncing = asyncio.ensure_future(run_blocking(self._sync))
            self._syncing.add_done_callback(_retrieve)

    def _raise_failed_sync(self) -> None:
        syncing, self._syncing = self._syncing, None
        error = None if syncing is None or syncing.cancelled() else syncing.exception()
        if error is not None:
            raise error

    async def drain(self) -> None:
        """Wait for the batch in flight; its failure (disk full...) is raised here."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await asyncio.shield(inflight)

    async def drain_all(self) -> None:
        """The batch and the sync in flight: both settled, either failure raised."""
        await self.drain()
        syncing = self._syncing
        if syncing is not None:
            await asyncio.shield(syncing)
            self._raise_failed_sync()

    def _write(self, pending: list[bytes]) -> None:
        try:
            self.file.write_all(pending)
        except OSError as exc:
            raise StoreError(f"cannot write the payload: {exc.strerror or exc}") from exc

    def _sync(self) -> None:
        try:
            self.file.sync_data()
        except OSError as exc:
            raise StoreError(f"cannot sync the payload: {exc.strerror or exc}") from exc

    def finish(self) -> Spooled:
        """Blocking, once drained: write the rest, check the announced size, seal."""
        pending, self._pending, self._buffered = self._pending, [], 0
        self._write(pending)
        if self._expected is not None and self.size != self._expected:
            raise TruncatedPayload(expected=self._expected, received=self.size)
        return self.file.seal()

    def abort(self) -> None:
        """Blocking: remove the temp file, whatever state it is in (a write in flight too)."""
        self._pending.clear()
        self.file.abort()


class AdoptedSpool(Spooler):
    """A `Spooler` whose temp an endpoint wrote and hashed (`Store.adopt`): nothing to write,
    the digest is the endpoint's; `_settle` places it like any temp."""

    def __init__(self, payloads: PayloadDir, sub: Submission, *, sha256: str, size: int) -> None:
        super().__init__(payloads, sub, None)
        self._sha256 = sha256
        self.size = size

    def take(self, source: Path) -> None:
        """Blocking: move `source` in, once it is seen to hold as many bytes as announced."""
        found = source.stat().st_size
        if found != self.size:
            raise TruncatedPayload(expected=self.size, received=found)
        self.file.adopt(source)

    def finish(self) -> Spooled:
        """Blocking, like `Spooler.finish`: nothing is left to write, the digest is known."""
        return Spooled(self.file.name, self._sha256, self.size)
