"""The write side of `accept`: a new message and its first events, in one statement each.

A mixin of `Ledger`. A new message is inserted directly in the state its submission decided
(accepted, or already routed or rejected), with one event per state it went through
('accepted', then 'routed' or 'rejected'), all in the writer's transaction: the row and the
events that explain it commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
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
from gateway.store.rows import MessageIds, fmt_time

if TYPE_CHECKING:
    from gateway.store import Event

S = MessageState
_INSERT = """INSERT INTO messages (id, direction, source, connection, interface_code, environment,
    protocol, peer_message_id, file_name, sha256, size, state, attempts, next_attempt_at,
    last_error, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"""
Step = tuple[Message, str, dict[str, object]]  # the message after a transition, its event


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

        def _append(
            self,
            conn: sqlite3.Connection,
            message_id: str,
            *,
            at: str,
            kind: str,
            state: MessageState | None,
            detail: Mapping[str, object],
        ) -> None: ...

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
            new = Message(
                self._ids.next(now), sub.direction, sub.source, sub.connection,
                sub.interface_code, sub.environment, sub.protocol, sub.peer_message_id,
                sub.file_name, sha256, size, S.ACCEPTED, 0, None, None, now, now,
            )  # fmt: skip
            accepted: dict[str, object] = {"protocol": sub.protocol, "size": size, "sha256": sha256}
            steps: list[Step] = [(new, "accepted", accepted)]
            if disposition is not None:
                steps.append(self._disposed(new, disposition))
            final = steps[-1][0]
            try:
                self._insert(conn, final)
            except sqlite3.IntegrityError:
                found = find_duplicate(conn, sub, sha256)
                if found is None:  # another constraint: not a repeat
                    raise
                return self._repeat(conn, sub, found, sha256=sha256, size=size, at=now)
            for step, kind, detail in steps:
                at = fmt_time(step.updated_at)
                self._append(conn, new.id, at=at, kind=kind, state=step.state, detail=detail)
            for extra, more in sub.events:
                self._append(conn, new.id, at=at, kind=extra, state=None, detail=more)
            return Receipt(new.id, sha256, size, False, now, final.state)
        found = find_duplicate(conn, sub, sha256)
        if found is None:
            raise StoreError("the message this submission repeated is gone; submit it again")
        return self._repeat(conn, sub, found, sha256=sha256, size=size, at=now)

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

    @staticmethod
    def _insert(conn: sqlite3.Connection, m: Message) -> None:
        env = None if m.environment is None else m.environment.value
        due = None if m.next_attempt_at is None else fmt_time(m.next_attempt_at)
        conn.execute(
            _INSERT,
            (m.id, m.direction.value, m.source, m.connection, m.interface_code, env,
             m.protocol, m.peer_message_id, m.file_name, m.sha256, m.size, m.state.value,
             due, m.last_error, fmt_time(m.created_at), fmt_time(m.updated_at)),
        )  # fmt: skip
