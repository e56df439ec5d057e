"""The single writer thread: group commit over one SQLite connection.

Every write is a function of the connection, queued with a future. The thread takes whatever
is queued, runs it in one transaction (each request in a savepoint only once one has failed),
commits once (one fsync of the WAL), then resolves every caller with one wake-up of their event
loop. Under load, requests pile up while a commit is in flight, so the next transaction carries
them all: that is how concurrent producers share an fsync instead of queueing behind one each.

Requests of one kind that sit next to each other in a batch (new messages, mostly) can also
share their statements (`Grouped`): one multi-row INSERT per table for all of them instead of
one per request and table. Each statement lets go of the GIL and must win it back, and under
load that wait, not SQLite, is most of a commit's time.

A worker thread that has a record ready (`commit_here`) commits it itself when no commit is in
progress, with whatever else is queued: a lone producer then pays no hand-over to this thread
and back. Either way one lock admits one committer at a time to the connection.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.metrics import STORE_COMMIT_SECONDS
from gateway.store import StoreError
from gateway.store.schema import connect

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]
# Runs in the committing thread once a request's fate is known (its value, or its error): what
# it returns or raises is what the caller gets. It runs even for a caller that went away.
Settle = Callable[[Any, BaseException | None], Any]
MAX_BATCH = 256


@dataclass(frozen=True, slots=True)
class Grouped:
    """How a request can be written together with its neighbours of the same `kind`.

    `kind(conn, items)` writes every item at once and returns one value per item, each the
    value that request's own function would have returned. Should it raise, the batch runs
    again with each request's own function, in its own savepoint, so a grouped write never
    decides anything a request alone would not have.
    """

    kind: Callable[[sqlite3.Connection, Sequence[Any]], Sequence[Any]]
    item: Any


@dataclass(slots=True)
class _Request:
    fn: WriteFn
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    settle: Settle | None = None
    group: Grouped | None = None

    @property
    def wanted(self) -> bool:
        """Still to run: its caller waits, or its settling must happen anyway."""
        return self.settle is not None or not self.future.cancelled()


@dataclass(slots=True)
class _Outcome:
    request: _Request
    value: Any = None
    error: BaseException | None = None


class _Stop:
    """Queue sentinel: drain what came before, then end the thread."""


def _as_store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"database error: {exc}")
    return exc


def _deliver(outcomes: list[_Outcome]) -> None:
    """Runs in the caller's loop: hand each result to a future nobody cancelled."""
    for outcome in outcomes:
        future = outcome.request.future
        if future.done():
            continue
        if outcome.error is None:
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome.error)


def _runs(batch: list[_Request]) -> Iterator[list[_Request]]:
    """The batch in order, neighbours grouped by the same kind put together."""
    run: list[_Request] = []
    for request in batch:
        if run and not _same_kind(run[-1], request):
            yield run
            run = []
        run.append(request)
    if run:
        yield run


def _same_kind(a: _Request, b: _Request) -> bool:
    return a.group is not None and b.group is not None and a.group.kind == b.group.kind


class Writer:
    """Owns the write connection; `submit` from the event loop, `close` to drain and stop."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._queue: queue.SimpleQueue[_Request | _Stop] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self._closed = False
        self._lock = threading.Lock()  # a request is never queued behind the stop sentinel
        self._committing = threading.Lock()  # one committer on the connection at a time
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="raccord-store-writer", daemon=True)

    def start(self) -> None:
        """Open the connection in the writer thread; raises if it cannot."""
        self._thread.start()
        self._ready.result()

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the next group transaction; returns once it is committed (durable).

        A caller cancelled before its turn is skipped; one cancelled during its turn has its
        write committed all the same (callers that care, like `accept`, pass a `settle`).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.enqueue(fn, loop=loop, future=future)
        return await future

    def enqueue(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[T],
        settle: Settle | None = None,
        group: Grouped | None = None,
    ) -> None:
        """Thread-safe `submit` without the await: `future` is resolved in `loop`.

        Lets a worker thread that just made a payload durable queue its record directly,
        sparing one trip through the event loop on the acknowledgement path.
        """
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            self._queue.put(_Request(fn, loop, future, settle, group))

    def commit_here(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[T],
        settle: Settle | None = None,
        group: Grouped | None = None,
    ) -> None:
        """Blocking, from a worker thread: `enqueue`, but committed in the calling thread (with
        whatever is queued) when no commit is in progress; `future` is resolved in `loop`."""
        request = _Request(fn, loop, future, settle, group)
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            leading = self._committing.acquire(blocking=False)
            if not leading:  # a commit is running: the writer thread takes it next
                self._queue.put(request)
                return
        try:
            conn = self._conn
            if conn is None:  # the thread ended before we could lead
                raise StoreError("the store is closed")
            batch, stop = self._drain([request])
            if stop:  # close() came meanwhile: the writer thread still has to see it
                self._queue.put(_Stop())
            live = [r for r in batch if r.wanted]
            if live:
                self._resolve(self._commit(conn, live))
        finally:
            self._committing.release()

    def close(self) -> None:
        """Blocking: let queued requests commit, then stop the thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_Stop())
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = connect(self._db_path)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the opener by start()
            self._ready.set_exception(_as_store_error(exc))
            return
        self._conn = conn
        self._ready.set_result(None)
        try:
            self._serve(conn)
        finally:
            with self._committing:
                self._conn = None
                conn.close()
            with self._lock:
                self._closed = True
            self._fail_pending()

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            batch, stop = self._take()
            live = [r for r in batch if r.wanted]
            if live:
                with self._committing:
                    self._resolve(self._commit(conn, live))
            if stop:
                return

    def _take(self) -> tuple[list[_Request], bool]:
        """Block for one item, then drain whatever else is queued (up to MAX_BATCH)."""
        item = self._queue.get()
        if isinstance(item, _Stop):
            return [], True
        return self._drain([item])

    def _drain(self, batch: list[_Request]) -> tuple[list[_Request], bool]:
        """Add to `batch` whatever is queued, up to MAX_BATCH; True once the stop is reached."""
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if isinstance(item, _Stop):
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, conn: sqlite3.Connection, batch: list[_Request]) -> list[_Outcome]:
        """One transaction for the batch, committed once; a failed request leaves no trace.

        The batch runs first without savepoints (each costs two statements per request), its
        neighbours of one kind grouped. A request (or a group) that fails may have written half
        of its changes, so then the transaction is rolled back and the batch runs again, each
        request alone in its own savepoint. Requests are functions of the connection alone, so
        running one twice is safe.
        """
        started = time.perf_counter()
        try:
            outcomes = self._transaction(conn, batch, savepoints=False)
            if outcomes is None:
                outcomes = self._transaction(conn, batch, savepoints=True)
                assert outcomes is not None  # with savepoints it always ends
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreError(f"commit failed, nothing recorded: {exc}")
            return [_Outcome(request, error=failure) for request in batch]
        STORE_COMMIT_SECONDS.observe(time.perf_counter() - started)
        return outcomes

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Request], *, savepoints: bool
    ) -> list[_Outcome] | None:
        """Run `batch` in one transaction; None when a request failed without a savepoint
        to undo it and others share the transaction (rolled back, to run again)."""
        conn.execute("BEGIN IMMEDIATE")
        if savepoints:
            outcomes = [self._run_one(conn, request, savepoint=True) for request in batch]
        else:
            outcomes = []
            for run in _runs(batch):
                if len(run) == 1:
                    outcomes.append(self._run_one(conn, run[0], savepoint=False))
                else:
                    outcomes += self._run_group(conn, run)
        if not savepoints and any(outcome.error is not None for outcome in outcomes):
            conn.execute("ROLLBACK")
            return outcomes if len(batch) == 1 else None  # alone, its failure is its outcome
        conn.execute("COMMIT")
        return outcomes

    @staticmethod
    def _run_one(conn: sqlite3.Connection, request: _Request, *, savepoint: bool) -> _Outcome:
        """One request; in a savepoint when asked, so that its failure leaves the others."""
        if savepoint:
            conn.execute("SAVEPOINT request")
        try:
            value = request.fn(conn)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's future, not swallowed
            if savepoint:
                conn.execute("ROLLBACK TO request")
                conn.execute("RELEASE request")
            return _Outcome(request, error=_as_store_error(exc))
        if savepoint:
            conn.execute("RELEASE request")
        return _Outcome(request, value=value)

    @staticmethod
    def _run_group(conn: sqlite3.Connection, run: list[_Request]) -> list[_Outcome]:
        """Neighbours of one kind written together; a failure is every one's (run again)."""
        group = run[0].group
        assert group is not None
        try:
            values = group.kind(conn, [request.group.item for request in run if request.group])
            if len(values) != len(run):
                raise StoreError(f"a grouped write returned {len(values)} values for {len(run)}")
        except Exception as exc:  # noqa: BLE001 - the batch runs again, each request alone
            return [_Outcome(request, error=_as_store_error(exc)) for request in run]
        return [_Outcome(request, value=value) for request, value in zip(run, values, strict=True)]

    @staticmethod
    def _resolve(outcomes: list[_Outcome]) -> None:
        """Settle each request here, then one wake-up per event loop for the whole batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            settle = outcome.request.settle
            if settle is not None:
                try:
                    outcome.value, outcome.error = settle(outcome.value, outcome.error), None
                except BaseException as exc:  # noqa: BLE001 - that is the caller's outcome
                    outcome.value, outcome.error = None, exc
            by_loop.setdefault(outcome.request.loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                continue

    def _fail_pending(self) -> None:
        """Whatever is still queued when the thread ends gets an answer, never a hang."""
        closed = StoreError("the store is closed")
        pending: list[_Outcome] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                pending.append(_Outcome(item, error=closed))
        self._resolve(pending)
