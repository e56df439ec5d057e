"""Stream a submission's bytes to a temp file: limits and sniffing on the loop, I/O off it.

Limits are enforced on the running total *before* a chunk is written or shown to the sniffer,
so an oversize or over-long stream is cut at the first chunk that crosses the line.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from gateway.offload import run_blocking
from gateway.store import (
    ChunkHook,
    InvalidSubmission,
    PayloadTooLarge,
    StoreError,
    Submission,
    TruncatedPayload,
)
from gateway.store.payloads import PayloadDir, Spooled

FLUSH_AT = 1 << 20  # bytes buffered on the loop before one write hop


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise InvalidSubmission("data", f"chunks must be bytes, got {type(chunk).__name__}")


class Spooler:
    """One submission's journey to a complete, fsynced temp file."""

    def __init__(self, payloads: PayloadDir, sub: Submission, on_chunk: ChunkHook | None) -> None:
        self._file = payloads.new_spool()
        self._max = sub.max_size
        self._expected = sub.expected_size
        self._on_chunk = on_chunk
        self._pending: list[bytes] = []
        self._buffered = 0
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
            await run_blocking(self._flush)

    def _flush(self) -> None:
        pending, self._pending, self._buffered = self._pending, [], 0
        try:
            for data in pending:
                self._file.write(data)
        except OSError as exc:
            raise StoreError(f"cannot write the payload: {exc.strerror or exc}") from exc

    def finish(self) -> Spooled:
        """Blocking: write the rest, check the announced size, fsync."""
        self._flush()
        if self._expected is not None and self.size != self._expected:
            raise TruncatedPayload(expected=self._expected, received=self.size)
        try:
            return self._file.finish()
        except OSError as exc:
            raise StoreError(f"cannot make the payload durable: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        """Blocking: remove the temp file, whatever state it is in."""
        self._pending.clear()
        self._file.abort()
