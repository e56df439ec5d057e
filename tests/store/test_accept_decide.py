"""accept() with a decision: routed or rejected in the very commit that records the message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.model import Environment, MessageState
from gateway.store import Disposition, InvalidSubmission, RejectWith, RouteTo
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock, payload_files, raw_db, sub, temp_files


def route_to(connection: str = "c1") -> RouteTo:
    return RouteTo(connection, Environment.QUAL, lambda message_id: f"FSO1100A_{message_id}.xml")


def rows(root: Path, message_id: str) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    """The message row and its events, read from outside the store."""
    with raw_db(root) as conn:
        row = conn.execute(
            "SELECT state, connection, environment, file_name, last_error, next_attempt_at"
            " FROM messages WHERE id = ?",
            (message_id,),
        ).fetchone()
        events = conn.execute(
            "SELECT kind, state FROM events WHERE message_id = ? ORDER BY seq", (message_id,)
        ).fetchall()
    return row, events


# --- hostile first ---------------------------------------------------------------------------


async def test_a_decision_that_raises_records_nothing(store: SQLiteStore, root: Path) -> None:
    def broken(size: int) -> Disposition:
        raise RuntimeError(f"bug at {size}")

    with pytest.raises(RuntimeError, match="bug at 5"):
        await store.accept(b"bytes", sub(decide=broken))
    assert payload_files(root) == []
    assert temp_files(root) == []
    assert await store.list_messages() == []


async def test_a_decision_of_the_wrong_type_rolls_the_whole_accept_back(
    store: SQLiteStore, root: Path
) -> None:
    with pytest.raises(InvalidSubmission) as info:
        await store.accept(b"bytes", sub(decide=lambda _: "QUEUED"))
    assert info.value.field == "decide"
    assert await store.list_messages() == []


async def test_a_decision_that_is_not_callable_is_refused_before_reading(
    store: SQLiteStore, root: Path
) -> None:
    with pytest.raises(InvalidSubmission) as info:
        await store.accept(b"bytes", sub(decide="route"))
    assert info.value.field == "decide"
    assert temp_files(root) == []


async def test_a_hostile_outbound_name_rolls_the_whole_accept_back(store: SQLiteStore) -> None:
    hostile = RouteTo("c1", None, lambda _: "../../etc/passwd")
    with pytest.raises(InvalidSubmission) as info:
        await store.accept(b"bytes", sub(decide=lambda _: hostile))
    assert info.value.field == "file_name"
    assert await store.list_messages() == []


# --- the decisions -------------------------------------------------------------------------


async def test_routed_in_the_accept_commit(
    store: SQLiteStore, root: Path, clock: FakeClock
) -> None:
    sizes: list[int] = []

    def decide(size: int) -> Disposition:
        sizes.append(size)
        return route_to()

    receipt = await store.accept(b"<Invoice/>", sub(file_name="in.xml", decide=decide))
    assert sizes == [len(b"<Invoice/>")]
    assert (receipt.duplicate, receipt.state) == (False, MessageState.QUEUED)
    row, events = rows(root, receipt.message_id)
    name = f"FSO1100A_{receipt.message_id}.xml"
    assert row == ("queued", "c1", "qual", name, None, row[5])
    assert row[5] is not None  # due now
    assert events == [("accepted", "accepted"), ("routed", "queued")]
    detail = (await store.events(receipt.message_id))[1].detail
    assert (detail["connection"], detail["submitted_as"]) == ("c1", "in.xml")
    [claimed] = await store.claim_due(connection="c1")
    assert claimed.id == receipt.message_id


async def test_rejected_in_the_accept_commit(store: SQLiteStore, root: Path) -> None:
    receipt = await store.accept(b"%PDF-", sub(decide=lambda _: RejectWith("not UBL")))
    assert receipt.state is MessageState.REJECTED
    row, events = rows(root, receipt.message_id)
    assert (row[0], row[4]) == ("rejected", "not UBL")
    assert events == [("accepted", "accepted"), ("rejected", "rejected")]
    assert len(payload_files(root)) == 1  # kept: an operator may retry it


async def test_no_decision_leaves_the_message_accepted(store: SQLiteStore) -> None:
    receipt = await store.accept(b"bytes", sub(decide=lambda _: None))
    assert receipt.state is MessageState.ACCEPTED
    assert [e.kind for e in await store.events(receipt.message_id)] == ["accepted"]


async def test_a_duplicate_keeps_the_original_state_and_is_not_decided_again(
    store: SQLiteStore,
) -> None:
    first = await store.accept(b"same", sub(decide=lambda _: route_to()))
    again = await store.accept(b"same", sub(decide=lambda _: RejectWith("would refuse")))
    assert (again.duplicate, again.message_id, again.state) == (
        True,
        first.message_id,
        MessageState.QUEUED,
    )
    kinds = [e.kind for e in await store.events(first.message_id)]
    assert kinds == ["accepted", "routed", "duplicate"]


async def test_concurrent_repeats_are_routed_once(store: SQLiteStore, root: Path) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b"<Invoice>"
        await asyncio.sleep(0)
        yield b"</Invoice>"

    receipts = await asyncio.gather(
        *(store.accept(stream(), sub(decide=lambda _: route_to())) for _ in range(10))
    )
    assert sum(not r.duplicate for r in receipts) == 1
    assert {r.state for r in receipts} == {MessageState.QUEUED}
    kinds = [e.kind for e in await store.events(receipts[0].message_id)]
    assert (kinds.count("routed"), kinds.count("duplicate")) == (1, 9)
    assert len(payload_files(root)) == 1
    assert temp_files(root) == []
