"""OutboxWorker against a real store and real in-test senders (plain classes, no mocks)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.metrics import REGISTRY
from gateway.model import MessageState
from gateway.outbox import (
    OutboxWorker,
    PermanentSendError,
    RetryPolicy,
    SendResult,
    TransientSendError,
)
from gateway.store import Message
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock, sub

S = MessageState
IMMEDIATE = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0, jitter=0.0)
_names = itertools.count()


def connection_name() -> str:
    """Metrics are process-wide: each test uses its own connection label."""
    return f"conn-{next(_names)}"


class ScriptedSender:
    """Plays a script of outcomes; records what it was asked to send and the bytes it read."""

    def __init__(self, *script: SendResult | BaseException) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, int, bytes]] = []

    async def send(self, message: Message, payload: Path) -> SendResult:
        self.calls.append((message.id, message.attempts, payload.read_bytes()))
        outcome = self.script.pop(0) if self.script else SendResult("<ok>", acknowledged=True)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class GatedSender:
    """Blocks inside send until released: a slow peer, to test stopping mid-flight."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: Message, payload: Path) -> SendResult:
        self.entered.set()
        await self.release.wait()
        self.sent.append(message.id)
        return SendResult(f"<{message.id}@raccord>", acknowledged=True, detail={"mdn": "sync"})


async def queued(store: SQLiteStore, connection: str, data: bytes) -> Message:
    receipt = await store.accept(data, sub())
    return await store.route(receipt.message_id, connection=connection)


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not await predicate():
            await asyncio.sleep(0.01)


def metric(name: str, connection: str) -> float:
    return REGISTRY.get_sample_value(name, {"connection": connection}) or 0.0


async def test_success_acknowledges_and_hands_the_sender_the_stored_bytes(
    store: SQLiteStore,
) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"<Invoice>1</Invoice>")
    sender = ScriptedSender(SendResult("<out@raccord>", acknowledged=True, detail={"mic": "x"}))
    worker = OutboxWorker(store, sender, connection=conn, policy=IMMEDIATE)
    assert await worker.run_once() is True
    assert await worker.run_once() is False
    assert sender.calls == [(message.id, 1, b"<Invoice>1</Invoice>")]
    done = await store.get(message.id)
    assert (done.state, done.sent_message_id) == (S.ACKNOWLEDGED, "<out@raccord>")
    last = (await store.events(message.id))[-1]
    assert (last.kind, last.detail["mic"]) == ("acknowledged", "x")


async def test_an_unconfirmed_send_waits_for_its_acknowledgement(store: SQLiteStore) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"async mdn please")
    worker = OutboxWorker(
        store, ScriptedSender(SendResult("<a1>", acknowledged=False)), connection=conn
    )
    await worker.run_once()
    assert (await store.get(message.id)).state is S.SENT
    found = await store.find_by_peer_id(source=conn, peer_message_id="<a1>")
    assert found is not None
    assert found.id == message.id
    await store.record_acknowledged(message.id, detail={"mdn": "processed"})


async def test_transient_failures_then_success_reuse_the_same_message_id(
    store: SQLiteStore,
) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"flaky peer")
    sender = ScriptedSender(TransientSendError("connection refused"), TimeoutError("read"))
    worker = OutboxWorker(store, sender, connection=conn, policy=IMMEDIATE, poll_interval=0.01)
    retries_before = metric("raccord_retries_total", conn)
    worker.start()
    try:

        async def acknowledged() -> bool:
            return (await store.get(message.id)).state is S.ACKNOWLEDGED

        await wait_for(acknowledged)
    finally:
        await worker.stop(grace=5)
    assert [(mid, attempt) for mid, attempt, _ in sender.calls] == [
        (message.id, 1),
        (message.id, 2),
        (message.id, 3),
    ]
    assert metric("raccord_retries_total", conn) - retries_before == 2
    kinds = [e.kind for e in await store.events(message.id)]
    assert kinds.count("retry_scheduled") == 2


async def test_permanent_failure_rejects_without_retrying(store: SQLiteStore) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"refused")
    sender = ScriptedSender(PermanentSendError("certificate not trusted by AIFE"))
    worker = OutboxWorker(store, sender, connection=conn, policy=IMMEDIATE)
    await worker.run_once()
    assert await worker.run_once() is False
    rejected = await store.get(message.id)
    assert (rejected.state, rejected.last_error) == (S.REJECTED, "certificate not trusted by AIFE")
    assert len(sender.calls) == 1


async def test_exhausted_retries_make_a_dead_letter(store: SQLiteStore) -> None:
    conn = connection_name()
    policy = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
    message = await queued(store, conn, b"always down")
    sender = ScriptedSender(*(TransientSendError("down") for _ in range(5)))
    worker = OutboxWorker(store, sender, connection=conn, policy=policy)
    dead_before = metric("raccord_dead_total", conn)
    while await worker.run_once():
        pass
    assert (await store.get(message.id)).state is S.DEAD
    assert len(sender.calls) == 2
    assert metric("raccord_dead_total", conn) - dead_before == 1


async def test_a_crashing_sender_is_retried_not_fatal(store: SQLiteStore) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"bug in sender")
    worker = OutboxWorker(
        store, ScriptedSender(KeyError("oops")), connection=conn, policy=IMMEDIATE
    )
    await worker.run_once()
    failed = await store.get(message.id)
    assert failed.state is S.QUEUED
    assert failed.last_error is not None
    assert "KeyError" in failed.last_error
    await worker.run_once()
    assert (await store.get(message.id)).state is S.ACKNOWLEDGED


async def test_a_missing_payload_is_rejected_not_sent(store: SQLiteStore) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"will vanish")
    store.payload_path(message).unlink()
    sender = ScriptedSender()
    await OutboxWorker(store, sender, connection=conn).run_once()
    assert (await store.get(message.id)).state is S.REJECTED
    assert sender.calls == []


async def test_stop_lets_the_in_flight_send_finish_and_claims_nothing_more(
    store: SQLiteStore,
) -> None:
    conn = connection_name()
    first = await queued(store, conn, b"in flight")
    second = await queued(store, conn, b"still queued")
    sender = GatedSender()
    worker = OutboxWorker(store, sender, connection=conn, poll_interval=0.01)
    worker.start()
    await sender.entered.wait()
    stopping = asyncio.create_task(worker.stop(grace=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()
    sender.release.set()
    await stopping
    assert (await store.get(first.id)).state is S.ACKNOWLEDGED
    assert (await store.get(second.id)).state is S.QUEUED
    assert sender.sent == [first.id]


async def test_a_send_outliving_the_grace_period_is_recovered_at_next_start(
    store: SQLiteStore,
) -> None:
    conn = connection_name()
    message = await queued(store, conn, b"stuck peer")
    sender = GatedSender()
    worker = OutboxWorker(store, sender, connection=conn)
    worker.start()
    await sender.entered.wait()
    await worker.stop(grace=0.05)
    assert (await store.get(message.id)).state is S.SENDING
    assert await store.recover() == 1
    assert (await store.get(message.id)).state is S.QUEUED


async def test_notify_wakes_an_idle_worker_long_before_the_poll(store: SQLiteStore) -> None:
    conn = connection_name()
    sender = ScriptedSender()
    worker = OutboxWorker(store, sender, connection=conn, poll_interval=3600)
    worker.start()
    try:
        await asyncio.sleep(0.05)  # idle, sleeping on the poll interval
        message = await queued(store, conn, b"routed later")
        worker.notify()

        async def sent() -> bool:
            return (await store.get(message.id)).state is S.ACKNOWLEDGED

        await wait_for(sent, within=2.0)
    finally:
        await worker.stop(grace=1)


async def test_gauges_follow_the_outbox(store: SQLiteStore, clock: FakeClock) -> None:
    conn = connection_name()
    await queued(store, conn, b"one")
    await queued(store, conn, b"two")
    clock.advance(42)
    worker = OutboxWorker(store, ScriptedSender(), connection=conn)
    await worker.refresh_gauges()
    assert metric("raccord_outbox_pending", conn) == 2
    assert metric("raccord_outbox_oldest_age_seconds", conn) == 42
    while await worker.run_once():
        pass
    await worker.refresh_gauges()
    assert metric("raccord_outbox_pending", conn) == 0
    assert metric("raccord_outbox_oldest_age_seconds", conn) == 0


async def test_the_loop_survives_an_operator_racing_it(store: SQLiteStore) -> None:
    """The operator rejects a message while it is on the wire: recording fails, loop goes on."""
    conn = connection_name()
    first = await queued(store, conn, b"rejected mid-send")
    second = await queued(store, conn, b"next one")
    sender = GatedSender()
    worker = OutboxWorker(store, sender, connection=conn, poll_interval=0.01)
    worker.start()
    try:
        await sender.entered.wait()
        await store.reject(first.id, reason="operator: wrong recipient")
        sender.release.set()

        async def second_done() -> bool:
            return (await store.get(second.id)).state is S.ACKNOWLEDGED

        await wait_for(second_done)
    finally:
        await worker.stop(grace=1)
    assert (await store.get(first.id)).state is S.REJECTED


@pytest.mark.parametrize("bad", [OSError(104, "reset"), ConnectionResetError()])
async def test_os_errors_are_transient(store: SQLiteStore, bad: OSError) -> None:
    conn = connection_name()
    message = await queued(store, conn, f"os error {bad!r}".encode())
    await OutboxWorker(store, ScriptedSender(bad), connection=conn, policy=IMMEDIATE).run_once()
    assert (await store.get(message.id)).state is S.QUEUED
