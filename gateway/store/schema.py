"""SQLite connections and the ordered migrations that build and evolve the schema.

A migration is appended, never edited: the version it reaches is recorded in `schema_version`
in the same transaction as its statements, so a crash mid-migration leaves the previous
version intact and the next start simply runs it again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.store import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version, a name for humans and the statements it runs."""

    version: int
    name: str
    statements: tuple[str, ...]


_V1 = (
    """CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        direction TEXT NOT NULL,
        source TEXT NOT NULL,
        connection TEXT,
        interface_code TEXT NOT NULL,
        environment TEXT,
        protocol TEXT NOT NULL,
        peer_message_id TEXT,
        file_name TEXT,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        size INTEGER NOT NULL CHECK (size >= 0),
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE UNIQUE INDEX ux_messages_peer ON messages (source, peer_message_id)
        WHERE peer_message_id IS NOT NULL""",
    "CREATE UNIQUE INDEX ux_messages_content ON messages (source, interface_code, sha256)",
    "CREATE INDEX ix_messages_sha256 ON messages (sha256)",
    "CREATE INDEX ix_messages_state ON messages (state, connection)",
    """CREATE INDEX ix_messages_due ON messages (connection, next_attempt_at)
        WHERE state = 'queued'""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL REFERENCES messages (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT,
        detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
    )""",
    "CREATE INDEX ix_events_message ON events (message_id, seq)",
    """CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
    """CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
    """CREATE TABLE connection_states (
        name TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE connection_history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        connection TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        old_status TEXT,
        new_status TEXT NOT NULL,
        change TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(change))
    )""",
    "CREATE INDEX ix_connection_history ON connection_history (connection, seq)",
    """CREATE TRIGGER connection_history_append_only_update BEFORE UPDATE ON connection_history
        BEGIN SELECT RAISE(ABORT, 'connection history is append-only'); END""",
    """CREATE TRIGGER connection_history_append_only_delete BEFORE DELETE ON connection_history
        BEGIN SELECT RAISE(ABORT, 'connection history is append-only'); END""",
)

# The id we gave an outbound transfer (AS2 Message-ID, PeSIT transfer id) is not the id the
# submitter gave us: it gets its own column, so async MDNs correlate per connection.
_V2 = (
    "ALTER TABLE messages ADD COLUMN sent_message_id TEXT",
    """CREATE INDEX ix_messages_sent_id ON messages (connection, sent_message_id)
        WHERE sent_message_id IS NOT NULL""",
)

# Return flows name what they answer by invoice number or file name: each message's references
# are indexed so a lifecycle status finds its invoice. `correlated_at` marks a message whose
# references were extracted (and, for a return flow, linked), so the work survives a crash.
# Received flows wait for back-office delivery in state `accepted`, with backoff.
_V3 = (
    """CREATE TABLE message_refs (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        message_id TEXT NOT NULL REFERENCES messages (id),
        PRIMARY KEY (kind, value, message_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX ix_message_refs_message ON message_refs (message_id)",
    "ALTER TABLE messages ADD COLUMN correlated_at TEXT",
    "CREATE INDEX ix_messages_uncorrelated ON messages (id) WHERE correlated_at IS NULL",
    """CREATE INDEX ix_messages_deliverable ON messages (direction, next_attempt_at)
        WHERE state = 'accepted'""",
)

# One index keyed by sha256 instead of two: the duplicate check (source, code and content) and
# "is this payload referenced?" (sha256 alone) both use it. Keys of 64 hex characters land at
# random places in the tree: each such index cost an accept about 12 microseconds and one more
# page in the WAL.
_V4 = (
    """CREATE UNIQUE INDEX ux_messages_sha256_content
        ON messages (sha256, source, interface_code)""",
    "DROP INDEX ux_messages_content",
    "DROP INDEX ix_messages_sha256",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "messages, events, connection sheets", _V1),
    Migration(2, "sent message id", _V2),
    Migration(3, "message references, correlation mark, delivery queue", _V3),
    Migration(4, "one index on sha256 for duplicates and references", _V4),
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT), WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        mode = "wal"
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    if mode != "wal":
        conn.close()
        raise StoreError(f"{path}: cannot switch the database to WAL (got {mode})")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The version the database is at (0 for a new file)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection,
    *,
    now: str,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply every migration newer than the database, each in its own transaction."""
    current = schema_version(conn)
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise StoreError(f"database schema v{current} is newer than this code (v{latest})")
    for step in migrations:
        if step.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (step.version, step.name, now),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        current = step.version
    return current
