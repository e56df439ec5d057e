"""`SQLiteStore`'s return-flow methods: references, correlation, the delivery queue.

A mixin kept apart so the store's core (accept, transitions, reads) stays readable; it runs
through the same reader pool and writer thread as everything else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from gateway.model import Direction, Environment
from gateway.store import Message, RetryPolicy
from gateway.store import returns as r

if TYPE_CHECKING:
    from gateway.store.ledger import Ledger

T = TypeVar("T")


class ReturnFlowStore:
    """Return-flow methods of the `Store` protocol, over `_read`, `_write` and `_ledger`."""

    if TYPE_CHECKING:
        _ledger: Ledger

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def record_delivery_failure(
        self, message_id: str, *, reason: str, policy: RetryPolicy
    ) -> Message:
        return await self._write(
            lambda c: self._ledger.record_delivery_failure(
                c, message_id, reason=reason, policy=policy
            )
        )

    async def record_correlation(
        self,
        message_id: str,
        *,
        kind: str | None,
        detail: Mapping[str, object],
        references: Mapping[str, Sequence[str]] | None = None,
        linked: Sequence[tuple[str, str, Mapping[str, object]]] = (),
    ) -> bool:
        refs = {k: list(v) for k, v in (references or {}).items()}
        links = list(linked)
        return await self._write(
            lambda c: self._ledger.record_correlation(
                c, message_id, kind=kind, detail=detail, references=refs, linked=links
            )
        )

    async def add_references(self, message_id: str, *, kind: str, values: Sequence[str]) -> int:
        listed = list(values)
        return await self._write(
            lambda c: r.insert_references(c, message_id, kind=kind, values=listed)
        )

    async def references(self, message_id: str) -> dict[str, list[str]]:
        return await self._read(lambda c: r.references_of(c, message_id))

    async def find_by_reference(
        self,
        *,
        kind: str,
        value: str,
        direction: Direction | None = None,
        environment: Environment | None = None,
        limit: int = 10,
    ) -> list[Message]:
        return await self._read(
            lambda c: r.find_by_reference(
                c, kind=kind, value=value, direction=direction, environment=environment, limit=limit
            )
        )

    async def uncorrelated(self, *, limit: int = 100) -> list[Message]:
        return await self._read(lambda c: r.uncorrelated(c, limit=limit))

    async def due_deliveries(
        self, *, codes: Sequence[str] | None = None, limit: int = 100
    ) -> list[Message]:
        now = self._ledger.now()
        wanted = None if codes is None else list(codes)
        return await self._read(lambda c: r.due_deliveries(c, now=now, codes=wanted, limit=limit))

    async def next_delivery_at(self) -> datetime | None:
        return await self._read(r.next_delivery_at)
