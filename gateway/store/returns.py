"""SQL for return flows: message references (invoice numbers), the correlation and delivery queues.

A reference is a (kind, value) a message carries, e.g. ("invoice", "F-2026-001"): emitted invoices
are indexed so that a lifecycle status naming an invoice number finds the message that carried
it. Values come from peer payloads, so they are checked like any other peer text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from gateway.model import Direction, Environment, MessageState
from gateway.store import InvalidSubmission, Message
from gateway.store.checks import check_text
from gateway.store.queries import MAX_LIST, message_row
from gateway.store.rows import fmt_time, message_from_row

MAX_REFERENCES = 1000  # per call: an E1 flow carries at most 500 invoices
MAX_REFERENCE = 256
MAX_KIND = 32


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise InvalidSubmission("limit", f"must be an integer between 1 and {MAX_LIST}")
    return limit


def insert_references(
    conn: sqlite3.Connection, message_id: str, *, kind: str, values: Sequence[str]
) -> int:
    """Index `values` under `kind` for the message; returns how many were new."""
    check_text("kind", kind, limit=MAX_KIND)
    if len(values) > MAX_REFERENCES:
        raise InvalidSubmission("values", f"more than {MAX_REFERENCES} references at once")
    for value in values:
        check_text("reference", value, limit=MAX_REFERENCE)
    message_row(conn, message_id)
    added = 0
    for value in dict.fromkeys(values):
        cursor = conn.execute(
            "INSERT OR IGNORE INTO message_refs (kind, value, message_id) VALUES (?, ?, ?)",
            (kind, value, message_id),
        )
        added += cursor.rowcount
    return added


def references_of(conn: sqlite3.Connection, message_id: str) -> dict[str, list[str]]:
    """Every reference of a message, by kind, values sorted."""
    message_row(conn, message_id)
    rows = conn.execute(
        "SELECT kind, value FROM message_refs WHERE message_id = ? ORDER BY kind, value",
        (message_id,),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for kind, value in rows:
        found.setdefault(kind, []).append(value)
    return found


def find_by_reference(
    conn: sqlite3.Connection,
    *,
    kind: str,
    value: str,
    direction: Direction | None,
    environment: Environment | None,
    limit: int,
) -> list[Message]:
    """Messages carrying the reference, newest first (a resubmitted invoice wins)."""
    clauses = ["r.kind = ?", "r.value = ?"]
    params: list[object] = [kind, value]
    if direction is not None:
        clauses.append("m.direction = ?")
        params.append(direction.value)
    if environment is not None:
        clauses.append("m.environment = ?")
        params.append(environment.value)
    where = " AND ".join(clauses)
    sql = (
        "SELECT m.* FROM message_refs r JOIN messages m ON m.id = r.message_id "  # noqa: S608 - fixed fragments, bound values
        f"WHERE {where} ORDER BY m.id DESC LIMIT ?"
    )
    rows = conn.execute(sql, (*params, _limit(limit))).fetchall()
    return [message_from_row(row) for row in rows]


def uncorrelated(conn: sqlite3.Connection, *, limit: int) -> list[Message]:
    """Messages whose references were not extracted yet, in acceptance order."""
    rows = conn.execute(
        "SELECT * FROM messages WHERE correlated_at IS NULL ORDER BY id LIMIT ?", (_limit(limit),)
    ).fetchall()
    return [message_from_row(row) for row in rows]


def due_deliveries(
    conn: sqlite3.Connection, *, now: datetime, codes: Sequence[str] | None, limit: int
) -> list[Message]:
    """Received flows waiting for the back office and due now; `codes` narrows to some codes."""
    sql = """SELECT * FROM messages WHERE state = ? AND direction = ?
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"""
    params: list[object] = [MessageState.ACCEPTED.value, Direction.RECEPTION.value, fmt_time(now)]
    if codes is not None:
        if not codes:
            return []
        sql += f" AND interface_code IN ({', '.join('?' for _ in codes)})"
        params.extend(codes)
    rows = conn.execute(sql + " ORDER BY id LIMIT ?", (*params, _limit(limit))).fetchall()
    return [message_from_row(row) for row in rows]


def next_delivery_at(conn: sqlite3.Connection) -> datetime | None:
    """When the earliest postponed delivery falls due (the delivery loop sleeps until then)."""
    row = conn.execute(
        """SELECT MIN(next_attempt_at) FROM messages WHERE state = ? AND direction = ?
           AND next_attempt_at IS NOT NULL""",
        (MessageState.ACCEPTED.value, Direction.RECEPTION.value),
    ).fetchone()
    return None if row is None or row[0] is None else datetime.fromisoformat(row[0])
