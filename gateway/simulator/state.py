"""The simulator's memory, in its own SQLite file under var/simulator/ (never the gateway's).

Two tables: `deposits` (every flow the gateway handed over, with the integration verdict) and
`outbox` (every flow the simulator owes the gateway — reports, statuses, G2B invoices — with the
time it is due). A flow leaves `outbox` pending until the gateway acknowledged it, so the gateway
may be killed and restarted under a running simulator: what was due is sent once it is back.
Methods are blocking (sqlite3): call them through `gateway.offload.run_blocking`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Deposit", "Due", "Owed", "SimulatorState"]

Owed = tuple[str, str, str, str, bytes, float]  # code, file_name, kind, about, body, due_at

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deposits (
    flow_id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    code TEXT NOT NULL,
    file_name TEXT NOT NULL,
    peer_message_id TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    received_at REAL NOT NULL,
    result TEXT NOT NULL,
    reason TEXT,
    invoices TEXT NOT NULL,
    UNIQUE (connection, peer_message_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    code TEXT NOT NULL,
    file_name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    about TEXT NOT NULL,
    body BLOB NOT NULL,
    due_at REAL NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS answered (
    invoice TEXT PRIMARY KEY
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, due_at);
"""


@dataclass(frozen=True, slots=True)
class Deposit:
    """A flow the gateway deposited, as Chorus Pro integrated (or rejected) it."""

    flow_id: str
    connection: str
    code: str
    file_name: str
    peer_message_id: str | None
    size: int
    sha256: str
    received_at: float
    result: str
    reason: str | None
    invoices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Due:
    """A flow owed to the gateway."""

    id: int
    connection: str
    code: str
    file_name: str
    kind: str  # report | status | invoice
    about: str  # the deposit's flow id, or the invoice number
    body: bytes
    attempts: int


class SimulatorState:
    """One SQLite file; every method is one short transaction (thread-safe, for the pool)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def find_deposit(self, connection: str, peer_message_id: str) -> Deposit | None:
        """The deposit a repeated transfer already made (same connection, same peer id)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM deposits WHERE connection = ? AND peer_message_id = ?",
                (connection, peer_message_id),
            ).fetchone()
        return _deposit(row) if row else None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record_deposit(self, deposit: Deposit, owed: list[Owed]) -> None:
        """The deposit and what it makes the simulator owe (on its connection), atomically."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO deposits VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    deposit.flow_id, deposit.connection, deposit.code, deposit.file_name,
                    deposit.peer_message_id, deposit.size, deposit.sha256, deposit.received_at,
                    deposit.result, deposit.reason, json.dumps(list(deposit.invoices)),
                ),
            )  # fmt: skip
            _owe(db, deposit.connection, owed)

    def owe(self, connection: str, owed: list[Owed]) -> None:
        """Flows owed without a deposit (G2B invoices the simulator issues)."""
        with self._transaction() as db:
            _owe(db, connection, owed)

    def due(self, *, now: float, limit: int = 20) -> list[Due]:
        """Pending flows whose time has come, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, connection, code, file_name, kind, about, body, attempts FROM outbox"
                " WHERE sent_at IS NULL AND due_at <= ? ORDER BY due_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Due(*row) for row in rows]

    def mark_sent(self, flow: int, *, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (now, flow))

    def mark_failed(self, flow: int, *, reason: str, retry_at: float) -> None:
        """Left pending, tried again at `retry_at` (the gateway may be down); every flow of the
        same connection due before then waits too, so no status overtakes its report (the
        order Chorus Pro sends them in is kept: by due time, then by insertion)."""
        with self._transaction() as db:
            row = db.execute("SELECT connection FROM outbox WHERE id = ?", (flow,)).fetchone()
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, due_at = ?"
                " WHERE id = ?",
                (reason[:500], retry_at, flow),
            )
            if row is not None:
                db.execute(
                    "UPDATE outbox SET due_at = ? WHERE connection = ? AND sent_at IS NULL"
                    " AND due_at < ?",
                    (retry_at, row[0], retry_at),
                )

    def issued_invoices(self, *, unanswered: bool = False) -> list[tuple[str, str, str]]:
        """(connection, invoice number, file name) of the G2B invoices the gateway took."""
        with self._lock:
            rows = self._db.execute(
                "SELECT connection, about, file_name FROM outbox"
                " WHERE kind = 'invoice' AND sent_at IS NOT NULL"
                " AND (? = 0 OR about NOT IN (SELECT invoice FROM answered)) ORDER BY id",
                (int(unanswered),),
            ).fetchall()
        return [(str(c), str(a), str(f)) for c, a, f in rows]

    def mark_answered(self, invoice: str) -> None:
        """The back office's status about this G2B invoice was dropped (never twice)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO answered VALUES (?)", (invoice,))

    def deposits(self) -> list[Deposit]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM deposits ORDER BY received_at").fetchall()
        return [_deposit(row) for row in rows]

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(connection, kind) -> (sent, pending): the summary table's numbers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT connection, kind, SUM(sent_at IS NOT NULL), SUM(sent_at IS NULL)"
                " FROM outbox GROUP BY connection, kind"
            ).fetchall()
        return {(c, k): (int(s), int(p)) for c, k, s, p in rows}


def _owe(db: sqlite3.Connection, connection: str, owed: list[Owed]) -> None:
    db.executemany(
        "INSERT INTO outbox (connection, code, file_name, kind, about, body, due_at)"
        " VALUES (?,?,?,?,?,?,?)",
        [(connection, *row) for row in owed],
    )


def _deposit(row: tuple[object, ...]) -> Deposit:
    invoices = json.loads(str(row[10]))
    return Deposit(
        flow_id=str(row[0]), connection=str(row[1]), code=str(row[2]), file_name=str(row[3]),
        peer_message_id=None if row[4] is None else str(row[4]), size=int(str(row[5])),
        sha256=str(row[6]), received_at=float(str(row[7])), result=str(row[8]),
        reason=None if row[9] is None else str(row[9]), invoices=tuple(invoices),
    )  # fmt: skip
