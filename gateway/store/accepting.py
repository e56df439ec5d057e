"""`SQLiteStore.accept`: stream to a temp file, place it durably, record it in one commit.

A mixin kept apart so the store's core stays readable. The acknowledgement path is short: the
bytes are hashed and written off the loop while they stream; at the end one offload job seals
the temp, checks for a duplicate, renames it into place and fsyncs it (file and directories),
then queues the record straight to the writer, whose commit also carries the routing or
rejection the submission decided (`Submission.decide`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.offload import read_blocks, run_blocking, start_blocking
from gateway.store import (
    ChunkHook,
    ConflictingRepeat,
    Disposition,
    PayloadTooLarge,
    Receipt,
    StoreError,
    Submission,
    TruncatedPayload,
)
from gateway.store import queries as q
from gateway.store.checks import check_submission
from gateway.store.spool import AdoptedSpool, Spooler

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from gateway.store.ledger import Ledger
    from gateway.store.payloads import PayloadDir, Spooled
    from gateway.store.writer import Writer


@dataclass(slots=True)
class _Placing:
    """What the placing job left for the loop: the digest it placed and pinned, if any.

    Written by the job before it queues the record; read by the loop only once `recorded` is
    resolved, which happens after the writer took the record from its queue or, when queueing
    failed, after the job ended.
    """

    sha256: str = ""
    placed: bool = False


def _report_failure(
    job: Future[None], loop: asyncio.AbstractEventLoop, recorded: asyncio.Future[Receipt]
) -> None:
    """Runs in the pool thread as the job ends: a job that raised never queued its record,
    so its error is the accept's outcome (the loop wakes for it, once)."""
    error = StoreError("the store is closed") if job.cancelled() else job.exception()
    if error is None:
        return

    def fail() -> None:
        if not recorded.done():
            recorded.set_exception(error)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(fail)


class AcceptingStore:
    """`accept` over the payload directory, the reader pool and the writer thread."""

    if TYPE_CHECKING:
        _payloads: PayloadDir
        _ledger: Ledger
        _writer: Writer
        _readers: q.Readers
        _inflight: set[asyncio.Task[Receipt]]
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
        except BaseException:
            await asyncio.shield(run_blocking(spooler.abort))
            raise
        # From here the outcome no longer depends on the caller: a cancelled caller (peer gone)
        # must not leave a half-settled payload. Its retry will get the original receipt.
        task = asyncio.ensure_future(self._settle(spooler, submission, disposition))
        self._inflight.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Receipt]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away does not leave it unread

    async def _settle(
        self, spooler: Spooler, sub: Submission, disposition: Disposition | None
    ) -> Receipt:
        if self._closed:  # closed while the bytes were streaming: place nothing
            await run_blocking(spooler.abort)
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[Receipt] = loop.create_future()
        placing = _Placing()
        # One wake-up of the loop per accept: the job's own return is not awaited, its outcome
        # (the record committed, or why nothing was) arrives through `recorded` alone.
        job = start_blocking(self._place_and_record, spooler, sub, disposition, placing, recorded)
        job.add_done_callback(lambda done: _report_failure(done, loop, recorded))
        try:
            try:
                receipt = await recorded
            except StoreError:  # not recorded: bytes placed for it are referenced by nothing
                if placing.placed:
                    await run_blocking(self._discard, placing.sha256)
                raise
            if placing.placed and receipt.duplicate and receipt.sha256 != placing.sha256:
                await run_blocking(self._discard, placing.sha256)
            if receipt.conflict is not None:
                assert sub.peer_message_id is not None
                raise ConflictingRepeat(
                    sub.peer_message_id, original=receipt.message_id, sha256=receipt.conflict
                )
            return receipt
        finally:
            if placing.placed:
                self._payloads.unpin(placing.sha256)

    def _place_and_record(
        self,
        spooler: Spooler,
        sub: Submission,
        disposition: Disposition | None,
        placing: _Placing,
        recorded: asyncio.Future[Receipt],
    ) -> None:
        """Blocking: payload durable first, then its record committed (here, or by the writer
        thread when a commit is running), which resolves `recorded`. A failure before that is
        raised to the job's future, which `_report_failure` hands to `recorded`."""
        spooled, placed = self._finish_and_place(spooler, sub)
        placing.sha256, placing.placed = spooled.sha256, placed  # before the writer can answer
        try:
            self._writer.commit_here(
                lambda conn: self._ledger.accept(
                    conn,
                    sub,
                    sha256=spooled.sha256,
                    size=spooled.size,
                    placed=placed,
                    disposition=disposition,
                ),
                loop=recorded.get_loop(),
                future=recorded,
            )
        except BaseException:  # nothing queued: the loop learns it from the job's end
            if placed:
                placing.placed = False
                self._payloads.unpin(spooled.sha256)
            raise

    def _finish_and_place(self, spooler: Spooler, sub: Submission) -> tuple[Spooled, bool]:
        """Blocking: seal the temp; drop a resend already known by its peer id, else place it.

        Without a peer id, a repeat can only be the same bytes: they are found in place and
        not rewritten, and the writer's own check (in its transaction) recognises the repeat.
        """
        try:
            spooled = spooler.finish()
            if sub.peer_message_id is not None:
                found = self._readers.call(lambda c: q.find_duplicate(c, sub, spooled.sha256))
                if found is not None:
                    spooler.abort()  # nothing to make durable: the original's payload is
                    return spooled, False
            self._payloads.place(spooled, spooler.file)
        except BaseException as exc:
            spooler.abort()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot store the payload: {exc}") from exc
            raise
        return spooled, True

    def _discard(self, sha256: str) -> None:
        self._payloads.discard_if_unreferenced(
            sha256, referenced=lambda sha: self._readers.call(lambda c: q.is_referenced(c, sha))
        )
