"""Conversions between SQL text and typed records: timestamps, ids, JSON details, rows."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from gateway.model import ConnectionStatus, Direction, Environment, MessageState
from gateway.store import ConnectionChange, Event, InvalidSubmission, Message, StoreError

MAX_DETAIL_BYTES = 64 * 1024
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80


def fmt_time(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601, so that SQL text comparison orders like time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreError("the store clock returned a naive datetime; it must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    """Inverse of `fmt_time`."""
    return datetime.fromisoformat(text)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


class RandomBits:
    """Random bits from the operating system, fetched 4 KiB at a time.

    An id drawn from `secrets` costs one `getrandom` system call, made in the thread that
    holds the commit, and a GIL hand-off with it. Drawn from a buffer of the same bytes, 400
    ids cost one. A child process forgets the buffer, so that it never repeats its parent's.
    """

    def __init__(self, *, chunk: int = 4096) -> None:
        self._chunk = chunk
        self._lock = threading.Lock()
        self._buffer = b""
        self._position = 0

    def take(self, bits: int) -> int:
        """A random integer of `bits` bits (a multiple of 8)."""
        size = bits // 8
        with self._lock:
            if self._position + size > len(self._buffer):
                self._buffer, self._position = os.urandom(max(self._chunk, size)), 0
            start, self._position = self._position, self._position + size
            return int.from_bytes(self._buffer[start : start + size], "big")

    def forget(self) -> None:
        """Drop what is buffered (in a forked child)."""
        self._lock = threading.Lock()
        self._buffer, self._position = b"", 0


_RANDOM = RandomBits()
os.register_at_fork(after_in_child=_RANDOM.forget)


class MessageIds:
    """ULID-like ids: 48-bit milliseconds + 80 random bits, Crockford base32, 26 characters.

    Monotonic within one generator (the writer thread owns it), so `ORDER BY id` is the order
    in which messages were accepted, even within one millisecond or when the clock steps back.
    """

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_random = 0

    def next(self, now: datetime) -> str:
        millis = max(int(now.timestamp() * 1000), 0)
        if millis <= self._last_ms:
            millis = self._last_ms
            rand = self._last_random + 1
            if rand >= 1 << _RANDOM_BITS:
                millis, rand = millis + 1, _RANDOM.take(_RANDOM_BITS)
        else:
            rand = _RANDOM.take(_RANDOM_BITS)
        self._last_ms, self._last_random = millis, rand
        value = (millis << _RANDOM_BITS) | rand
        chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5)]
        return "".join(chars)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dump_detail(detail: Mapping[str, object], *, what: str = "detail") -> str:
    """JSON text of an event detail; refuses what would bloat or break the audit trail."""
    try:
        text = json.dumps(
            {str(key): value for key, value in detail.items()},
            sort_keys=True,
            default=_jsonable,
            separators=(",", ":"),
        )
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidSubmission(what, f"not serialisable as JSON ({exc})") from exc
    if len(text) > MAX_DETAIL_BYTES:
        raise InvalidSubmission(what, f"larger than {MAX_DETAIL_BYTES} bytes as JSON")
    return text


def load_detail(text: str) -> Mapping[str, object]:
    """Read-only mapping of a stored detail."""
    value = json.loads(text)
    return MappingProxyType(value if isinstance(value, dict) else {"value": value})


def message_from_row(row: sqlite3.Row) -> Message:
    """Typed `Message` of a `messages` row."""
    environment = row["environment"]
    return Message(
        id=row["id"],
        direction=Direction(row["direction"]),
        source=row["source"],
        connection=row["connection"],
        interface_code=row["interface_code"],
        environment=None if environment is None else Environment(environment),
        protocol=row["protocol"],
        peer_message_id=row["peer_message_id"],
        file_name=row["file_name"],
        sha256=row["sha256"],
        size=row["size"],
        state=MessageState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=_opt_time(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=parse_time(row["created_at"]),
        updated_at=parse_time(row["updated_at"]),
        sent_message_id=row["sent_message_id"],
        correlated_at=_opt_time(row["correlated_at"]),
    )


def event_from_row(row: sqlite3.Row) -> Event:
    """Typed `Event` of an `events` row."""
    state = row["state"]
    return Event(
        seq=row["seq"],
        message_id=row["message_id"],
        at=parse_time(row["at"]),
        kind=row["kind"],
        state=None if state is None else MessageState(state),
        detail=load_detail(row["detail"]),
    )


def change_from_row(row: sqlite3.Row) -> ConnectionChange:
    """Typed `ConnectionChange` of a `connection_history` row."""
    old = row["old_status"]
    return ConnectionChange(
        seq=row["seq"],
        connection=row["connection"],
        at=parse_time(row["at"]),
        actor=row["actor"],
        old_status=None if old is None else ConnectionStatus(old),
        new_status=ConnectionStatus(row["new_status"]),
        change=load_detail(row["change"]),
    )
