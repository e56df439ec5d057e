"""A file's articles fed to a core in its data phase, as fast as the sync window lets them go.

The file is read in blocks off the loop and cut into articles of the negotiated size; the
core takes what its window allows and places the SYNs. When the window is full the feeder
waits for an ACK(SYN) (`acknowledged()`), so memory stays one block plus one window whatever
the file size. At the end of the file, `on_end` sends DTF.END (and, for a requester, TRANS.END).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TypeVar

from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.endpoint.ports import Offload
from protocols.pesit.endpoint.session import Session
from protocols.pesit.events import Position

__all__ = ["FileSender", "blocks", "pieces", "read_articles"]

BLOCK = 1 << 20
T = TypeVar("T")


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
    async for data in pieces(offload, read, start=start, size=size, end=end, length=len):
        yield data


async def pieces(
    offload: Offload,
    read: Callable[[int, int], T],
    *,
    start: int,
    size: int,
    length: Callable[[T], int],
    end: int | None = None,
) -> AsyncGenerator[T, None]:
    """`blocks` for any reader: `length(piece)` bytes were read, 0 at the end of the file."""

    def ask(offset: int) -> asyncio.Future[T] | None:
        want = size if end is None else min(size, end - offset)
        return asyncio.ensure_future(offload(read, offset, want)) if want > 0 else None

    offset, pending = start, ask(start)
    try:
        while pending is not None:
            data = await pending
            pending = None
            read_size = length(data)
            if not read_size:
                return
            offset += read_size
            pending = ask(offset)
            yield data
    finally:
        if pending is not None:  # never let the caller close the file under a read
            await asyncio.gather(pending, return_exceptions=True)


def read_articles(fd: int, offset: int, size: int, *, article: int) -> list[bytes]:
    """`size` bytes at `offset` as articles of `article` bytes, each read into its own
    object (off the loop), so the articles are never cut out of a block by a copy."""
    articles = []
    for at in range(offset, offset + size, article):
        data = os.pread(fd, min(article, offset + size - at), at)
        if data:
            articles.append(data)
        if len(data) < article:
            break
    return articles


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
        source = pieces(
            self._offload,
            functools.partial(read_articles, fd, article=self._article),
            start=self._start.byte_offset,
            size=block,
            length=lambda articles: sum(map(len, articles)),
        )
        async with contextlib.aclosing(source):
            async for articles in source:
                await self._send(articles)

    async def _send(self, articles: list[bytes]) -> None:
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
