"""One upload streamed to the inbox port while it arrives; durable only when it completes.

Writes are handed to `InboxPort.accept` as an async iterable the moment they are in order, so a
large file is hashed and spooled during the transfer instead of after it. The acceptance ends
only when the upload *completes* (the client's CLOSE, or the rename of `x.part` to `x`): then
the stream ends and the port answers once payload and record are durable. Aborting (session
lost, refused write) raises inside the iteration, so the store drops its temporary file and
nothing is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Self

from protocols.errors import RaccordError
from protocols.ports import Accepted, InboxPort, Incoming, RefusalKind, TransferRefused
from protocols.sftp.paths import PathRefused
from protocols.sftp.ranges import Sequencer


class UploadAborted(RaccordError):
    """Raised into the inbox's iteration: the client never completed this upload."""


class ChunkStream:
    """A bounded hand-off from SFTP writes (producer) to the inbox's iteration (consumer)."""

    def __init__(self, *, limit: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._bytes = 0
        self._limit = limit
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._ended = False
        self._error: BaseException | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._bytes -= len(chunk)
                if self._bytes <= self._limit:
                    self._writable.set()
                return chunk
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()

    def wake(self) -> None:
        """Let a waiting producer look again (the consumer finished or failed)."""
        self._writable.set()

    async def push(self, chunk: bytes, *, gone: asyncio.Future[Accepted]) -> None:
        """Queue `chunk`; wait while too much is queued, unless the consumer is `gone`."""
        self._chunks.append(chunk)
        self._bytes += len(chunk)
        self._readable.set()
        while self._bytes > self._limit and not gone.done():
            self._writable.clear()
            await self._writable.wait()

    def end(self) -> None:
        self._ended = True
        self._readable.set()

    def fail(self, error: BaseException) -> None:
        self._chunks.clear()
        self._bytes = 0
        self._error = error
        self._readable.set()


class Upload:
    """A deposit in progress: ordered writes streamed to the inbox port, then completed."""

    def __init__(
        self,
        inbox: InboxPort,
        incoming: Incoming,
        *,
        max_size: int,
        window: int,
        buffer: int,
    ) -> None:
        self.incoming = incoming
        self.started = time.monotonic()
        self.staged = False  # closed under a temporary name, waiting for its rename
        self._max_size = max_size
        self._sequencer = Sequencer(window=window)
        self._stream = ChunkStream(limit=buffer)
        self._failure: PathRefused | TransferRefused | None = None
        self._task: asyncio.Future[Accepted] = asyncio.ensure_future(
            inbox.accept(self._stream, incoming)
        )
        self._task.add_done_callback(lambda _task: self._stream.wake())

    @property
    def failure(self) -> PathRefused | TransferRefused | None:
        """Why the upload was refused, once it was (it can then only be dropped)."""
        return self._failure

    @property
    def size(self) -> int:
        """Bytes received in order so far."""
        return self._sequencer.position

    async def write(self, offset: int, data: bytes) -> None:
        """Take one SFTP write; raise the refusal as soon as the port or a limit refuses."""
        self._check_refused()
        end = offset + len(data)
        if end > self._max_size:
            self._failure = TransferRefused(
                RefusalKind.TOO_LARGE, f"the file exceeds the {self._max_size}-byte limit"
            )
            raise self._failure
        try:
            chunks = self._sequencer.feed(offset, data)
        except PathRefused as exc:
            self._failure = exc
            raise
        for chunk in chunks:
            await self._stream.push(chunk, gone=self._task)
        self._check_refused()

    def _check_refused(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if isinstance(error, TransferRefused):
                self._failure = error
                raise error
            if error is not None:
                self._failure = TransferRefused(RefusalKind.UNAVAILABLE, "the gateway failed")
                raise self._failure

    async def complete(self) -> Accepted:
        """End the stream and wait for durability; TransferRefused/PathRefused when refused."""
        if self._failure is not None:
            await self.abort("the upload was refused earlier")
            raise self._failure
        try:
            self._sequencer.check_complete()
        except PathRefused:
            await self.abort("the upload has a hole")
            raise
        self._stream.end()
        return await self._task

    async def abort(self, reason: str) -> None:
        """Drop the upload: the store removes its temporary file; nothing is delivered."""
        self._stream.fail(UploadAborted(reason))
        if not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
        elif not self._task.cancelled():
            self._task.exception()  # retrieved: a refusal already reported is not re-raised
