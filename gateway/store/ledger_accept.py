"""The write side of `accept`: a new message and its first events, in one statement each.

A mixin of `Ledger`. A new message is inserted directly in the state its submission decided
(accepted, or already routed or rejected), with one event per state it went through
('accepted', then 'routed' or 'rejected'), all in the writer's transaction: the row and the
events that explain it commit together or not at all. New messages that share a transaction
(`accept_many`) share their statements too: one INSERT for all their rows, one for all their
events.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.model import Environment, MessageState
from gateway.store import (
    Disposition,
    InvalidSubmission,
    Message,
    Receipt,
    RejectWith,
    RouteTo,
    StoreError,
    Submission,
)
from gateway.store.queries import find_duplicate
from gateway.store.rows import MessageIds, dump_detail, fmt_time

if TYPE_CHECKING:
    from gateway.store import Event

S = MessageState
_INSERT_MESSAGES = """INSERT INTO messages (id, direction, source, connection, interface_code,
    environment, protocol, peer_message_id, file_name, sha256, size, state, attempts,
    next_attempt_at, last_error, created_at, updated_at) VALUES """
_MESSAGE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
_INSERT_EVENTS = "INSERT INTO events (message_id, at, kind, state, detail) VALUES "
_EVENT_VALUES = "(?, ?, ?, ?, ?)"
# Rows per multi-row INSERT: 16 parameters a message stay under 999, the lowest limit an SQLite
# build may have (SQLITE_MAX_VARIABLE_NUMBER before 3.32).
_MESSAGES_PER_INSERT = 60
_EVENTS_PER_INSERT = 190
Step = tuple[Message, str, dict[str, object]]  # the message after a transition, its event
MessageRow = tuple[object, ...]  # the parameters of one message in `_MESSAGE_VALUES`
EventRow = tuple[str, str, str, str | None, str]  # message id, at, kind, state, detail


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One submission whose bytes are placed, to record in a group (`accept_many`)."""

    sub: Submission
    sha256: str
    size: int
    disposition: Disposition | None = None


@functools.cache
def _multi_insert(head: str, values: str, rows: int) -> str:
    """The text of an INSERT of `rows` rows (a handful of lengths occur: cached)."""
    return head + ",".join([values] * rows)


def _insert_rows(
    conn: sqlite3.Connection,
    head: str,
    values: str,
    rows: Sequence[tuple[object, ...]],
    *,
    per_insert: int,
) -> None:
    for start in range(0, len(rows), per_insert):
        chunk = rows[start : start + per_insert]
        conn.execute(
            _multi_insert(head, values, len(chunk)), [value for row in chunk for value in row]
        )


class AcceptLedger:
    """`accept`, over the transitions and event helpers of `Ledger`."""

    if TYPE_CHECKING:
        _ids: MessageIds

        def now(self) -> datetime: ...

        def _routed(
            self,
            old: Message,
            *,
            connection: str,
            environment: Environment | None,
            file_name: str | None,
        ) -> Step: ...

        def _rejected(self, old: Message, *, reason: str) -> Step: ...

        def _event(
            self,
            conn: sqlite3.Connection,
            message_id: str,
            *,
            at: datetime,
            kind: str,
            state: MessageState | None,
            detail: Mapping[str, object],
        ) -> Event: ...

    def accept(
        self,
        conn: sqlite3.Connection,
        sub: Submission,
        *,
        sha256: str,
        size: int,
        placed: bool,
        disposition: Disposition | None = None,
    ) -> Receipt:
        """Record a new message, or a 'duplicate' event on the one it repeats.

        A new message is routed or rejected per `disposition` in the same statement and
        transaction: its 'accepted' and 'routed' (or 'rejected') events commit with it, then
        the submission's own `events`. With placed bytes the row is inserted first, and the
        repeat looked for only when a unique index refuses it (same peer id, or same content
        from the same source): a new message costs no lookup. Without placed bytes the
        submission is known to repeat one.
        """
        now = self.now()
        if placed:
            final, events = self._new_message(sub, sha256=sha256, size=size,
                                               disposition=disposition, now=now)  # fmt: skip
            try:
                conn.execute(_INSERT_MESSAGES + _MESSAGE_VALUES, _message_row(final))
            except sqlite3.IntegrityError:
                found = find_duplicate(conn, sub, sha256)
                if found is None:  # another constraint: not a repeat
                    raise
                return self._repeat(conn, sub, found, sha256=sha256, size=size, at=now)
            _insert_rows(conn, _INSERT_EVENTS, _EVENT_VALUES, events, per_insert=_EVENTS_PER_INSERT)
            return Receipt(final.id, sha256, size, False, now, final.state)
        found = find_duplicate(conn, sub, sha256)
        if found is None:
            raise StoreError("the message this submission repeated is gone; submit it again")
        return self._repeat(conn, sub, found, sha256=sha256, size=size, at=now)

    def accept_many(self, conn: sqlite3.Connection, items: Sequence[NewMessage]) -> list[Receipt]:
        """`accept` of placed bytes for each item, in two statements for all of them.

        Made for the writer's groups (`Grouped`): a repeat among them makes an INSERT fail
        with nothing written by it, and the writer then runs each `accept` alone, which
        records the repeat as such.
        """
        messages: list[MessageRow] = []
        events: list[EventRow] = []
        receipts = []
        for item in items:
            now = self.now()
            final, more = self._new_message(
                item.sub, sha256=item.sha256, size=item.size, disposition=item.disposition, now=now
            )
            messages.append(_message_row(final))
            events += more
            receipts.append(Receipt(final.id, item.sha256, item.size, False, now, final.state))
        _insert_rows(conn, _INSERT_MESSAGES, _MESSAGE_VALUES, messages,
                     per_insert=_MESSAGES_PER_INSERT)  # fmt: skip
        _insert_rows(conn, _INSERT_EVENTS, _EVENT_VALUES, events, per_insert=_EVENTS_PER_INSERT)
        return receipts

    def _new_message(
        self,
        sub: Submission,
        *,
        sha256: str,
        size: int,
        disposition: Disposition | None,
        now: datetime,
    ) -> tuple[Message, list[EventRow]]:
        """A new message in the state its submission decided, and its events in order."""
        new = Message(
            self._ids.next(now), sub.direction, sub.source, sub.connection,
            sub.interface_code, sub.environment, sub.protocol, sub.peer_message_id,
            sub.file_name, sha256, size, S.ACCEPTED, 0, None, None, now, now,
        )  # fmt: skip
        accepted: dict[str, object] = {"protocol": sub.protocol, "size": size, "sha256": sha256}
        steps: list[Step] = [(new, "accepted", accepted)]
        if disposition is not None:
            steps.append(self._disposed(new, disposition))
        events: list[EventRow] = []
        at = ""
        for step, kind, detail in steps:
            at = fmt_time(step.updated_at)
            events.append((new.id, at, kind, step.state.value, dump_detail(detail)))
        for extra, more in sub.events:
            events.append((new.id, at, extra, None, dump_detail(more)))
        return steps[-1][0], events

    def _repeat(
        self,
        conn: sqlite3.Connection,
        sub: Submission,
        found: tuple[Message, str],
        *,
        sha256: str,
        size: int,
        at: datetime,
    ) -> Receipt:
        """A 'duplicate' event on the original, or 'conflicting_repeat' (refused by the
        caller) when a peer id comes back with other bytes; the original's receipt."""
        orig, matched = found
        detail = {"matched": matched, "sha256": sha256, "size": size}
        detail |= {"peer_message_id": sub.peer_message_id, "file_name": sub.file_name}
        conflict = matched == "peer_message_id" and orig.sha256 != sha256
        kind = "conflicting_repeat" if conflict else "duplicate"
        self._event(conn, orig.id, at=at, kind=kind, state=None, detail=detail)
        return Receipt(orig.id, orig.sha256, orig.size, True, orig.created_at, orig.state,
                       conflict=sha256 if conflict else None)  # fmt: skip

    def _disposed(self, new: Message, disposition: Disposition) -> Step:
        if isinstance(disposition, RouteTo):
            name = None if disposition.file_name is None else disposition.file_name(new.id)
            return self._routed(
                new,
                connection=disposition.connection,
                environment=disposition.environment,
                file_name=name,
            )
        if isinstance(disposition, RejectWith):
            return self._rejected(new, reason=disposition.reason)
        raise InvalidSubmission("decide", f"returned {type(disposition).__name__}")


def _message_row(m: Message) -> MessageRow:
    """The parameters of `_MESSAGE_VALUES` for a new message."""
    env = None if m.environment is None else m.environment.value
    due = None if m.next_attempt_at is None else fmt_time(m.next_attempt_at)
    return (m.id, m.direction.value, m.source, m.connection, m.interface_code, env,
            m.protocol, m.peer_message_id, m.file_name, m.sha256, m.size, m.state.value,
            due, m.last_error, fmt_time(m.created_at), fmt_time(m.updated_at))  # fmt: skip
