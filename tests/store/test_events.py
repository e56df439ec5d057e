"""The audit trail is append-only, and connection sheets keep their history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.model import ConnectionStatus
from gateway.store import InvalidSubmission, UnknownConnection
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock, raw_db, sub


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET kind = 'forged'",
        "UPDATE events SET state = NULL WHERE seq = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE seq = 1",
        "UPDATE connection_history SET actor = 'someone else'",
        "DELETE FROM connection_history",
    ],
)
async def test_history_cannot_be_rewritten_even_with_raw_sql(
    store: SQLiteStore, root: Path, statement: str
) -> None:
    receipt = await store.accept(b"audited", sub())
    await store.set_connection_status(
        "b2g-qual", status=ConnectionStatus.BROUILLON, actor="alice", change={}
    )
    with raw_db(root) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    assert [e.kind for e in await store.events(receipt.message_id)] == ["accepted"]
    assert len(await store.connection_history("b2g-qual")) == 1


async def test_connection_sheet_lifecycle_is_historised(
    store: SQLiteStore, clock: FakeClock
) -> None:
    assert await store.connection_status("b2g-prod") is None
    created = await store.set_connection_status(
        "b2g-prod", status=ConnectionStatus.BROUILLON, actor="alice", change={"created": True}
    )
    assert (created.old_status, created.new_status) == (None, ConnectionStatus.BROUILLON)
    clock.advance(60)
    await store.set_connection_status(
        "b2g-prod", status=ConnectionStatus.EN_COURS, actor="alice", change={"submitted": True}
    )
    await store.set_connection_status(
        "b2g-prod", status=ConnectionStatus.ACTIF, actor="aife", change={"answer": "OK"}
    )
    edit = await store.record_connection_change(
        "b2g-prod", actor="bob", change={"certificates": ["client.pem"]}
    )
    assert (edit.old_status, edit.new_status) == (ConnectionStatus.ACTIF, ConnectionStatus.ACTIF)
    assert await store.connection_status("b2g-prod") is ConnectionStatus.ACTIF
    history = await store.connection_history("b2g-prod")
    assert [(h.actor, h.old_status, h.new_status) for h in history] == [
        ("alice", None, ConnectionStatus.BROUILLON),
        ("alice", ConnectionStatus.BROUILLON, ConnectionStatus.EN_COURS),
        ("aife", ConnectionStatus.EN_COURS, ConnectionStatus.ACTIF),
        ("bob", ConnectionStatus.ACTIF, ConnectionStatus.ACTIF),
    ]
    assert history[0] == created
    assert history[-1] == edit
    assert history[-1].change == {"certificates": ["client.pem"]}
    assert history[1].at == created.at.replace(minute=1)
    assert await store.connection_history("g2b-prod") == []


async def test_editing_an_unknown_sheet_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(UnknownConnection):
        await store.record_connection_change("ghost", actor="bob", change={})


@pytest.mark.parametrize(
    ("name", "actor", "status"),
    [
        ("", "alice", ConnectionStatus.ACTIF),
        ("b2g\nqual", "alice", ConnectionStatus.ACTIF),
        ("b2g-qual", "", ConnectionStatus.ACTIF),
        ("b2g-qual", "alice", "actif"),
    ],
)
async def test_hostile_connection_changes_are_refused(
    store: SQLiteStore, name: str, actor: str, status: ConnectionStatus
) -> None:
    with pytest.raises(InvalidSubmission):
        await store.set_connection_status(name, status=status, actor=actor, change={})
    assert await store.connection_history(name) == []
    assert await store.connection_status(name) is None
