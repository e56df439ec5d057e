"""A file's articles fed to a core in its data phase, as fast as the sync window lets them go.

The file is read in blocks off the loop and cut into articles of the negotiated size; the
core takes what its window allows and places the SYNs. When the window is full the feeder
waits for an ACK(SYN) (`acknowledged()`), so memory stays one block plus one window whatever
the file size. At the end of the file, `on_end` sends DTF.END (and, for a requester, TRANS.END).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.endpoint.ports import Offload
from protocols.pesit.endpoint.session import Session
from protocols.pesit.events import Position

__all__ = ["FileSender", "blocks"]

BLOCK = 1 << 20


async def blocks(
    offload: Offload,
    read: Callable[[int, int], bytes],
    *,
    start: int,
    size: int,
    end: int | None = None,
) -> AsyncGenerator[bytes, None]:
    """Blocks of `size` bytes from `start` (to `end`, or to the end of the file); the next one
    is read while the caller works on this one, so the disk and the network overlap."""

    def ask(offset: int) -> asyncio.Future[bytes] | None:
        want = size if end is None else min(size, end - offset)
        return asyncio.ensure_future(offload(read, offset, want)) if want > 0 else None

    offset, pending = start, ask(start)
    try:
        while pending is not None:
            data = await pending
            pending = None
            if not data:
                return
            offset += len(data)
            pending = ask(offset)
            yield data
    finally:
        if pending is not None:  # never let the caller close the file under a read
            await asyncio.gather(pending, return_exceptions=True)


class FileSender:
    """Sends `path` from `start` in articles of `article_size` bytes (the last may be shorter)."""

    def __init__(
        self,
        session: Session,
        path: Path,
        *,
        start: Position,
        article_size: int,
        offload: Offload,
        on_end: Callable[[], None],
    ) -> None:
        if article_size < 1 or start.byte_offset % article_size:
            raise PesitLocalError(
                Diagnostic.RESTART_NEGOTIATION_FAILED,
                f"restart at byte {start.byte_offset} is not on a {article_size}-byte article",
            )
        self._session = session
        self._path = path
        self._start = start
        self._article = article_size
        self._offload = offload
        self._on_end = on_end
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = start.byte_offset

    def begin(self) -> None:
        self._task = self._session.spawn(self._run(), name="pesit-send")

    def acknowledged(self) -> None:
        """An ACK(SYN) arrived: the window has room again."""
        self._room.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        fd = await self._offload(os.open, self._path, os.O_RDONLY)
        try:
            await self._feed(fd)
        finally:
            await self._offload(os.close, fd)
        await self._wait_for_room()
        self._on_end()
        self._session.poke()

    async def _feed(self, fd: int) -> None:
        block = self._article * max(1, BLOCK // self._article)
        source = blocks(
            self._offload,
            lambda offset, size: os.pread(fd, size, offset),
            start=self._start.byte_offset,
            size=block,
        )
        async with contextlib.aclosing(source):
            async for data in source:
                await self._send(data)

    async def _send(self, data: bytes) -> None:
        view, step = memoryview(data), self._article
        articles = [bytes(view[i : i + step]) for i in range(0, len(data), step)]
        while articles:
            await self._wait_for_room()
            taken = self._session.core.send_articles(articles, now=self._session.now())
            for article in articles[:taken]:
                self.sent += len(article)
            del articles[:taken]
            await self._session.flush()
            self._session.poke()

    async def _wait_for_room(self) -> None:
        core = self._session.core
        while not core.can_send:
            self._room.clear()
            await self._room.wait()
