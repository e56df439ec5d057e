"""Schema versioning: ordered migrations, upgrades that keep data, refusal of the unknown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import Receipt, StoreError, open_store
from gateway.store.ledger import Ledger
from gateway.store.schema import MIGRATIONS, Migration, connect, migrate, schema_version
from tests.store.conftest import FakeClock, raw_db, sha, sub


async def test_a_new_store_is_at_the_latest_version_in_wal_mode(
    root: Path, clock: FakeClock
) -> None:
    store = await open_store(root, clock=clock)
    await store.close()
    with raw_db(root) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]
    assert mode == "wal"


def test_migration_versions_are_strictly_increasing() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_a_v1_database_is_upgraded_and_keeps_its_rows(root: Path, clock: FakeClock) -> None:
    root.mkdir()
    conn = connect(root / "raccord.db")
    try:
        assert migrate(conn, now="2026-01-01T00:00:00.000000+00:00", migrations=MIGRATIONS[:1]) == 1
        conn.execute(
            """INSERT INTO messages (id, direction, source, interface_code, protocol, sha256,
               size, state, attempts, created_at, updated_at) VALUES ('01OLD', 'emission', 'api',
               'FSO1100A', 'api', ?, 3, 'accepted', 0, ?, ?)""",
            ("a" * 64, "2026-01-01T00:00:00.000000+00:00", "2026-01-01T00:00:00.000000+00:00"),
        )
    finally:
        conn.close()
    store = await open_store(root, clock=clock)
    try:
        old = await store.get("01OLD")
        assert (old.size, old.sent_message_id) == (3, None)
        await store.accept(b"new", sub())
    finally:
        await store.close()


async def test_a_database_from_newer_code_is_refused(root: Path, clock: FakeClock) -> None:
    store = await open_store(root, clock=clock)
    await store.close()
    with raw_db(root) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'later')")
        conn.commit()
    with pytest.raises(StoreError, match="v99 is newer"):
        await open_store(root, clock=clock)
    with raw_db(root) as conn:  # the refused open released its lock and changed nothing
        conn.execute("DELETE FROM schema_version WHERE version = 99")
        conn.commit()
    reopened = await open_store(root, clock=clock)
    await reopened.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    broken = (*MIGRATIONS, Migration(99, "broken", ("CREATE TABLE x (a)", "NOT SQL AT ALL")))
    conn = connect(tmp_path / "db.sqlite")
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, now="t", migrations=broken)
        assert migrate(conn, now="t") == MIGRATIONS[-1].version
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "x" not in tables
    finally:
        conn.close()


async def test_one_sha256_index_serves_the_duplicate_check_and_the_reference_check(
    root: Path, clock: FakeClock
) -> None:
    """v4 keeps one index keyed by sha256 (each such index costs every accept a random
    insert): both lookups by content use it, none scans the table, and a v3 store with
    messages is upgraded with its duplicates still refused."""
    root.mkdir()
    data = b"<Invoice>once</Invoice>"
    conn = connect(root / "raccord.db")
    try:
        assert migrate(conn, now="2026-01-01T00:00:00.000000+00:00", migrations=MIGRATIONS[:3]) == 3
        conn.execute("BEGIN IMMEDIATE")  # a message recorded while the store is still at v3
        first = Ledger(clock=clock, rand=lambda: 0.5).accept(
            conn, sub(), sha256=sha(data), size=len(data), placed=True
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    again = await _accept_once(root, clock, data)  # opening upgrades the store to v4 first
    assert again.duplicate
    assert again.message_id == first.message_id
    conn = connect(root / "raccord.db")
    try:
        assert schema_version(conn) == MIGRATIONS[-1].version
        queries = [
            ("SELECT * FROM messages WHERE source = ? AND interface_code = ? AND sha256 = ?", 3),
            ("SELECT 1 FROM messages WHERE sha256 = ? LIMIT 1", 1),
        ]
        for query, params in queries:
            plan = conn.execute(f"EXPLAIN QUERY PLAN {query}", ("x",) * params).fetchall()
            assert "ux_messages_sha256_content" in " ".join(str(row[-1]) for row in plan), plan
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert not names & {"ux_messages_content", "ix_messages_sha256"}
    finally:
        conn.close()


async def _accept_once(root: Path, clock: FakeClock, data: bytes) -> Receipt:
    """Open the store under `root`, accept `data`, close it."""
    store = await open_store(root, clock=clock)
    try:
        return await store.accept(data, sub())
    finally:
        await store.close()
