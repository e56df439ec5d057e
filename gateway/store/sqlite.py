"""The embedded store: SQLite (WAL, synchronous=FULL) plus a content-addressed payload tree.

The event loop never blocks: payload I/O and reads run in the offload pool, writes in the one
writer thread (group commit). An accepted payload is durable on disk before its row commits,
and the row is durable before `accept` returns.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from gateway.logging import get_logger
from gateway.model import ConnectionStatus, Direction, Environment, MessageState
from gateway.offload import run_blocking
from gateway.store import (
    Clock,
    ConnectionChange,
    Event,
    Message,
    RetryPolicy,
    StoreError,
    utc_now,
)
from gateway.store import queries as q
from gateway.store.accepting import AcceptingStore
from gateway.store.ledger import Ledger
from gateway.store.opening import StoreFiles, open_files
from gateway.store.payloads import PayloadDir
from gateway.store.rows import fmt_time
from gateway.store.settling import Inflight
from gateway.store.sqlite_returns import ReturnFlowStore
from gateway.store.writer import Writer

T = TypeVar("T")
_log = get_logger("gateway.store")


async def open_store(
    root: Path,
    *,
    clock: Clock = utc_now,
    rand: Callable[[], float] = random.random,
    allow_shared: bool = False,
) -> SQLiteStore:
    """Open (creating, migrating and cleaning as needed) the embedded store under `root`.

    `allow_shared` lets an operator's command open a store a running daemon holds.
    """
    return await SQLiteStore.open(root, clock=clock, rand=rand, allow_shared=allow_shared)


class SQLiteStore(AcceptingStore, ReturnFlowStore):
    """The `Store` protocol over SQLite; build it with `open_store` (or `SQLiteStore.open`)."""

    def __init__(
        self, files: StoreFiles, payloads: PayloadDir, *, clock: Clock, rand: Callable[[], float]
    ) -> None:
        self._files = files
        self._payloads = payloads
        self._clock = clock
        self._ledger = Ledger(clock=clock, rand=rand)
        self._writer = Writer(files.db_path)
        self._readers = q.Readers(files.db_path)
        self._inflight = Inflight()
        self._closed = False

    @classmethod
    async def open(
        cls, root: Path, *, clock: Clock, rand: Callable[[], float], allow_shared: bool = False
    ) -> SQLiteStore:
        """Lock `root`, migrate, clean what a crash left, start the writer."""
        payloads = PayloadDir(root)
        files = await run_blocking(
            open_files, root, payloads, now=fmt_time(clock()), allow_shared=allow_shared
        )
        store = cls(files, payloads, clock=clock, rand=rand)
        try:
            await run_blocking(store._writer.start)
        except BaseException:
            await run_blocking(files.release, clean=False)
            raise
        _log.info(
            "store.opened",
            root=str(root),
            schema_version=files.version,
            crashed=files.crashed,
            temps_removed=files.temps_removed,
            orphans_removed=files.orphans_removed,
            unnamed_temps=payloads.unnamed_temps,
        )
        return store

    @property
    def root(self) -> Path:
        return self._files.root

    @property
    def db_path(self) -> Path:
        return self._files.db_path

    @property
    def recovered_from_crash(self) -> bool:
        """True when the previous process using this directory did not close it."""
        return self._files.crashed

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Let in-flight accepts finish, drain the writer, release the directory."""
        if self._closed:
            return
        self._closed = True
        await self._inflight.wait()
        await run_blocking(self._shutdown)

    def _shutdown(self) -> None:
        self._writer.close()
        self._readers.close()
        self._payloads.close()
        self._files.release(clean=True)

    # --- plumbing --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        return await run_blocking(self._readers.call, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        return await self._writer.submit(fn)

    # --- reads -----------------------------------------------------------------------------

    async def get(self, message_id: str) -> Message:
        return await self._read(lambda c: q.get_message(c, message_id))

    async def events(self, message_id: str) -> list[Event]:
        return await self._read(lambda c: q.events_of(c, message_id))

    async def list_messages(
        self,
        *,
        state: MessageState | None = None,
        interface_code: str | None = None,
        connection: str | None = None,
        direction: Direction | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Message]:
        return await self._read(
            lambda c: q.list_messages(
                c,
                state=state,
                interface_code=interface_code,
                connection=connection,
                direction=direction,
                limit=limit,
                newest_first=newest_first,
            )
        )

    def payload_path(self, message: Message) -> Path:
        return self._payloads.path_for(message.sha256)

    async def outbox_stats(self) -> dict[str, tuple[int, float]]:
        now = self._ledger.now()
        return await self._read(lambda c: q.outbox_stats(c, now=now))

    async def find_by_peer_id(self, *, source: str, peer_message_id: str) -> Message | None:
        return await self._read(
            lambda c: q.find_by_peer_id(c, source=source, peer_message_id=peer_message_id)
        )

    async def connection_status(self, name: str) -> ConnectionStatus | None:
        return await self._read(lambda c: q.connection_status(c, name))

    async def connection_history(self, name: str) -> list[ConnectionChange]:
        return await self._read(lambda c: q.connection_history(c, name))

    # --- writes ----------------------------------------------------------------------------

    async def route(
        self,
        message_id: str,
        *,
        connection: str,
        environment: Environment | None = None,
        file_name: str | None = None,
    ) -> Message:
        return await self._write(
            lambda c: self._ledger.route(
                c, message_id, connection=connection, environment=environment, file_name=file_name
            )
        )

    async def reject(self, message_id: str, *, reason: str) -> Message:
        return await self._write(lambda c: self._ledger.reject(c, message_id, reason=reason))

    async def claim_due(self, *, connection: str, limit: int = 10) -> list[Message]:
        return await self._write(
            lambda c: self._ledger.claim_due(c, connection=connection, limit=limit)
        )

    async def record_sent(
        self,
        message_id: str,
        *,
        peer_message_id: str | None,
        awaiting_ack: bool,
        detail: Mapping[str, object] | None = None,
    ) -> Message:
        extra = detail if detail is not None else {}
        return await self._write(
            lambda c: self._ledger.record_sent(
                c,
                message_id,
                peer_message_id=peer_message_id,
                awaiting_ack=awaiting_ack,
                detail=extra,
            )
        )

    async def record_acknowledged(
        self, message_id: str, *, detail: Mapping[str, object]
    ) -> Message:
        return await self._write(
            lambda c: self._ledger.record_acknowledged(c, message_id, detail=detail)
        )

    async def record_failure(
        self, message_id: str, *, reason: str, retryable: bool, policy: RetryPolicy
    ) -> Message:
        return await self._write(
            lambda c: self._ledger.record_failure(
                c, message_id, reason=reason, retryable=retryable, policy=policy
            )
        )

    async def retry(self, message_id: str) -> Message:
        return await self._write(lambda c: self._ledger.retry(c, message_id))

    async def mark_delivered(self, message_id: str, *, detail: Mapping[str, object]) -> Message:
        return await self._write(
            lambda c: self._ledger.mark_delivered(c, message_id, detail=detail)
        )

    async def record_event(
        self, message_id: str, *, kind: str, detail: Mapping[str, object]
    ) -> Event:
        return await self._write(
            lambda c: self._ledger.record_event(c, message_id, kind=kind, detail=detail)
        )

    async def recover(self) -> int:
        count = await self._write(self._ledger.recover)
        if count:
            _log.warning("store.recovered_sending", count=count)
        return count

    async def set_connection_status(
        self,
        name: str,
        *,
        status: ConnectionStatus,
        actor: str,
        change: Mapping[str, object],
    ) -> ConnectionChange:
        return await self._write(
            lambda c: self._ledger.set_connection_status(
                c, name, status=status, actor=actor, change=change
            )
        )

    async def record_connection_change(
        self, name: str, *, actor: str, change: Mapping[str, object]
    ) -> ConnectionChange:
        return await self._write(
            lambda c: self._ledger.record_connection_change(c, name, actor=actor, change=change)
        )
