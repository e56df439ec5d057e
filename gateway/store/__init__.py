"""The durable store's contract: records, typed errors and the `Store` protocol backends keep.

The promise: nothing lost, nothing delivered twice. A payload is fsynced and recorded before
`accept` returns; every state change is an event written in the same transaction as the state.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from gateway.errors import StoreError
from gateway.model import ConnectionStatus, Direction, Environment, MessageState

__all__ = [
    "ChunkHook",
    "Clock",
    "ConnectionChange",
    "Decide",
    "Disposition",
    "Event",
    "IllegalTransition",
    "InvalidSubmission",
    "Message",
    "PayloadTooLarge",
    "Receipt",
    "RejectWith",
    "RetryPolicy",
    "RouteTo",
    "SQLiteStore",
    "Store",
    "StoreError",
    "Submission",
    "TruncatedPayload",
    "UnknownConnection",
    "UnknownMessage",
    "backoff_delay",
    "open_store",
    "utc_now",
]

Clock = Callable[[], datetime]
ChunkHook = Callable[[bytes], None]


def utc_now() -> datetime:
    """The production clock; tests inject their own."""
    return datetime.now(UTC)


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteTo:
    """Queue the new message on `connection`, due now, in the transaction that records it."""

    connection: str
    environment: Environment | None = None
    file_name: Callable[[str], str] | None = None  # message id -> the name it travels under


@dataclass(frozen=True, slots=True)
class RejectWith:
    """Record the new message as rejected for `reason`, in the transaction that records it."""

    reason: str


Disposition = RouteTo | RejectWith
Decide = Callable[[int], Disposition | None]  # payload size -> what else the commit records


@dataclass(frozen=True, slots=True)
class Submission:
    """What an endpoint knows when it hands a file to the inbox."""

    source: str  # who handed it over: connection name, SFTP account, "api", "folder"
    direction: Direction
    interface_code: str
    protocol: str  # "as2" | "sftp" | "pesit" | "api" | "folder"
    environment: Environment | None = None
    connection: str | None = None  # the connection it travels on, when already known
    peer_message_id: str | None = None
    file_name: str | None = None
    max_size: int | None = None  # over it -> PayloadTooLarge, nothing stored
    expected_size: int | None = None  # announced size; shorter/longer stream -> TruncatedPayload
    # Called on the event loop once the last byte is in (sniffers have seen it all), before
    # anything is committed: a new message is then routed or rejected in its own accept commit.
    decide: Decide | None = None
    # Further events (kind, detail) a new message gets in its accept commit (a repeat does
    # not): what the endpoint will answer, recorded before it is sent.
    events: tuple[tuple[str, Mapping[str, object]], ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer an endpoint turns into its acknowledgement; a duplicate gets the original's."""

    message_id: str
    sha256: str
    size: int
    duplicate: bool
    accepted_at: datetime
    state: MessageState = MessageState.ACCEPTED  # after the commit; a duplicate's: the original's
    conflict: str | None = None  # inside the store only: the sha256 a reused peer id brought


@dataclass(frozen=True, slots=True)
class Message:
    """One row of `messages`, typed. `sent_message_id` is the id we gave it when sending."""

    id: str
    direction: Direction
    source: str
    connection: str | None
    interface_code: str
    environment: Environment | None
    protocol: str
    peer_message_id: str | None
    file_name: str | None
    sha256: str
    size: int
    state: MessageState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_message_id: str | None = None
    correlated_at: datetime | None = None  # references extracted / return flow linked


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the append-only audit trail of a message."""

    seq: int
    message_id: str
    at: datetime
    kind: str
    state: MessageState | None
    detail: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """One line of a connection sheet's history (status change or edit)."""

    seq: int
    connection: str
    at: datetime
    actor: str
    old_status: ConnectionStatus | None
    new_status: ConnectionStatus
    change: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; `max_attempts` sends before a message is dead."""

    max_attempts: int = 10
    base_delay: float = 30.0
    max_delay: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.base_delay <= self.max_delay:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")


def backoff_delay(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    The nominal delay doubles per attempt and is capped at `max_delay`; jitter spreads it by
    ±`jitter` so that a peer coming back is not hit by every queued message at once. The result
    never exceeds `max_delay` and never goes below `nominal * (1 - jitter)`.
    """
    exponent = min(max(attempt, 1) - 1, 64)
    nominal = min(policy.max_delay, policy.base_delay * float(2**exponent))
    draw = rand()
    if not 0.0 <= draw <= 1.0:  # a broken source (NaN, out of range) must not break the bounds
        draw = 1.0 if draw > 1.0 else 0.0
    spread = draw * 2.0 - 1.0
    return min(policy.max_delay, nominal * (1.0 + policy.jitter * spread))


# --- errors --------------------------------------------------------------------------------


class PayloadTooLarge(StoreError):
    """The payload went over the submission's `max_size`; nothing was stored."""

    def __init__(self, *, limit: int, received: int) -> None:
        super().__init__(f"payload exceeds the {limit}-byte limit (at least {received} bytes)")
        self.limit = limit
        self.received = received


class TruncatedPayload(StoreError):
    """The stream did not carry the announced size; nothing was stored."""

    def __init__(self, *, expected: int, received: int) -> None:
        how = "shorter" if received < expected else "longer"
        super().__init__(
            f"payload is {how} than announced: {expected} bytes expected, {received} received"
        )
        self.expected = expected
        self.received = received


class UnknownMessage(StoreError):
    """No message has this id."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"unknown message {message_id!r}")
        self.message_id = message_id


class UnknownConnection(StoreError):
    """No status was ever recorded for this connection."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown connection {name!r}")
        self.name = name


class IllegalTransition(StoreError):
    """A state change the lifecycle forbids (e.g. acknowledging a queued message)."""

    def __init__(self, message_id: str, *, current: MessageState, attempted: MessageState) -> None:
        super().__init__(f"message {message_id}: cannot go from {current} to {attempted}")
        self.message_id = message_id
        self.current = current
        self.attempted = attempted


class InvalidSubmission(StoreError):
    """A submission or argument field the store refuses to record, named with the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConflictingRepeat(StoreError):
    """A peer message id already recorded for other bytes: never taken for the first file.

    A resend carries the same content; the same id on different content is a peer's mistake
    (or an identity collision) that must be refused and seen, not answered as a duplicate,
    which would silently drop the new file.
    """

    def __init__(self, peer_message_id: str, *, original: str, sha256: str) -> None:
        super().__init__(
            f"peer message id {peer_message_id!r} already names message {original} with other "
            f"content (sha256 {sha256[:12]}…): refused, not taken for a repeat"
        )
        self.peer_message_id = peer_message_id
        self.original = original


# --- the protocol --------------------------------------------------------------------------


class Store(Protocol):
    """What the inbox, the router, the outbox workers and the CLI code against."""

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

    async def get(self, message_id: str) -> Message: ...

    async def events(self, message_id: str) -> list[Event]: ...

    async def list_messages(
        self,
        *,
        state: MessageState | None = None,
        interface_code: str | None = None,
        connection: str | None = None,
        direction: Direction | None = None,
        limit: int = 100,
    ) -> list[Message]: ...

    def payload_path(self, message: Message) -> Path: ...

    async def route(
        self,
        message_id: str,
        *,
        connection: str,
        environment: Environment | None = None,
        file_name: str | None = None,
    ) -> Message: ...

    async def reject(self, message_id: str, *, reason: str) -> Message: ...

    async def claim_due(self, *, connection: str, limit: int = 10) -> list[Message]: ...

    async def record_sent(
        self,
        message_id: str,
        *,
        peer_message_id: str | None,
        awaiting_ack: bool,
        detail: Mapping[str, object] | None = None,
    ) -> Message: ...

    async def record_acknowledged(
        self, message_id: str, *, detail: Mapping[str, object]
    ) -> Message: ...

    async def record_failure(
        self, message_id: str, *, reason: str, retryable: bool, policy: RetryPolicy
    ) -> Message: ...

    async def retry(self, message_id: str) -> Message: ...

    async def mark_delivered(self, message_id: str, *, detail: Mapping[str, object]) -> Message: ...

    async def record_event(
        self, message_id: str, *, kind: str, detail: Mapping[str, object]
    ) -> Event: ...

    async def record_delivery_failure(
        self, message_id: str, *, reason: str, policy: RetryPolicy
    ) -> Message: ...

    async def record_correlation(
        self,
        message_id: str,
        *,
        kind: str | None,
        detail: Mapping[str, object],
        references: Mapping[str, Sequence[str]] | None = None,
        linked: Sequence[tuple[str, str, Mapping[str, object]]] = (),
    ) -> bool: ...

    async def add_references(self, message_id: str, *, kind: str, values: Sequence[str]) -> int: ...

    async def references(self, message_id: str) -> dict[str, list[str]]: ...

    async def find_by_reference(
        self,
        *,
        kind: str,
        value: str,
        direction: Direction | None = None,
        environment: Environment | None = None,
        limit: int = 10,
    ) -> list[Message]: ...

    async def uncorrelated(self, *, limit: int = 100) -> list[Message]: ...

    async def due_deliveries(
        self, *, codes: Sequence[str] | None = None, limit: int = 100
    ) -> list[Message]: ...

    async def next_delivery_at(self) -> datetime | None: ...

    async def recover(self) -> int: ...

    async def outbox_stats(self) -> dict[str, tuple[int, float]]: ...

    async def find_by_peer_id(self, *, source: str, peer_message_id: str) -> Message | None: ...

    async def connection_status(self, name: str) -> ConnectionStatus | None: ...

    async def set_connection_status(
        self,
        name: str,
        *,
        status: ConnectionStatus,
        actor: str,
        change: Mapping[str, object],
    ) -> ConnectionChange: ...

    async def record_connection_change(
        self, name: str, *, actor: str, change: Mapping[str, object]
    ) -> ConnectionChange: ...

    async def connection_history(self, name: str) -> list[ConnectionChange]: ...

    async def close(self) -> None: ...


# The embedded implementation, defined once in sqlite.py; imported last because it builds on
# the records and errors above.
from gateway.store.sqlite import SQLiteStore, open_store  # noqa: E402
