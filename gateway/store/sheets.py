"""The write side of connection sheets: lifecycle status and its append-only history.

A mixin of `Ledger` (the writer thread's one write object): every change of a sheet's status,
and every edit that keeps it, is one row of `connection_history` in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime

from gateway.model import ConnectionStatus
from gateway.store import ConnectionChange, InvalidSubmission, UnknownConnection
from gateway.store.checks import check_text
from gateway.store.queries import connection_status
from gateway.store.rows import dump_detail, fmt_time, load_detail


class SheetLedger:
    """Connection-sheet writes; `now` is the ledger's clock."""

    def now(self) -> datetime:
        raise NotImplementedError

    def set_connection_status(
        self,
        conn: sqlite3.Connection,
        name: str,
        *,
        status: ConnectionStatus,
        actor: str,
        change: Mapping[str, object],
    ) -> ConnectionChange:
        """New lifecycle status of a sheet, historised with who did it and what changed."""
        check_text("connection", name)
        given: object = status
        if not isinstance(given, ConnectionStatus):
            raise InvalidSubmission("status", "must be a ConnectionStatus")
        old = connection_status(conn, name)
        now = self.now()
        conn.execute(
            """INSERT INTO connection_states (name, status, updated_at) VALUES (?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET status = excluded.status,
               updated_at = excluded.updated_at""",
            (name, status.value, fmt_time(now)),
        )
        return self._history(conn, name, at=now, actor=actor, old=old, new=status, change=change)

    def record_connection_change(
        self, conn: sqlite3.Connection, name: str, *, actor: str, change: Mapping[str, object]
    ) -> ConnectionChange:
        """A sheet edit that keeps its status (the caller sets a new one separately)."""
        current = connection_status(conn, name)
        if current is None:
            raise UnknownConnection(name)
        now = self.now()
        conn.execute(
            "UPDATE connection_states SET updated_at = ? WHERE name = ?", (fmt_time(now), name)
        )
        return self._history(
            conn, name, at=now, actor=actor, old=current, new=current, change=change
        )

    def _history(
        self,
        conn: sqlite3.Connection,
        name: str,
        *,
        at: datetime,
        actor: str,
        old: ConnectionStatus | None,
        new: ConnectionStatus,
        change: Mapping[str, object],
    ) -> ConnectionChange:
        check_text("actor", actor)
        text = dump_detail(change, what="change")
        cursor = conn.execute(
            """INSERT INTO connection_history (connection, at, actor, old_status, new_status,
               change) VALUES (?, ?, ?, ?, ?, ?)""",
            (name, fmt_time(at), actor, None if old is None else old.value, new.value, text),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return ConnectionChange(seq, name, at, actor, old, new, load_detail(text))
