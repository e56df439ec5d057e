"""The write side: every state change and its event, as functions of the writer's connection.

Each public method runs inside the writer's transaction (one savepoint per call), so the new
state and the event that explains it are committed together or not at all. Transitions are
checked against one table: a pair missing from it is an IllegalTransition.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from gateway.model import Direction, Environment, MessageState
from gateway.store import (
    Clock,
    Event,
    IllegalTransition,
    InvalidSubmission,
    Message,
    RetryPolicy,
    backoff_delay,
)
from gateway.store.checks import check_file_name, check_text, clip_reason
from gateway.store.ledger_accept import AcceptLedger, Step
from gateway.store.queries import get_message
from gateway.store.returns import insert_references
from gateway.store.rows import MessageIds, dump_detail, fmt_time, load_detail, message_from_row
from gateway.store.sheets import SheetLedger

S = MessageState
_LIVE = frozenset({S.ACCEPTED, S.QUEUED, S.SENDING, S.SENT})
ALLOWED_FROM: Mapping[str, frozenset[MessageState]] = MappingProxyType(
    {
        "route": frozenset({S.ACCEPTED}),
        "reject": _LIVE,
        "record_sent": frozenset({S.SENDING}),
        "record_acknowledged": frozenset({S.SENDING, S.SENT}),
        "record_failure": frozenset({S.SENDING, S.SENT}),
        "retry": frozenset({S.DEAD, S.REJECTED}),
        "mark_delivered": _LIVE,
        "record_delivery_failure": frozenset({S.ACCEPTED}),
    }
)
MAX_CLAIM = 1000
Linked = tuple[str, str, Mapping[str, object]]  # (message id, event kind, event detail)

_INSERT_EVENT = "INSERT INTO events (message_id, at, kind, state, detail) VALUES (?, ?, ?, ?, ?)"
_UPDATE = """UPDATE messages SET state = ?, connection = ?, environment = ?, file_name = ?,
    attempts = ?, next_attempt_at = ?, last_error = ?, sent_message_id = ?, updated_at = ?
    WHERE id = ?"""


def _opt(moment: datetime | None) -> str | None:
    return None if moment is None else fmt_time(moment)


def _check_route(connection: str, file_name: str | None) -> None:
    check_text("connection", connection)
    if file_name is not None:
        check_file_name("file_name", file_name)


class Ledger(AcceptLedger, SheetLedger):
    """Writes made by the writer thread; owns the id generator and the clock reading."""

    def __init__(self, *, clock: Clock, rand: Callable[[], float]) -> None:
        self._clock = clock
        self._rand = rand
        self._ids = MessageIds()

    def now(self) -> datetime:
        """The injected clock, checked aware and normalised to UTC."""
        moment = self._clock()
        fmt_time(moment)
        return moment.astimezone(UTC)

    # --- transitions -----------------------------------------------------------------------

    def route(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        connection: str,
        environment: Environment | None,
        file_name: str | None,
    ) -> Message:
        """ACCEPTED -> QUEUED on `connection`, due now."""
        _check_route(connection, file_name)
        old = self._load(conn, message_id, "route", S.QUEUED)
        new, kind, detail = self._routed(
            old, connection=connection, environment=environment, file_name=file_name
        )
        return self._save(conn, new, kind=kind, detail=detail)

    def _routed(
        self,
        old: Message,
        *,
        connection: str,
        environment: Environment | None,
        file_name: str | None,
    ) -> Step:
        _check_route(connection, file_name)
        now = self.now()
        new = replace(
            old,
            state=S.QUEUED,
            connection=connection,
            environment=environment if environment is not None else old.environment,
            file_name=file_name if file_name is not None else old.file_name,
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
        )
        detail: dict[str, object] = {"connection": connection, "environment": new.environment}
        detail |= {"file_name": new.file_name, "submitted_as": old.file_name}  # name given to us
        return new, "routed", detail

    def reject(self, conn: sqlite3.Connection, message_id: str, *, reason: str) -> Message:
        """Any live state -> REJECTED, for good (an operator may still `retry`)."""
        old = self._load(conn, message_id, "reject", S.REJECTED)
        new, kind, detail = self._rejected(old, reason=reason)
        return self._save(conn, new, kind=kind, detail=detail)

    def _rejected(self, old: Message, *, reason: str) -> Step:
        now, why = self.now(), clip_reason(reason)
        new = replace(old, state=S.REJECTED, next_attempt_at=None, last_error=why, updated_at=now)
        return new, "rejected", {"reason": why}

    def claim_due(self, conn: sqlite3.Connection, *, connection: str, limit: int) -> list[Message]:
        """QUEUED and due -> SENDING, attempts + 1; the writer serialises claimers."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CLAIM:
            raise InvalidSubmission("limit", f"must be an integer between 1 and {MAX_CLAIM}")
        now = self.now()
        rows = conn.execute(
            """SELECT * FROM messages WHERE state = ? AND connection = ? AND next_attempt_at <= ?
               AND direction = ? ORDER BY next_attempt_at, id LIMIT ?""",
            (S.QUEUED.value, connection, fmt_time(now), Direction.EMISSION.value, limit),
        ).fetchall()
        claimed = []
        for row in rows:
            old = message_from_row(row)
            new = replace(
                old,
                state=S.SENDING,
                attempts=old.attempts + 1,
                next_attempt_at=None,
                updated_at=now,
            )
            claimed.append(self._save(conn, new, kind="claimed", detail={"attempt": new.attempts}))
        return claimed

    def record_sent(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        peer_message_id: str | None,
        awaiting_ack: bool,
        detail: Mapping[str, object],
    ) -> Message:
        """SENDING -> SENT (waiting for an acknowledgement) or straight to ACKNOWLEDGED."""
        if peer_message_id is not None:
            check_text("peer_message_id", peer_message_id, limit=1024)
        target = S.SENT if awaiting_ack else S.ACKNOWLEDGED
        old = self._load(conn, message_id, "record_sent", target)
        now = self.now()
        sent_id = peer_message_id if peer_message_id is not None else old.sent_message_id
        new = replace(old, state=target, sent_message_id=sent_id, last_error=None, updated_at=now)
        full = {**detail, "peer_message_id": peer_message_id, "attempt": old.attempts}
        return self._save(conn, new, kind="sent" if awaiting_ack else "acknowledged", detail=full)

    def record_acknowledged(
        self, conn: sqlite3.Connection, message_id: str, *, detail: Mapping[str, object]
    ) -> Message:
        """SENT/SENDING -> ACKNOWLEDGED (MDN, PeSIT ack, integration report)."""
        old = self._load(conn, message_id, "record_acknowledged", S.ACKNOWLEDGED)
        new = replace(old, state=S.ACKNOWLEDGED, last_error=None, updated_at=self.now())
        return self._save(conn, new, kind="acknowledged", detail=detail)

    def record_failure(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        reason: str,
        retryable: bool,
        policy: RetryPolicy,
    ) -> Message:
        """QUEUED again with backoff, DEAD once attempts are spent, REJECTED if not retryable."""
        old = self._load(conn, message_id, "record_failure", S.QUEUED if retryable else S.REJECTED)
        now, why = self.now(), clip_reason(reason)
        detail: dict[str, object] = {"reason": why, "attempt": old.attempts}
        if not retryable:
            new = replace(old, state=S.REJECTED, next_attempt_at=None, last_error=why)
            kind = "rejected"
        elif old.attempts >= policy.max_attempts:
            new = replace(old, state=S.DEAD, next_attempt_at=None, last_error=why)
            kind = "dead"
        else:
            delay = backoff_delay(old.attempts, policy, self._rand)
            due = now + timedelta(seconds=delay)
            new = replace(old, state=S.QUEUED, next_attempt_at=due, last_error=why)
            kind, detail["delay_s"], detail["next_attempt_at"] = "retry_scheduled", delay, due
        return self._save(conn, replace(new, updated_at=now), kind=kind, detail=detail)

    def retry(self, conn: sqlite3.Connection, message_id: str) -> Message:
        """Operator revival: DEAD/REJECTED -> QUEUED due now (ACCEPTED if never routed).

        A received flow goes back to ACCEPTED: its connection is where it came *from*, and
        queueing it there would send it back to Chorus Pro instead of to the back office.
        """
        old = self._load(conn, message_id, "retry", S.QUEUED)
        now = self.now()
        routed = old.connection is not None and old.direction is Direction.EMISSION
        new = replace(
            old,
            state=S.QUEUED if routed else S.ACCEPTED,
            attempts=0,
            next_attempt_at=now if routed else None,
            updated_at=now,
        )
        return self._save(conn, new, kind="retried", detail={"previous_state": old.state})

    def mark_delivered(
        self, conn: sqlite3.Connection, message_id: str, *, detail: Mapping[str, object]
    ) -> Message:
        """A received flow handed to the back office: live state -> DELIVERED."""
        old = self._load(conn, message_id, "mark_delivered", S.DELIVERED)
        new = replace(old, state=S.DELIVERED, next_attempt_at=None, updated_at=self.now())
        return self._save(conn, new, kind="delivered", detail=detail)

    def record_delivery_failure(
        self, conn: sqlite3.Connection, message_id: str, *, reason: str, policy: RetryPolicy
    ) -> Message:
        """A received flow the back office did not take: due again later, DEAD after the limit."""
        old = self._load(conn, message_id, "record_delivery_failure", S.DEAD)
        if old.direction is not Direction.RECEPTION:
            raise InvalidSubmission("message_id", "only received flows are delivered")
        now, why, attempt = self.now(), clip_reason(reason), old.attempts + 1
        detail: dict[str, object] = {"reason": why, "attempt": attempt}
        if attempt >= policy.max_attempts:
            new = replace(old, state=S.DEAD, attempts=attempt, next_attempt_at=None)
            kind = "dead"
        else:
            due = now + timedelta(seconds=backoff_delay(attempt, policy, self._rand))
            new = replace(old, attempts=attempt, next_attempt_at=due)
            kind, detail["next_attempt_at"] = "delivery_retry_scheduled", due
        new = replace(new, last_error=why, updated_at=now)
        return self._save(conn, new, kind=kind, detail=detail)

    def record_correlation(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        kind: str | None,
        detail: Mapping[str, object],
        references: Mapping[str, Sequence[str]],
        linked: Sequence[Linked],
    ) -> bool:
        """References, events on linked messages and the mark, all or nothing, exactly once.

        False (and nothing written) when the message was already correlated: a crash between
        two correlation steps can never record the same status twice.
        """
        for text in (kind, *(link[1] for link in linked)):
            if text is not None:
                check_text("kind", text, limit=64)
        get_message(conn, message_id)
        now = self.now()
        cursor = conn.execute(
            "UPDATE messages SET correlated_at = ? WHERE id = ? AND correlated_at IS NULL",
            (fmt_time(now), message_id),
        )
        if cursor.rowcount == 0:
            return False
        for ref_kind, values in references.items():
            insert_references(conn, message_id, kind=ref_kind, values=values)
        for target, event_kind, event_detail in linked:
            get_message(conn, target)
            self._event(conn, target, at=now, kind=event_kind, state=None, detail=event_detail)
        if kind is not None:
            self._event(conn, message_id, at=now, kind=kind, state=None, detail=detail)
        return True

    def recover(self, conn: sqlite3.Connection) -> int:
        """Start-up: a send interrupted by a crash is queued again, due now."""
        now = self.now()
        rows = conn.execute("SELECT * FROM messages WHERE state = ?", (S.SENDING.value,))
        count = 0
        for row in rows.fetchall():
            old = message_from_row(row)
            new = replace(old, state=S.QUEUED, next_attempt_at=now, updated_at=now)
            self._save(conn, new, kind="recovered", detail={"attempt": old.attempts})
            count += 1
        return count

    def record_event(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        kind: str,
        detail: Mapping[str, object],
    ) -> Event:
        """A fact about a message that does not change its state."""
        check_text("kind", kind, limit=64)
        get_message(conn, message_id)
        return self._event(conn, message_id, at=self.now(), kind=kind, state=None, detail=detail)

    # --- helpers ---------------------------------------------------------------------------

    def _load(
        self, conn: sqlite3.Connection, message_id: str, op: str, attempted: MessageState
    ) -> Message:
        message = get_message(conn, message_id)
        if message.state not in ALLOWED_FROM[op]:
            raise IllegalTransition(message_id, current=message.state, attempted=attempted)
        return message

    def _save(
        self, conn: sqlite3.Connection, new: Message, *, kind: str, detail: Mapping[str, object]
    ) -> Message:
        env = None if new.environment is None else new.environment.value
        conn.execute(
            _UPDATE,
            (new.state.value, new.connection, env, new.file_name, new.attempts,
             _opt(new.next_attempt_at), new.last_error, new.sent_message_id,
             fmt_time(new.updated_at), new.id),
        )  # fmt: skip
        stamp = fmt_time(new.updated_at)
        self._append(conn, new.id, at=stamp, kind=kind, state=new.state, detail=detail)
        return new

    def _append(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        at: str,
        kind: str,
        state: MessageState | None,
        detail: Mapping[str, object],
    ) -> None:
        """One event row, when nobody needs it back as an `Event`."""
        conn.execute(
            _INSERT_EVENT,
            (message_id, at, kind, None if state is None else state.value, dump_detail(detail)),
        )

    def _event(
        self,
        conn: sqlite3.Connection,
        message_id: str,
        *,
        at: datetime,
        kind: str,
        state: MessageState | None,
        detail: Mapping[str, object],
    ) -> Event:
        text = dump_detail(detail)
        cursor = conn.execute(
            _INSERT_EVENT,
            (message_id, fmt_time(at), kind, None if state is None else state.value, text),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return Event(seq, message_id, at, kind, state, load_detail(text))
