"""Read-side SQL, and the small pool of read-only connections the offload threads use.

Functions take a connection so the writer can run the same lookups inside its transaction
(duplicate detection must see what the current batch already inserted).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from gateway.model import ConnectionStatus, Direction, MessageState
from gateway.store import (
    ConnectionChange,
    Event,
    InvalidSubmission,
    Message,
    StoreError,
    Submission,
    UnknownMessage,
)
from gateway.store.rows import (
    change_from_row,
    event_from_row,
    message_from_row,
    parse_time,
)
from gateway.store.schema import connect

T = TypeVar("T")
MAX_LIST = 10_000
PENDING_STATES = (MessageState.QUEUED.value, MessageState.SENDING.value, MessageState.SENT.value)


def message_row(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row:
    """The row of `message_id`, or UnknownMessage."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM messages WHERE id = ?", (message_id,)
    ).fetchone()
    if row is None:
        raise UnknownMessage(message_id)
    return row


def get_message(conn: sqlite3.Connection, message_id: str) -> Message:
    """Typed message, or UnknownMessage."""
    return message_from_row(message_row(conn, message_id))


def find_duplicate(
    conn: sqlite3.Connection, sub: Submission, sha256: str
) -> tuple[Message, str] | None:
    """The message this submission repeats and how it was recognised, if any."""
    if sub.peer_message_id is not None:
        row = conn.execute(
            "SELECT * FROM messages WHERE source = ? AND peer_message_id = ?",
            (sub.source, sub.peer_message_id),
        ).fetchone()
        if row is not None:
            return message_from_row(row), "peer_message_id"
    row = conn.execute(
        "SELECT * FROM messages WHERE source = ? AND interface_code = ? AND sha256 = ?",
        (sub.source, sub.interface_code, sha256),
    ).fetchone()
    return None if row is None else (message_from_row(row), "content")


def peer_id_known(conn: sqlite3.Connection, sub: Submission) -> bool:
    """Has `sub.source` already handed over a message under this peer id?"""
    row = conn.execute(
        "SELECT 1 FROM messages WHERE source = ? AND peer_message_id = ?",
        (sub.source, sub.peer_message_id),
    ).fetchone()
    return row is not None


def is_referenced(conn: sqlite3.Connection, sha256: str) -> bool:
    """Does any message name this payload?"""
    row = conn.execute("SELECT 1 FROM messages WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
    return row is not None


def events_of(conn: sqlite3.Connection, message_id: str) -> list[Event]:
    """The audit trail of one message, oldest first."""
    message_row(conn, message_id)
    rows = conn.execute(
        "SELECT * FROM events WHERE message_id = ? ORDER BY seq", (message_id,)
    ).fetchall()
    return [event_from_row(row) for row in rows]


def list_messages(
    conn: sqlite3.Connection,
    *,
    state: MessageState | None,
    interface_code: str | None,
    connection: str | None,
    direction: Direction | None,
    limit: int,
    newest_first: bool,
) -> list[Message]:
    """Messages matching every given filter, in acceptance order (ids are time-sortable)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidSubmission("limit", f"must be an integer between 1 and {MAX_LIST}")
    filters = {
        "state = ?": None if state is None else state.value,
        "interface_code = ?": interface_code,
        "connection = ?": connection,
        "direction = ?": None if direction is None else direction.value,
    }
    clauses = [clause for clause, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    where = " AND ".join(clauses) if clauses else "1"
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT * FROM messages WHERE {where} ORDER BY id {order} LIMIT ?"  # noqa: S608 - fixed fragments, bound values
    rows = conn.execute(sql, (*params, limit)).fetchall()
    return [message_from_row(row) for row in rows]


def outbox_stats(conn: sqlite3.Connection, *, now: datetime) -> dict[str, tuple[int, float]]:
    """Per connection: messages waiting (queued, sending, sent) and the oldest one's age."""
    rows = conn.execute(
        """SELECT connection, COUNT(*), MIN(created_at) FROM messages
           WHERE state IN (?, ?, ?) AND connection IS NOT NULL GROUP BY connection""",
        PENDING_STATES,
    ).fetchall()
    return {
        row[0]: (int(row[1]), max(0.0, (now - parse_time(row[2])).total_seconds())) for row in rows
    }


def find_by_peer_id(
    conn: sqlite3.Connection, *, source: str, peer_message_id: str
) -> Message | None:
    """By the id the peer gave us (inbound) or, failing that, the id we gave it on `source`."""
    row = conn.execute(
        "SELECT * FROM messages WHERE source = ? AND peer_message_id = ?",
        (source, peer_message_id),
    ).fetchone()
    if row is None:
        row = conn.execute(
            """SELECT * FROM messages WHERE connection = ? AND sent_message_id = ?
               ORDER BY id DESC LIMIT 1""",
            (source, peer_message_id),
        ).fetchone()
    return None if row is None else message_from_row(row)


def connection_status(conn: sqlite3.Connection, name: str) -> ConnectionStatus | None:
    """The recorded lifecycle status of a connection sheet, if any."""
    row = conn.execute("SELECT status FROM connection_states WHERE name = ?", (name,)).fetchone()
    return None if row is None else ConnectionStatus(row[0])


def connection_history(conn: sqlite3.Connection, name: str) -> list[ConnectionChange]:
    """Every recorded change of a connection sheet, oldest first."""
    rows = conn.execute(
        "SELECT * FROM connection_history WHERE connection = ? ORDER BY seq", (name,)
    ).fetchall()
    return [change_from_row(row) for row in rows]


class Readers:
    """Read-only connections handed to one offload thread at a time (WAL: never blocked)."""

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Blocking: run `fn` on an idle read connection; sqlite errors become StoreError."""
        conn = self._take()
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc
        finally:
            self._idle.put(conn)

    def _take(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            try:
                conn = connect(self._db_path, readonly=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open a read connection: {exc}") from exc
            self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection (call once no reader is running)."""
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()
