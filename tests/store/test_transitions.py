"""Every transition, every illegal one, claims, retries, recovery: against a real SQLite file."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.model import Direction, Environment, MessageState
from gateway.store import (
    IllegalTransition,
    InvalidSubmission,
    Message,
    RetryPolicy,
    UnknownMessage,
)
from gateway.store.ledger import ALLOWED_FROM
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock, raw_db, sub

S = MessageState
NO_JITTER = RetryPolicy(max_attempts=3, base_delay=10.0, max_delay=100.0, jitter=0.0)
_counter = itertools.count()


async def accepted(store: SQLiteStore, **fields: object) -> Message:
    receipt = await store.accept(f"payload {next(_counter)}".encode(), sub(**fields))
    return await store.get(receipt.message_id)


async def in_state(  # noqa: PLR0911 - one exit per target state
    store: SQLiteStore, state: MessageState, *, connection: str = "b2g-qual"
) -> Message:
    """A fresh message driven through legal transitions to `state`."""
    message = await accepted(store)
    if state is S.ACCEPTED:
        return message
    if state is S.DELIVERED:
        return await store.mark_delivered(message.id, detail={"to": "back office"})
    if state is S.REJECTED:
        return await store.reject(message.id, reason="no route")
    await store.route(message.id, connection=connection)
    if state is S.QUEUED:
        return await store.get(message.id)
    [claimed] = [m for m in await store.claim_due(connection=connection, limit=1000)
                 if m.id == message.id]  # fmt: skip
    if state is S.SENDING:
        return claimed
    if state is S.SENT:
        return await store.record_sent(message.id, peer_message_id="<out-1>", awaiting_ack=True)
    if state is S.ACKNOWLEDGED:
        return await store.record_sent(message.id, peer_message_id=None, awaiting_ack=False)
    assert state is S.DEAD
    policy = RetryPolicy(max_attempts=1)
    return await store.record_failure(message.id, reason="down", retryable=True, policy=policy)


Op = Callable[[SQLiteStore, str], Awaitable[object]]
OPS: dict[str, Op] = {
    "route": lambda s, i: s.route(i, connection="b2g-qual"),
    "reject": lambda s, i: s.reject(i, reason="operator"),
    "record_sent": lambda s, i: s.record_sent(i, peer_message_id="<x>", awaiting_ack=True),
    "record_acknowledged": lambda s, i: s.record_acknowledged(i, detail={"mdn": "processed"}),
    "record_failure": lambda s, i: s.record_failure(
        i, reason="timeout", retryable=True, policy=NO_JITTER
    ),
    "retry": lambda s, i: s.retry(i),
    "mark_delivered": lambda s, i: s.mark_delivered(i, detail={}),
}


@pytest.mark.parametrize("op", sorted(OPS))
async def test_every_operation_from_every_state(store: SQLiteStore, op: str) -> None:
    for state in MessageState:
        message = await in_state(store, state)
        before = await store.events(message.id)
        if state in ALLOWED_FROM[op]:
            await OPS[op](store, message.id)
            after = await store.events(message.id)
            assert len(after) == len(before) + 1, (op, state)
            assert after[-1].state == (await store.get(message.id)).state
            continue
        with pytest.raises(IllegalTransition) as info:
            await OPS[op](store, message.id)
        assert info.value.current is state
        assert info.value.message_id == message.id
        assert str(state) in str(info.value)
        assert message.id in str(info.value)
        assert await store.get(message.id) == message
        assert await store.events(message.id) == before


@pytest.mark.parametrize("op", sorted(OPS))
async def test_every_operation_on_an_unknown_message(store: SQLiteStore, op: str) -> None:
    with pytest.raises(UnknownMessage):
        await OPS[op](store, "01NOSUCHMESSAGE0000000000")


async def test_unknown_message_reads(store: SQLiteStore) -> None:
    with pytest.raises(UnknownMessage):
        await store.get("nope")
    with pytest.raises(UnknownMessage):
        await store.events("nope")
    with pytest.raises(UnknownMessage):
        await store.record_event("nope", kind="mdn_received", detail={})


async def test_the_emission_path_leaves_one_event_per_step(
    store: SQLiteStore, clock: FakeClock
) -> None:
    message = await accepted(store, file_name="in.xml")
    routed = await store.route(
        message.id, connection="b2g-qual", environment=Environment.QUAL, file_name="FSO1100A_1.xml"
    )
    assert (routed.state, routed.connection, routed.environment) == (
        S.QUEUED,
        "b2g-qual",
        Environment.QUAL,
    )
    assert routed.file_name == "FSO1100A_1.xml"
    assert routed.next_attempt_at == clock()
    [claimed] = await store.claim_due(connection="b2g-qual")
    assert (claimed.state, claimed.attempts) == (S.SENDING, 1)
    sent = await store.record_sent(
        message.id, peer_message_id="<as2-out@raccord>", awaiting_ack=True
    )
    assert (sent.state, sent.sent_message_id) == (S.SENT, "<as2-out@raccord>")
    done = await store.record_acknowledged(message.id, detail={"mdn": "processed", "mic": "abc"})
    assert done.state is S.ACKNOWLEDGED
    events = await store.events(message.id)
    assert [(e.kind, e.state) for e in events] == [
        ("accepted", S.ACCEPTED),
        ("routed", S.QUEUED),
        ("claimed", S.SENDING),
        ("sent", S.SENT),
        ("acknowledged", S.ACKNOWLEDGED),
    ]
    assert events[-1].detail == {"mdn": "processed", "mic": "abc"}
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert await store.get(message.id) == done


async def test_claim_due_honours_connection_due_time_order_and_limit(
    store: SQLiteStore, clock: FakeClock
) -> None:
    later = await in_state(store, S.SENDING)
    await store.record_failure(later.id, reason="503", retryable=True, policy=NO_JITTER)
    first = await in_state(store, S.QUEUED)
    clock.advance(1)
    second = await in_state(store, S.QUEUED)
    other = await in_state(store, S.QUEUED, connection="g2b-qual")
    assert await store.claim_due(connection="nowhere") == []
    claimed = await store.claim_due(connection="b2g-qual", limit=1)
    assert [m.id for m in claimed] == [first.id]
    claimed = await store.claim_due(connection="b2g-qual", limit=10)
    assert [m.id for m in claimed] == [second.id]  # `later` is not due for 10 s
    clock.advance(10)
    assert [m.id for m in await store.claim_due(connection="b2g-qual")] == [later.id]
    assert [m.id for m in await store.claim_due(connection="g2b-qual")] == [other.id]


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
async def test_claim_limit_is_bounded(store: SQLiteStore, limit: int) -> None:
    with pytest.raises(InvalidSubmission):
        await store.claim_due(connection="b2g-qual", limit=limit)


async def test_concurrent_claimers_never_share_a_message(store: SQLiteStore) -> None:
    queued = {(await in_state(store, S.QUEUED)).id for _ in range(60)}
    claims: list[list[Message]] = []
    while True:
        batch = await asyncio.gather(
            *(store.claim_due(connection="b2g-qual", limit=3) for _ in range(8))
        )
        claims.extend(batch)
        if not any(batch):
            break
    ids = [m.id for claim in claims for m in claim]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == queued


async def test_failures_back_off_then_die(store: SQLiteStore, clock: FakeClock) -> None:
    message = await in_state(store, S.SENDING)
    first = await store.record_failure(
        message.id, reason="timeout", retryable=True, policy=NO_JITTER
    )
    assert first.state is S.QUEUED
    assert first.last_error == "timeout"
    assert first.next_attempt_at == clock() + timedelta(seconds=10)
    clock.advance(10)
    await store.claim_due(connection="b2g-qual")
    second = await store.record_failure(message.id, reason="503", retryable=True, policy=NO_JITTER)
    assert second.next_attempt_at == clock() + timedelta(seconds=20)
    clock.advance(20)
    [third_try] = await store.claim_due(connection="b2g-qual")
    assert third_try.attempts == 3
    dead = await store.record_failure(
        message.id, reason="refused", retryable=True, policy=NO_JITTER
    )
    assert dead.state is S.DEAD
    assert dead.next_attempt_at is None
    kinds = [e.kind for e in await store.events(message.id)]
    assert kinds[-1] == "dead"
    assert kinds.count("retry_scheduled") == 2


async def test_permanent_failure_rejects_at_once(store: SQLiteStore) -> None:
    message = await in_state(store, S.SENDING)
    rejected = await store.record_failure(
        message.id, reason="certificate refused", retryable=False, policy=NO_JITTER
    )
    assert rejected.state is S.REJECTED
    assert rejected.last_error == "certificate refused"


async def test_a_negative_async_mdn_rejects_a_sent_message(store: SQLiteStore) -> None:
    message = await in_state(store, S.SENT)
    rejected = await store.record_failure(
        message.id,
        reason="MDN: processed/error: decryption-failed",
        retryable=False,
        policy=NO_JITTER,
    )
    assert rejected.state is S.REJECTED


async def test_retry_revives_a_dead_message_with_attempts_reset(
    store: SQLiteStore, clock: FakeClock
) -> None:
    dead = await in_state(store, S.DEAD)
    assert dead.attempts == 1
    revived = await store.retry(dead.id)
    assert (revived.state, revived.attempts, revived.next_attempt_at) == (S.QUEUED, 0, clock())
    assert [m.id for m in await store.claim_due(connection="b2g-qual")] == [dead.id]
    last = (await store.events(dead.id))[-2]
    assert (last.kind, last.detail["previous_state"]) == ("retried", "dead")


async def test_retry_of_a_never_routed_rejection_goes_back_to_routing(store: SQLiteStore) -> None:
    rejected = await in_state(store, S.REJECTED)
    assert rejected.connection is None
    revived = await store.retry(rejected.id)
    assert (revived.state, revived.next_attempt_at) == (S.ACCEPTED, None)


async def test_recover_requeues_what_a_crash_left_sending(
    store: SQLiteStore, clock: FakeClock
) -> None:
    sending = [await in_state(store, S.SENDING) for _ in range(2)]
    sent = await in_state(store, S.SENT)
    clock.advance(5)
    assert await store.recover() == 2
    for message in sending:
        now = await store.get(message.id)
        assert (now.state, now.next_attempt_at, now.attempts) == (S.QUEUED, clock(), 1)
        assert (await store.events(message.id))[-1].kind == "recovered"
    assert (await store.get(sent.id)).state is S.SENT
    assert await store.recover() == 0


async def test_non_state_events_leave_the_state_alone(store: SQLiteStore) -> None:
    message = await in_state(store, S.SENT)
    event = await store.record_event(
        message.id, kind="mdn_received", detail={"disposition": "processed", "raw": b"\x01\x02"}
    )
    assert event.state is None
    assert event.detail == {"disposition": "processed", "raw": "0102"}
    assert (await store.events(message.id))[-1] == event
    assert (await store.get(message.id)).state is S.SENT
    with pytest.raises(InvalidSubmission):
        await store.record_event(message.id, kind="", detail={})


async def test_a_refused_detail_rolls_the_state_change_back(store: SQLiteStore, root: Path) -> None:
    message = await in_state(store, S.SENT)
    huge = {"blob": "x" * 100_000}
    circular: dict[str, object] = {}
    circular["self"] = circular
    for detail in (huge, circular):
        with pytest.raises(InvalidSubmission):
            await store.record_acknowledged(message.id, detail=detail)
    assert (await store.get(message.id)).state is S.SENT
    with raw_db(root) as conn:
        state = conn.execute("SELECT state FROM messages WHERE id = ?", (message.id,)).fetchone()
    assert state == ("sent",)


async def test_one_failing_request_does_not_poison_its_group_commit(store: SQLiteStore) -> None:
    messages = [await in_state(store, S.SENT) for _ in range(10)]
    results = await asyncio.gather(
        *(store.record_acknowledged(m.id, detail={"n": i}) for i, m in enumerate(messages)),
        store.record_acknowledged(messages[0].id, detail={"n": "again"}),
        return_exceptions=True,
    )
    assert sum(isinstance(r, IllegalTransition) for r in results) == 1
    states = {(await store.get(m.id)).state for m in messages}
    assert states == {S.ACKNOWLEDGED}


async def test_failure_reasons_from_peers_are_bounded(store: SQLiteStore) -> None:
    message = await in_state(store, S.SENDING)
    reason = "E" * 1_000_000 + "\udcff"
    failed = await store.record_failure(
        message.id, reason=reason, retryable=False, policy=NO_JITTER
    )
    assert failed.last_error is not None
    assert len(failed.last_error) == 4000


async def test_route_refuses_a_path_as_file_name(store: SQLiteStore) -> None:
    message = await accepted(store)
    with pytest.raises(InvalidSubmission):
        await store.route(message.id, connection="b2g-qual", file_name="../x.xml")
    with pytest.raises(InvalidSubmission):
        await store.route(message.id, connection="")
    assert (await store.get(message.id)).state is S.ACCEPTED


async def test_find_by_peer_id_in_both_directions(store: SQLiteStore) -> None:
    inbound = await accepted(store, source="as2-partner", peer_message_id="<in@partner>")
    outbound = await in_state(store, S.SENT)  # sent on b2g-qual as <out-1>
    found_in = await store.find_by_peer_id(source="as2-partner", peer_message_id="<in@partner>")
    found_out = await store.find_by_peer_id(source="b2g-qual", peer_message_id="<out-1>")
    assert found_in is not None
    assert found_in.id == inbound.id
    assert found_out is not None
    assert found_out.id == outbound.id
    assert await store.find_by_peer_id(source="b2g-qual", peer_message_id="<in@partner>") is None


async def test_list_messages_filters(store: SQLiteStore) -> None:
    queued = await in_state(store, S.QUEUED)
    delivered = await in_state(store, S.DELIVERED)
    reception = await accepted(store, direction=Direction.RECEPTION, interface_code="FEN1200A")
    assert [m.id for m in await store.list_messages(state=S.QUEUED)] == [queued.id]
    assert [m.id for m in await store.list_messages(connection="b2g-qual")] == [queued.id]
    assert [m.id for m in await store.list_messages(direction=Direction.RECEPTION)] == [
        reception.id
    ]
    assert [m.id for m in await store.list_messages(interface_code="FEN1200A")] == [reception.id]
    newest = await store.list_messages(limit=2, newest_first=True)
    assert [m.id for m in newest] == [reception.id, delivered.id]
    for bad in (0, 10_001, -5):
        with pytest.raises(InvalidSubmission):
            await store.list_messages(limit=bad)


async def test_outbox_stats_count_waiting_messages_and_their_age(
    store: SQLiteStore, clock: FakeClock
) -> None:
    await in_state(store, S.QUEUED)
    clock.advance(30)
    await in_state(store, S.SENDING)
    await in_state(store, S.SENT)
    await in_state(store, S.ACKNOWLEDGED)
    await in_state(store, S.QUEUED, connection="g2b-qual")
    clock.advance(15)
    stats = await store.outbox_stats()
    assert stats == {"b2g-qual": (3, 45.0), "g2b-qual": (1, 15.0)}
