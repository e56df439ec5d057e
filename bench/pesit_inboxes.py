"""The inbox ports the PeSIT benchmark hands received files to.

* `FileInbox`: a file on disk, durable; streamed bytes are written and fsynced once more, a
  spooled file (`accept_spooled`) is renamed and its folder fsynced.
* `StoreInbox`: the real store's `accept` (content-addressed payload, SHA-256, SQLite record),
  which reads a spooled file back: what the gateway does today.
* `AdoptingStoreInbox`: the real store's `adopt`: the spool renamed in (the gateway's path).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable
from pathlib import Path

from gateway.model import Direction
from gateway.store import Receipt, Submission
from gateway.store.sqlite import SQLiteStore
from protocols.ports import Accepted, Incoming

__all__ = ["AdoptingStoreInbox", "FileInbox", "StoreInbox", "fsync_file"]

BLOCK = 1 << 20


def write_all(path: Path, chunks: list[bytes]) -> None:
    with path.open("ab") as out:
        out.writelines(chunks)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename_durably(source: Path, target: Path) -> None:
    os.replace(source, target)
    fsync_file(target)  # nothing left to write: the spool synced it
    fsync_file(target.parent)


class FileInbox:
    """The file lands at `target`, durable, before `accept` returns."""

    def __init__(self, target: Path) -> None:
        self._target = target

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        del incoming
        size = 0
        pending: list[bytes] = []
        assert not isinstance(data, bytes)
        async for chunk in data:
            pending.append(chunk)
            size += len(chunk)
            if sum(map(len, pending)) >= BLOCK:
                await asyncio.to_thread(write_all, self._target, pending)
                pending = []
        await asyncio.to_thread(write_all, self._target, pending)
        await asyncio.to_thread(fsync_file, self._target)
        return Accepted("bench", "", size, duplicate=False)

    async def accept_spooled(
        self, path: Path, incoming: Incoming, *, size: int, sha256: str
    ) -> Accepted:
        del incoming
        await asyncio.to_thread(_rename_durably, path, self._target)
        return Accepted("bench", sha256, size, duplicate=False)


def _submission(incoming: Incoming) -> Submission:
    return Submission(
        source=incoming.source,
        direction=Direction.RECEPTION,
        interface_code=incoming.interface_code,
        protocol="pesit",
        connection=incoming.connection,
        peer_message_id=incoming.peer_message_id,
        expected_size=incoming.expected_size,
    )


def _accepted(receipt: Receipt) -> Accepted:
    return Accepted(receipt.message_id, receipt.sha256, receipt.size, receipt.duplicate)


class StoreInbox:
    """The inbox port over the real store (what the gateway's reception path does)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        return _accepted(await self._store.accept(data, _submission(incoming)))


class AdoptingStoreInbox(StoreInbox):
    """`StoreInbox` that hands a spooled file to the store's `adopt`."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__(store)
        self._adopting = store

    async def accept_spooled(
        self, path: Path, incoming: Incoming, *, size: int, sha256: str
    ) -> Accepted:
        receipt = await self._adopting.adopt(path, _submission(incoming), sha256=sha256, size=size)
        return _accepted(receipt)
