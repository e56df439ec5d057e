"""`SQLiteStore.accept`: stream to a temp file, place it durably, record it in one commit.

A mixin kept apart so the store's core stays readable. The acknowledgement path is short: the
bytes are hashed and written off the loop while they stream; at the end one worker job (a
`Settlement`) seals the temp, checks for a duplicate, renames it into place and fsyncs it (file
and directories), then commits the record (itself, or through the writer thread when a commit
is running), whose transaction also carries the routing or rejection the submission decided
(`Submission.decide`). The caller's loop is woken once, with the receipt.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.offload import read_blocks, run_blocking, start_blocking
from gateway.store import (
    ChunkHook,
    PayloadTooLarge,
    Receipt,
    StoreError,
    Submission,
    TruncatedPayload,
)
from gateway.store import queries as q
from gateway.store.checks import check_submission
from gateway.store.settling import Inflight, Settlement
from gateway.store.spool import AdoptedSpool, Spooler

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from gateway.store.ledger import Ledger
    from gateway.store.payloads import PayloadDir
    from gateway.store.writer import Writer


class AcceptingStore:
    """`accept` over the payload directory, the reader pool and the writer thread."""

    if TYPE_CHECKING:
        _payloads: PayloadDir
        _ledger: Ledger
        _writer: Writer
        _readers: q.Readers
        _inflight: Inflight
        _closed: bool

        def _check_open(self) -> None: ...

    async def accept(
        self,
        data: bytes | AsyncIterable[bytes],
        submission: Submission,
        *,
        on_chunk: ChunkHook | None = None,
    ) -> Receipt:
        """Durable payload + row + 'accepted' event, or the original receipt of a duplicate."""
        self._check_open()
        check_submission(submission)
        spooler = Spooler(self._payloads, submission, on_chunk)
        try:
            await spooler.feed_all(data)
        except BaseException:
            await asyncio.shield(run_blocking(spooler.abort))
            raise
        return await self._decide_and_settle(spooler, submission)

    async def adopt(self, path: Path, submission: Submission, *, sha256: str, size: int) -> Receipt:
        """`accept` for a complete, durable file at `path` whose SHA-256 the caller computed
        while writing it (a PeSIT spool): renamed into the payload tree, no byte copied. On
        success the file is the store's; refused by the checks, it is left where it was;
        failing once moved (disk), it is gone. On another file system it is streamed."""
        self._check_open()
        check_submission(submission)
        if submission.max_size is not None and size > submission.max_size:
            raise PayloadTooLarge(limit=submission.max_size, received=size)
        if submission.expected_size is not None and size != submission.expected_size:
            raise TruncatedPayload(expected=submission.expected_size, received=size)
        spooler = AdoptedSpool(self._payloads, submission, sha256=sha256, size=size)
        try:
            await run_blocking(spooler.take, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise StoreError(f"cannot adopt the payload: {exc}") from exc
            return await self.accept(read_blocks(path), submission)
        return await self._decide_and_settle(spooler, submission)

    async def _decide_and_settle(self, spooler: Spooler, submission: Submission) -> Receipt:
        """The complete temp: the submission's decision, then the payload and its record."""
        try:
            decide = submission.decide
            disposition = None if decide is None else decide(spooler.size)
            if self._closed:  # closed while the bytes were streaming: place nothing
                raise StoreError("the store is closed")
        except BaseException:
            await asyncio.shield(run_blocking(spooler.abort))
            raise
        # From here the outcome no longer depends on the caller: the settlement runs in worker
        # threads to its end, and a caller cancelled meanwhile only stops waiting for it.
        recorded: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        settlement = Settlement(
            payloads=self._payloads,
            ledger=self._ledger,
            writer=self._writer,
            readers=self._readers,
            recorded=recorded,
            inflight=self._inflight,
        )
        self._inflight.enter()
        try:
            start_blocking(settlement.run, spooler, submission, disposition)
        except BaseException:  # no worker to run it (interpreter exiting): the temp file stays
            self._inflight.leave()  # for the next open, which removes leftover temps
            raise
        return await recorded
