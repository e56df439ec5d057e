"""Delivery to the back office on real files and a real HTTP receiver; the receiver down first."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from gateway.delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryService,
    FolderTarget,
    Target,
    WebhookTarget,
    delivered_name,
    sign,
    verify_signature,
)
from gateway.intake_settings import DeliverySettings, WebhookSettings
from gateway.metrics import REGISTRY
from gateway.model import MessageState
from gateway.store import Message
from protocols.ports import Incoming
from tests.routing.conftest import World, payload

SECRET = "webhook-shared-secret"
FLOW = payload("cpp-statut.xml")


class Receiver:
    """A back-office webhook: checks each signature, answers `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes, bool]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = verify_signature(
            SECRET.encode(),
            request.headers[TIMESTAMP_HEADER],
            body,
            request.headers[SIGNATURE_HEADER],
        )
        self.received.append((dict(request.headers), body, signed))
        return web.Response(status=self.status, text="noted")

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/flows", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/flows"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now: connections are refused


def settings(url: str | None, folder: Path | None, **retry: float) -> DeliverySettings:
    webhook = WebhookSettings(url=url, secret=SECRET, timeout=5) if url else None
    policy = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05, **retry}
    return DeliverySettings.model_validate(
        {"folder": folder, "webhook": webhook, "retry": policy, "poll_interval": 0.05}
    )


def service(world: World, config: DeliverySettings) -> DeliveryService:
    targets: list[Target] = []
    if config.folder is not None:
        targets.append(FolderTarget(config.folder))
    if config.webhook is not None:
        targets.append(WebhookTarget(config.webhook, clock=world.clock))
    return DeliveryService(
        store=world.store,
        catalogue=world.catalogue,
        wakeups=world.wakeups,
        settings=config,
        targets=targets,
        clock=lambda: dt.datetime.now(dt.UTC),
    )


async def receive(world: World, data: bytes = FLOW, code: str = "FEN1200A", **kw: str) -> Message:
    accepted = await world.port.accept(
        data,
        Incoming(
            protocol="as2",
            direction="reception",
            source="b2g-qual",
            interface_code=code,
            connection="b2g-qual",
            **kw,  # type: ignore[arg-type]
        ),
    )
    return await world.store.get(accepted.message_id)


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until `check()` (a value or an awaitable) is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def state_of(world: World, message: Message) -> MessageState:
    return (await world.store.get(message.id)).state


def deliveries(target: str, code: str, outcome: str) -> float:
    labels = {"target": target, "interface_code": code, "outcome": outcome}
    return REGISTRY.get_sample_value("raccord_deliveries_total", labels) or 0.0


# --- the receiver down first ---------------------------------------------------------------


async def test_webhook_down_retries_then_dead_nothing_lost_then_revived(
    world: World, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/flows"
    message = await receive(world, file_name="FEN1200A_42.xml")
    dead_before = deliveries("webhook", "FEN1200A", "dead")
    worker = service(world, settings(url, tmp_path / "out"))
    await worker.start()
    try:
        await until(lambda: _is(world, message, MessageState.DEAD))
    finally:
        await worker.stop(timeout=5)
    kinds = [e.kind for e in await world.store.events(message.id)]
    assert kinds.count("delivery_retry_scheduled") == 2
    assert kinds.count("handed_over") == 1  # the folder took it once, on the first attempt
    assert "ClientConnectorError" in ((await world.store.get(message.id)).last_error or "")
    assert deliveries("webhook", "FEN1200A", "dead") == dead_before + 1
    assert world.store.payload_path(message).read_bytes() == FLOW  # nothing lost

    revived = await world.store.retry(message.id)
    assert revived.state is MessageState.ACCEPTED
    back = Receiver()
    await back.start(port)
    worker = service(world, settings(url, tmp_path / "out"))
    await worker.start()
    try:
        await until(lambda: _is(world, message, MessageState.DELIVERED))
    finally:
        await worker.stop(timeout=5)
        await back.stop()
    [(headers, body, signed)] = back.received
    assert (body, signed, headers["X-Raccord-Message-Id"]) == (FLOW, True, message.id)
    kinds = [e.kind for e in await world.store.events(message.id)]
    assert kinds.count("handed_over") == 2  # folder once, webhook once
    assert [p.name for p in (tmp_path / "out" / "FEN1200A").iterdir()] == [
        f"{message.id}_FEN1200A_42.xml"
    ]


async def _is(world: World, message: Message, state: MessageState) -> bool:
    return await state_of(world, message) is state


async def test_a_webhook_answering_5xx_is_retried_until_it_accepts(
    world: World, receiver: Receiver
) -> None:
    receiver.status = 503
    message = await receive(world)
    worker = service(world, settings(receiver.url, None, max_attempts=10))
    await worker.start()
    try:
        await until(lambda: len(receiver.received) >= 2)
        receiver.status = 204
        await until(lambda: _is(world, message, MessageState.DELIVERED))
    finally:
        await worker.stop(timeout=5)
    assert all(signed for _, _, signed in receiver.received)
    assert {body for _, body, _ in receiver.received} == {FLOW}


def test_a_forged_or_replayed_signature_does_not_verify() -> None:
    header = sign(SECRET.encode(), "1700000000", b"body")
    assert verify_signature(SECRET.encode(), "1700000000", b"body", header)
    assert not verify_signature(SECRET.encode(), "1700000001", b"body", header)
    assert not verify_signature(SECRET.encode(), "1700000000", b"body!", header)
    assert not verify_signature(b"other", "1700000000", b"body", header)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("FEN1200A 2026\r\n.xml", "FEN1200A_2026_.xml"),
        ("é" * 300, None),
        ("....", None),
        (None, None),
    ],
)
async def test_delivered_names_are_safe_and_unique(
    world: World, name: str | None, expected: str | None
) -> None:
    message = replace(await receive(world), file_name=name)  # the store refuses such names;
    wanted = f"{message.id}_{expected}" if expected else f"FEN1200A_{message.id}.xml"
    assert delivered_name(message) == wanted  # this is the defence behind it


# --- delivering ----------------------------------------------------------------------------


async def test_folder_and_webhook_both_get_the_flow_and_it_is_delivered(
    world: World, receiver: Receiver, tmp_path: Path
) -> None:
    old = await receive(world, FLOW + b"<!-- before start -->")  # crash recovery: waiting
    emitted = await world.port.accept(
        payload("ubl-invoice.xml"),
        Incoming(
            protocol="api",
            direction="emission",
            source="api:qual",
            interface_code="FSO1100A",
            environment="qual",
        ),
    )
    worker = service(world, settings(receiver.url, tmp_path / "out"))
    await worker.start()
    try:
        new = await receive(world, FLOW, file_name="statuts.xml")
        await until(lambda: _is(world, new, MessageState.DELIVERED))
        await until(lambda: _is(world, old, MessageState.DELIVERED))
    finally:
        await worker.stop(timeout=5)
    written = tmp_path / "out" / "FEN1200A" / f"{new.id}_statuts.xml"
    assert written.read_bytes() == FLOW
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")]
    headers = {h["X-Raccord-Message-Id"]: h for h, _, _ in receiver.received}
    assert set(headers) == {old.id, new.id}
    assert headers[new.id]["X-Raccord-Interface-Code"] == "FEN1200A"
    assert headers[new.id]["X-Raccord-File-Name"] == "statuts.xml"
    assert headers[new.id]["X-Raccord-Connection"] == "b2g-qual"
    assert (await world.store.get(emitted.message_id)).state is MessageState.QUEUED
    [event] = [e for e in await world.store.events(new.id) if e.kind == "delivered"]
    assert event.detail["targets"] == ["folder", "webhook"]


async def test_only_the_configured_codes_are_delivered(world: World, tmp_path: Path) -> None:
    config = settings(None, tmp_path / "out").model_copy(update={"codes": ("CSO1100A",)})
    lifecycle = await receive(world, FLOW, "FEN1200A")
    report = await receive(world, payload("integration-report.xml"), "CSO1100A")
    worker = service(world, config)
    await worker.start()
    try:
        await until(lambda: _is(world, report, MessageState.DELIVERED))
    finally:
        await worker.stop(timeout=5)
    assert await state_of(world, lifecycle) is MessageState.ACCEPTED


async def test_a_flow_delivered_by_someone_else_meanwhile_is_left_alone(
    world: World, tmp_path: Path
) -> None:
    message = await receive(world)
    worker = service(world, settings(None, tmp_path / "out"))
    await world.store.mark_delivered(message.id, detail={"by": "sftp download"})
    await worker.deliver(message)  # it was due when listed; the store says no more
    kinds = [e.kind for e in await world.store.events(message.id)]
    assert kinds == ["accepted", "delivered", "handed_over"]
