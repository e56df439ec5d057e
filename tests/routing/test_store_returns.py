"""The store's return-flow side: references, atomic correlation, the delivery queue, retries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.model import Direction, Environment, MessageState
from gateway.store import (
    IllegalTransition,
    InvalidSubmission,
    Message,
    RetryPolicy,
    Submission,
    UnknownMessage,
    open_store,
)
from gateway.store.schema import MIGRATIONS, connect, migrate
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock

POLICY = RetryPolicy(max_attempts=3, base_delay=10.0, max_delay=100.0, jitter=0.0)


@pytest.fixture
async def fake_clock_store(tmp_path: Path) -> tuple[SQLiteStore, FakeClock]:
    clock = FakeClock()
    return await open_store(tmp_path / "s", clock=clock, rand=lambda: 0.5), clock


async def received(store: SQLiteStore, body: bytes, code: str = "FEN1200A") -> Message:
    receipt = await store.accept(
        body,
        Submission(
            source="b2g-qual",
            direction=Direction.RECEPTION,
            interface_code=code,
            protocol="as2",
            environment=Environment.QUAL,
            connection="b2g-qual",
        ),
    )
    return await store.get(receipt.message_id)


async def emitted(store: SQLiteStore, body: bytes, env: Environment = Environment.QUAL) -> Message:
    receipt = await store.accept(
        body,
        Submission(
            source="api",
            direction=Direction.EMISSION,
            interface_code="FSO1100A",
            protocol="api",
            environment=env,
        ),
    )
    return await store.get(receipt.message_id)


# --- hostile first -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [["bad\x00value"], ["x" * 257], [""], [f"n{i}" for i in range(1001)], ["ok", "\r\n"]],
    ids=["nul", "long", "empty", "too-many", "crlf"],
)
async def test_hostile_references_are_refused_and_nothing_is_written(
    store: SQLiteStore, values: list[str]
) -> None:
    message = await emitted(store, b"<a/>")
    with pytest.raises(InvalidSubmission):
        await store.add_references(message.id, kind="invoice", values=values)
    assert await store.references(message.id) == {}


async def test_references_of_an_unknown_message(store: SQLiteStore) -> None:
    with pytest.raises(UnknownMessage):
        await store.add_references("01NOSUCH", kind="invoice", values=["F1"])
    with pytest.raises(UnknownMessage):
        await store.references("01NOSUCH")


async def test_correlation_is_all_or_nothing(store: SQLiteStore) -> None:
    report = await received(store, b"<r/>")
    target = await emitted(store, b"<i/>")
    with pytest.raises(UnknownMessage):
        await store.record_correlation(
            report.id,
            kind="correlated",
            detail={},
            references={"invoice": ["F1"]},
            linked=[(target.id, "lifecycle_status", {"status": "DEPOSEE"}), ("01GONE", "x", {})],
        )
    assert (await store.get(report.id)).correlated_at is None
    assert await store.references(report.id) == {}
    assert [e.kind for e in await store.events(target.id)] == ["accepted"]


async def test_correlation_is_recorded_exactly_once(store: SQLiteStore) -> None:
    report = await received(store, b"<r/>")
    target = await emitted(store, b"<i/>")
    linked = [(target.id, "lifecycle_status", {"status": "DEPOSEE"})]
    assert await store.record_correlation(
        report.id, kind="correlated", detail={"n": 1}, linked=linked
    )
    assert not await store.record_correlation(
        report.id, kind="correlated", detail={"n": 2}, linked=linked
    )
    assert [e.kind for e in await store.events(target.id)] == ["accepted", "lifecycle_status"]
    assert [e.kind for e in await store.events(report.id)] == ["accepted", "correlated"]
    assert (await store.get(report.id)).correlated_at is not None
    assert report.id not in [m.id for m in await store.uncorrelated()]


async def test_references_find_the_newest_message_in_its_environment(store: SQLiteStore) -> None:
    old = await emitted(store, b"<v1/>")
    new = await emitted(store, b"<v2/>")
    prod = await emitted(store, b"<v3/>", Environment.PROD)
    for message in (old, new, prod):
        await store.add_references(message.id, kind="invoice", values=["F-1", "F-1"])
    found = await store.find_by_reference(
        kind="invoice", value="F-1", direction=Direction.EMISSION, environment=Environment.QUAL
    )
    assert [m.id for m in found] == [new.id, old.id]
    assert await store.references(new.id) == {"invoice": ["F-1"]}
    assert await store.find_by_reference(kind="invoice", value="F-2") == []
    assert (
        await store.find_by_reference(kind="invoice", value="F-1", direction=Direction.RECEPTION)
        == []
    )


# --- the delivery queue --------------------------------------------------------------------


async def test_delivery_failures_back_off_then_go_dead_then_revive_to_accepted(
    fake_clock_store: tuple[SQLiteStore, FakeClock],
) -> None:
    store, clock = fake_clock_store
    try:
        message = await received(store, b"<lifecycle/>")
        assert [m.id for m in await store.due_deliveries()] == [message.id]
        first = await store.record_delivery_failure(message.id, reason="503", policy=POLICY)
        assert (first.state, first.attempts) == (MessageState.ACCEPTED, 1)
        assert await store.due_deliveries() == []
        assert await store.next_delivery_at() == first.next_attempt_at
        clock.advance(10)
        assert [m.id for m in await store.due_deliveries()] == [message.id]
        await store.record_delivery_failure(message.id, reason="503", policy=POLICY)
        clock.advance(20)
        dead = await store.record_delivery_failure(message.id, reason="down", policy=POLICY)
        assert (dead.state, dead.last_error, dead.attempts) == (MessageState.DEAD, "down", 3)
        assert await store.due_deliveries() == []
        kinds = [e.kind for e in await store.events(message.id)]
        assert kinds == [
            "accepted",
            "delivery_retry_scheduled",
            "delivery_retry_scheduled",
            "dead",
        ]
        revived = await store.retry(message.id)
        assert (revived.state, revived.attempts) == (MessageState.ACCEPTED, 0)
        assert revived.connection == "b2g-qual"  # where it came from, never an outbox
        assert [m.id for m in await store.due_deliveries(codes=["FEN1200A"])] == [message.id]
        assert await store.due_deliveries(codes=["CSO1100A"]) == []
        assert await store.due_deliveries(codes=[]) == []
        assert await store.claim_due(connection="b2g-qual") == []
    finally:
        await store.close()


async def test_only_received_flows_are_delivered(store: SQLiteStore) -> None:
    message = await emitted(store, b"<i/>")
    assert await store.due_deliveries() == []
    with pytest.raises(InvalidSubmission, match="only received flows"):
        await store.record_delivery_failure(message.id, reason="x", policy=POLICY)
    delivered = await store.mark_delivered((await received(store, b"<r/>")).id, detail={})
    with pytest.raises(IllegalTransition):
        await store.record_delivery_failure(delivered.id, reason="x", policy=POLICY)


async def test_a_received_flow_forced_into_queued_is_never_sent(store: SQLiteStore) -> None:
    message = await received(store, b"<r/>")
    conn = sqlite3.connect(store.db_path)
    try:
        with conn:
            conn.execute(
                "UPDATE messages SET state = 'queued', next_attempt_at = '2000-01-01' WHERE id = ?",
                (message.id,),
            )
    finally:
        conn.close()
    assert await store.claim_due(connection="b2g-qual") == []


async def test_a_v2_database_is_upgraded_with_nothing_correlated(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    conn = connect(root / "raccord.db")
    try:
        migrate(conn, now="2026-01-01T00:00:00.000000+00:00", migrations=MIGRATIONS[:2])
        conn.execute(
            """INSERT INTO messages (id, direction, source, interface_code, protocol, sha256,
               size, state, attempts, created_at, updated_at) VALUES ('01OLD', 'reception', 'c',
               'FEN1200A', 'as2', ?, 3, 'accepted', 0, ?, ?)""",
            ("a" * 64, "2026-01-01T00:00:00.000000+00:00", "2026-01-01T00:00:00.000000+00:00"),
        )
    finally:
        conn.close()
    store = await open_store(root)
    try:
        assert [m.id for m in await store.uncorrelated()] == ["01OLD"]
        assert [m.id for m in await store.due_deliveries()] == ["01OLD"]
    finally:
        await store.close()
