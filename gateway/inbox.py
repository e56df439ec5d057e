"""The inbox endpoints are given: accept a file durably, then (and only then) acknowledge it.

Endpoints see the small `Inbox` protocol, never the store: an AS2, SFTP or PeSIT endpoint
hands over bytes and a `Submission` and turns the `Receipt` into its wire acknowledgement.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Container
from pathlib import Path
from typing import Protocol

from gateway.logging import get_logger
from gateway.metrics import DUPLICATES, UNKNOWN, code_label
from gateway.store import ChunkHook, Receipt, Store, StoreError, Submission

__all__ = ["KNOWN_PROTOCOLS", "Inbox", "StoreInbox"]

KNOWN_PROTOCOLS = frozenset({"as2", "sftp", "pesit", "api", "folder"})


class Inbox(Protocol):
    """What an endpoint is injected with. Returns only once the file is durable."""

    async def accept(
        self,
        data: bytes | AsyncIterable[bytes],
        submission: Submission,
        *,
        on_chunk: ChunkHook | None = None,
    ) -> Receipt: ...

    async def adopt(
        self, path: Path, submission: Submission, *, sha256: str, size: int
    ) -> Receipt: ...


class StoreInbox:
    """The `Inbox` over a `Store`: counts duplicates and logs each acceptance.

    Metric labels stay bounded: an interface code outside `known_codes` (the catalogue) and a
    protocol outside `KNOWN_PROTOCOLS` are folded into `unknown`.
    """

    def __init__(self, store: Store, *, known_codes: Container[str] = frozenset()) -> None:
        self._store = store
        self._known_codes = known_codes
        self._log = get_logger("gateway.inbox")

    async def accept(
        self,
        data: bytes | AsyncIterable[bytes],
        submission: Submission,
        *,
        on_chunk: ChunkHook | None = None,
    ) -> Receipt:
        """Durable acceptance through the store; a duplicate answers with the original."""
        accepting = self._store.accept(data, submission, on_chunk=on_chunk)
        return await self._logged(accepting, submission)

    async def adopt(self, path: Path, submission: Submission, *, sha256: str, size: int) -> Receipt:
        """`accept` of a complete file an endpoint spooled and hashed (`Store.adopt`)."""
        adopting = self._store.adopt(path, submission, sha256=sha256, size=size)
        return await self._logged(adopting, submission)

    async def _logged(self, accepting: Awaitable[Receipt], submission: Submission) -> Receipt:
        try:
            receipt = await accepting
        except StoreError as exc:
            self._log.warning(
                "inbox.refused",
                connection=submission.connection,
                source=submission.source,
                interface_code=submission.interface_code,
                protocol=submission.protocol,
                reason=str(exc),
                error=type(exc).__name__,
            )
            raise
        if receipt.duplicate:
            protocol = submission.protocol if submission.protocol in KNOWN_PROTOCOLS else UNKNOWN
            code = code_label(submission.interface_code, self._known_codes)
            DUPLICATES.labels(protocol=protocol, interface_code=code).inc()
        self._log.info(
            "inbox.duplicate" if receipt.duplicate else "inbox.accepted",
            message_id=receipt.message_id,
            connection=submission.connection,
            source=submission.source,
            interface_code=submission.interface_code,
            protocol=submission.protocol,
            size=receipt.size,
            sha256=receipt.sha256,
        )
        return receipt
