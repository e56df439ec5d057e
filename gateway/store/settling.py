"""One accept's blocking tail, in a worker thread: place the payload, record it, settle.

Everything after the last byte happens here and in the thread that commits the record, never
in the caller's task: a caller that goes away (peer gone, task cancelled) cannot leave a
payload placed and pinned but neither recorded nor released, and its retry gets the original
receipt. The caller's loop is woken once, with the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

from gateway.offload import run_blocking
from gateway.store import ConflictingRepeat, Disposition, Receipt, StoreError, Submission
from gateway.store import queries as q
from gateway.store.ledger_accept import NewMessage
from gateway.store.writer import Grouped

if TYPE_CHECKING:
    import sqlite3

    from gateway.store.ledger import Ledger
    from gateway.store.payloads import PayloadDir
    from gateway.store.spool import Spooler
    from gateway.store.tempfiles import Spooled
    from gateway.store.writer import Writer


class Settlement:
    """One submission's complete temp on its way to a durable, recorded payload.

    `run` (a worker thread) seals and places the temp, then hands the record to the writer;
    `_settle` (whichever thread committed it) releases the payload's pin, removes bytes placed
    for nothing, and resolves `recorded` in the caller's loop. It leaves `inflight` after that,
    in any case (entered by the caller): the store's `close` waits for it.
    """

    def __init__(
        self,
        *,
        payloads: PayloadDir,
        ledger: Ledger,
        writer: Writer,
        readers: q.Readers,
        recorded: asyncio.Future[Receipt],
        inflight: Inflight,
    ) -> None:
        self._payloads = payloads
        self._ledger = ledger
        self._writer = writer
        self._readers = readers
        self._recorded = recorded
        self._sha256 = ""
        self._placed = False  # a pin is held on `_sha256` while True
        self._peer_id: str | None = None
        self._inflight = inflight

    def run(self, spooler: Spooler, sub: Submission, disposition: Disposition | None) -> None:
        """Blocking: payload durable first, then its record committed (here, or by the writer
        thread when a commit is running); `_settle` follows the commit."""
        try:
            spooled, self._placed = self._finish_and_place(spooler, sub)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, not swallowed
            self._fail(exc)
            self._inflight.leave()
            return
        self._sha256, self._peer_id = spooled.sha256, sub.peer_message_id

        def record(conn: sqlite3.Connection) -> Receipt:
            return self._ledger.accept(
                conn,
                sub,
                sha256=spooled.sha256,
                size=spooled.size,
                placed=self._placed,
                disposition=disposition,
            )

        # Placed bytes make a new message unless they repeat one: written with its neighbours.
        group = None
        if self._placed:
            item = NewMessage(sub, spooled.sha256, spooled.size, disposition)
            group = Grouped(self._ledger.accept_many, item)
        loop = self._recorded.get_loop()
        try:
            self._writer.commit_here(
                record, loop=loop, future=self._recorded, settle=self._settle, group=group
            )
        except BaseException as exc:  # noqa: BLE001 - nothing was queued (store closed)
            try:
                self._settle(None, exc)
            except BaseException as final:  # noqa: BLE001 - handed to the caller
                self._fail(final)

    def _settle(self, receipt: Receipt | None, error: BaseException | None) -> Receipt:
        """In the committing thread, once the record's fate is known: the caller's outcome."""
        try:
            if error is not None or receipt is None:
                if self._placed:  # not recorded: bytes placed for it are referenced by nothing
                    self._discard()
                raise error or StoreError("the record was lost")
            if self._placed and receipt.duplicate and receipt.sha256 != self._sha256:
                self._discard()
            if receipt.conflict is not None:
                assert self._peer_id is not None  # only a peer id can be reused for other bytes
                raise ConflictingRepeat(
                    self._peer_id, original=receipt.message_id, sha256=receipt.conflict
                )
            return receipt
        finally:
            if self._placed:
                self._payloads.unpin(self._sha256)
                self._placed = False
            self._inflight.leave()

    def _fail(self, error: BaseException) -> None:
        """Refuse from this thread: nothing reached the writer, which answers all the rest."""
        recorded = self._recorded

        def resolve() -> None:
            if not recorded.done():
                recorded.set_exception(error)

        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            recorded.get_loop().call_soon_threadsafe(resolve)

    def _finish_and_place(self, spooler: Spooler, sub: Submission) -> tuple[Spooled, bool]:
        """Seal the temp; drop a resend already known by its peer id, else place it.

        Any other repeat can only be the same bytes: they are found in place and not
        rewritten, and the writer's own check (in its transaction) recognises the repeat.
        """
        try:
            spooled = spooler.finish()
            known = sub.peer_message_id is not None and self._readers.call(
                lambda c: q.peer_id_known(c, sub)
            )
            if known:
                spooler.abort()  # nothing to make durable: the original's payload is
                return spooled, False
            self._payloads.place(spooled, spooler.file)
        except BaseException as exc:
            spooler.abort()
            if isinstance(exc, OSError):
                raise StoreError(f"cannot store the payload: {exc}") from exc
            raise
        return spooled, True

    def _discard(self) -> None:
        """Remove our placed bytes unless a record names them; we still hold our pin."""
        self._payloads.discard_if_unreferenced(
            self._sha256,
            referenced=lambda sha: self._readers.call(lambda c: q.is_referenced(c, sha)),
        )


class Inflight:
    """How many settlements have not ended, so that `close` lets them finish first.

    Entering and leaving cost a lock and an integer on the accept path; the event that a
    closing store waits on is touched only once it is closing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # settlements end in worker threads
        self._count = 0
        self._closing = False
        self._idle = threading.Event()

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._closing and self._count == 0:
                self._idle.set()

    async def wait(self) -> None:
        """Until every settlement entered so far has ended (the store is closing)."""
        with self._lock:
            self._closing = True
            if self._count == 0:
                return
        await run_blocking(self._idle.wait)
