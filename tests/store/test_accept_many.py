"""`Ledger.accept_many`: new messages written together record exactly what `accept` records
one by one, in two statements whatever their number; a repeat among them fails the write
with nothing written, so that the writer can run each alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from gateway.model import Environment
from gateway.store import Disposition, Receipt, RejectWith, RouteTo
from gateway.store.ledger import Ledger
from gateway.store.ledger_accept import NewMessage
from gateway.store.schema import connect, migrate
from tests.store.conftest import FakeClock, sha, sub

T = TypeVar("T")


def _named(message_id: str) -> str:
    return f"FSO1100A_{message_id}.xml"


ITEMS = (
    NewMessage(sub(), sha(b"plain"), 5),
    NewMessage(
        sub(peer_message_id="<p1@peer>", file_name="a.xml"),
        sha(b"routed"),
        6,
        RouteTo("b2g-qual-as2", Environment.QUAL, _named),
    ),
    NewMessage(
        sub(events=(("answered", {"mdn": "processed"}),)),
        sha(b"rejected"),
        8,
        RejectWith("not an invoice"),
    ),
    NewMessage(sub(interface_code="FSO1106A", connection="b2g-qual-sftp"), sha(b"cii"), 3),
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "raccord.db")
    conn.row_factory = None  # plain tuples
    migrate(conn, now="2026-09-01T08:00:00+00:00")
    yield conn
    conn.close()


def _ledger() -> Ledger:
    return Ledger(clock=FakeClock(), rand=lambda: 0.5)


def _contents(
    conn: sqlite3.Connection,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Messages and events in order, ids replaced by their rank (ids hold random bits)."""
    ids = [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]
    rank = {message_id: n for n, message_id in enumerate(ids)}
    messages = [
        (rank[row[0]], *(v.replace(row[0], "ID") if isinstance(v, str) else v for v in row[1:]))
        for row in conn.execute("SELECT * FROM messages ORDER BY id")
    ]
    events = [
        (rank[row[0]], *(v.replace(row[0], "ID") if isinstance(v, str) else v for v in row[1:]))
        for row in conn.execute(
            "SELECT message_id, at, kind, state, detail FROM events ORDER BY seq"
        )
    ]
    return messages, events


def _unnamed(receipt: Receipt) -> Receipt:
    return replace(receipt, message_id="")


def _write(conn: sqlite3.Connection, write: Callable[[], T]) -> T:
    """`write` in a transaction of its own, as the writer runs it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = write()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def test_together_records_what_one_by_one_records(db: sqlite3.Connection, tmp_path: Path) -> None:
    alone = connect(tmp_path / "alone.db")
    alone.row_factory = None
    migrate(alone, now="2026-09-01T08:00:00+00:00")
    one_by_one, together = _ledger(), _ledger()

    def each(item: NewMessage) -> Callable[[], Receipt]:
        return lambda: one_by_one.accept(alone, item.sub, sha256=item.sha256, size=item.size,
                                         placed=True, disposition=item.disposition)  # fmt: skip

    singles = [_write(alone, each(item)) for item in ITEMS]
    grouped = _write(db, lambda: together.accept_many(db, ITEMS))
    assert [_unnamed(r) for r in grouped] == [_unnamed(r) for r in singles]
    assert _contents(db) == _contents(alone)
    messages, events = _contents(db)
    assert [m[11] for m in messages] == ["accepted", "queued", "rejected", "accepted"]
    assert [(e[0], e[2]) for e in events] == [
        (0, "accepted"), (1, "accepted"), (1, "routed"), (2, "accepted"), (2, "rejected"),
        (2, "answered"), (3, "accepted"),
    ]  # fmt: skip
    alone.close()


def test_more_rows_than_one_statement_holds_are_written_in_order(db: sqlite3.Connection) -> None:
    route: Disposition = RouteTo("b2g-qual-as2", Environment.QUAL, _named)
    items = [NewMessage(sub(), sha(str(n).encode()), n, route) for n in range(150)]
    traced: list[str] = []
    db.set_trace_callback(traced.append)
    receipts = _write(db, lambda: _ledger().accept_many(db, items))
    db.set_trace_callback(None)
    ids = [row[0] for row in db.execute("SELECT id FROM messages ORDER BY rowid")]
    assert ids == [r.message_id for r in receipts] == sorted(ids)
    sizes = [row[0] for row in db.execute("SELECT size FROM messages ORDER BY id")]
    assert sizes == list(range(150))
    kinds = db.execute("SELECT message_id, kind FROM events ORDER BY seq").fetchall()
    assert kinds == [(i, k) for i in ids for k in ("accepted", "routed")]
    inserts = [s for s in traced if s.startswith("INSERT")]
    assert len(inserts) == 3 + 2  # 150 messages in 60s, 300 events in 190s


def test_a_repeat_among_them_fails_the_write_and_writes_nothing(db: sqlite3.Connection) -> None:
    ledger = _ledger()
    _write(db, lambda: ledger.accept_many(db, ITEMS[:1]))
    again = (ITEMS[1], ITEMS[0])  # the second repeats a recorded message by its content
    with pytest.raises(sqlite3.IntegrityError):
        _write(db, lambda: ledger.accept_many(db, again))
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1
