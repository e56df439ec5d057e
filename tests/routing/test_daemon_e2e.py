"""The whole daemon on loopback: drop folder and HTTP API to the right outbox, return flows back.

The protocol senders are written elsewhere: here each connection's outbox has a real in-test
`Sender` (it copies the payload under `sent/<connection>/<file name>`), plugged in through an
`EndpointFactory` exactly as a protocol plugs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import plug_intake
from gateway.cli import main
from gateway.daemon import Daemon
from gateway.intake_settings import IntakeSettings
from gateway.model import Direction, Environment, MessageState
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.services import EndpointFactory, GatewayContext, Service
from gateway.store import Message, Submission
from gateway.store.sqlite import open_store
from protocols.ports import Incoming
from tests.routing.conftest import payload
from tests.routing.test_delivery import SECRET, Receiver
from tests.sandbox import make_sandbox

TOKEN = "sandbox-token-change-me"  # the sandbox default (${RACCORD_API_TOKEN:-…})
UBL = payload("ubl-invoice.xml")
CII = payload("cii-16b.xml")
pytestmark = pytest.mark.e2e


class CopyingSender:
    """A real `Sender`: the file lands under sent/<connection>/<file name>, acknowledged."""

    def __init__(self, root: Path, connection: str) -> None:
        self._dir = root / connection

    async def send(self, message: Message, payload: Path) -> SendResult:
        assert message.file_name is not None
        await run_blocking(self._dir.mkdir, parents=True, exist_ok=True)
        await run_blocking(shutil.copyfile, payload, self._dir / message.file_name)
        return SendResult(f"<{message.id}@test>", acknowledged=True, detail={"copied": True})


class OutboxService:
    """One connection's outbox worker as a daemon service, woken by routing."""

    def __init__(self, context: GatewayContext, connection: str, root: Path) -> None:
        self.name = f"test-outbox-{connection}"
        self._context = context
        self._worker = OutboxWorker(
            context.store, CopyingSender(root, connection), connection=connection, poll_interval=1
        )
        self._unregister: Callable[[], None] | None = None

    @property
    def ready(self) -> bool:
        return True

    async def start(self) -> None:
        self._unregister = self._context.wakeups.register(
            self._worker.connection, self._worker.notify
        )
        self._worker.start()

    async def stop(self, *, timeout: float) -> None:
        if self._unregister is not None:
            self._unregister()
        await self._worker.stop(grace=timeout)


def outboxes(root: Path) -> EndpointFactory:
    def make(context: GatewayContext) -> Sequence[Service]:
        return [OutboxService(context, view.config.name, root) for view in context.registry]

    return make


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("e2e"))


@pytest.fixture
def config(sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox with its own data directory (certificates shared, store private)."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    monkeypatch.delenv("RACCORD_API_TOKEN", raising=False)
    text = sandbox.read_text().replace("data_dir: ../../var/data", f"data_dir: {tmp_path}/data")
    variant = sandbox.with_name(f"raccord-{uuid.uuid4().hex}.yaml")
    variant.write_text(text)
    return variant


@contextlib.asynccontextmanager
async def running(config: Path, *factories: EndpointFactory) -> AsyncIterator[Daemon]:
    daemon = Daemon(
        config,
        factories=list(factories),
        extensions=[plug_intake.admin_routes],
        install_signals=False,
    )
    task = asyncio.create_task(daemon.run())
    for _ in range(400):
        if task.done():
            raise AssertionError(f"the daemon stopped: exit {task.result()}")
        if daemon.admin is not None and daemon.admin.bound_port and daemon.context:
            break
        await asyncio.sleep(0.025)
    try:
        yield daemon
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


def url(daemon: Daemon) -> str:
    assert daemon.admin is not None
    return f"http://127.0.0.1:{daemon.admin.bound_port}"


def store_of(daemon: Daemon) -> Any:
    assert daemon.context is not None
    return daemon.context.store


async def until(check: Callable[[], object], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return outcome
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def post(daemon: Daemon, data: bytes, code: str, environment: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    params = {"interface": code, "environment": environment}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url(daemon)}/v1/flows", params=params, data=data, headers=headers) as r,
    ):
        body: dict[str, Any] = await r.json()
        assert r.status == 201, body
        return body


async def acknowledged(daemon: Daemon, message_id: str) -> bool:
    message = await store_of(daemon).get(message_id)
    return bool(message.state is MessageState.ACKNOWLEDGED)


async def test_drop_folder_and_api_reach_the_right_outbox_under_the_right_name(
    config: Path, tmp_path: Path
) -> None:
    drop, sent = tmp_path / "drop", tmp_path / "sent"
    intake = IntakeSettings(drop_dir=drop, poll_interval=0.05, settle_seconds=0)
    async with running(config, plug_intake.factory_for(intake), outboxes(sent)) as daemon:
        await until((drop / ".tmp").is_dir)  # the drop folder service laid out its folders
        (drop / ".tmp" / "inv.xml").write_bytes(UBL)
        (drop / "qual" / "FSO1100A").mkdir()
        (drop / ".tmp" / "inv.xml").rename(drop / "qual" / "FSO1100A" / "inv.xml")
        by_api = await post(daemon, CII, "FSO1106A", "prod")
        status = await post(daemon, payload("cpp-statut.xml"), "XGB0002A", "qual")
        receipt = drop / "done" / "qual" / "FSO1100A" / "inv.xml.receipt.json"
        await until(receipt.exists)
        from_folder = await store_of(daemon).get(json.loads(receipt.read_text())["message_id"])
        for message_id in (from_folder.id, by_api["message_id"], status["message_id"]):
            await until(partial(acknowledged, daemon, message_id))
    assert (sent / "b2g-qual-as2" / f"FSO1100A_{from_folder.id}.xml").read_bytes() == UBL
    assert (sent / "b2g-prod-pesit" / f"FSO1106A_{by_api['message_id']}.xml").read_bytes() == CII
    assert (sent / "g2b-qual-sftp" / f"XGB0002A_{status['message_id']}.xml").exists()
    assert sorted(p.name for p in sent.iterdir()) == [
        "b2g-prod-pesit",
        "b2g-qual-as2",
        "g2b-qual-sftp",
    ]


async def test_a_stranded_accepted_message_is_routed_by_the_start_up_sweep(
    config: Path, tmp_path: Path
) -> None:
    store = await open_store(tmp_path / "data")
    try:
        receipt = await store.accept(
            UBL,
            Submission(
                source="folder:qual",
                direction=Direction.EMISSION,
                interface_code="FSO1100A",
                protocol="folder",
                environment=Environment.QUAL,
                file_name="inv.xml",
            ),
        )
    finally:
        await store.close()  # "crash": accepted and acknowledged, never routed
    sent = tmp_path / "sent"
    async with running(config, outboxes(sent)) as daemon:
        await until(lambda: acknowledged(daemon, receipt.message_id))
    assert (sent / "b2g-qual-as2" / f"FSO1100A_{receipt.message_id}.xml").read_bytes() == UBL


async def test_a_return_flow_is_delivered_to_folder_and_webhook_and_correlated(
    config: Path, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.start()
    delivery = {
        "folder": tmp_path / "outgoing",
        "webhook": {"url": receiver.url, "secret": SECRET},
        "retry": {"base_delay": 0.05},
        "poll_interval": 0.05,
    }
    intake = IntakeSettings.model_validate({"delivery": delivery, "correlation_interval": 0.1})
    try:
        async with running(
            config, plug_intake.factory_for(intake), outboxes(tmp_path / "sent")
        ) as daemon:
            assert daemon.context is not None
            sent = await post(daemon, UBL, "FSO1100A", "qual")
            await until(lambda: acknowledged(daemon, sent["message_id"]))
            report = (
                f"<CompteRendu><NomFichier>{sent['file_name']}</NomFichier>"
                "<Etat>IN_INTEGRE</Etat></CompteRendu>"
            ).encode()
            flows = [
                ("CSO1100A", report),
                ("FEN1200A", payload("integration-report.xml").replace(b"IN_INTEGRE", b"OK")),
            ]
            received = []
            for code, data in flows:
                accepted = await daemon.context.inbox_port.accept(
                    data,
                    Incoming(
                        protocol="as2",
                        direction="reception",
                        source="b2g-qual-as2",
                        interface_code=code,
                        connection="b2g-qual-as2",
                        file_name=f"{code}_from_aife.xml",
                    ),
                )
                received.append(accepted.message_id)
            for message_id in received:
                await until(partial(delivered, daemon, message_id))
            chain = await until(lambda: chain_with(daemon, sent["message_id"], "lifecycle_status"))
    finally:
        await receiver.stop()
    kinds = iter(e["kind"] for e in chain["events"])
    story = ["accepted", "routed", "claimed", "acknowledged", "correlated", "integration_report"]
    assert all(kind in kinds for kind in story)  # in this order, other events in between
    assert {link["message"]["id"] for link in chain["related"]} == set(received)
    for code, message_id in zip(("CSO1100A", "FEN1200A"), received, strict=True):
        written = tmp_path / "outgoing" / code / f"{message_id}_{code}_from_aife.xml"
        assert written.is_file()
    assert {h["X-Raccord-Message-Id"] for h, _, ok in receiver.received if ok} == set(received)


async def delivered(daemon: Daemon, message_id: str) -> bool:
    return bool((await store_of(daemon).get(message_id)).state is MessageState.DELIVERED)


async def chain_with(daemon: Daemon, message_id: str, kind: str) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url(daemon)}/v1/messages/{message_id}", headers=headers) as response,
    ):
        body: dict[str, Any] = await response.json()
    return body if kind in [e["kind"] for e in body["events"]] else None


async def test_raccord_send_and_messages_chain_against_the_running_gateway(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big-invoice.xml"
    big.write_bytes(UBL + b"<!--" + b"x" * (3 << 20) + b"-->")
    intake = plug_intake.factory_for(IntakeSettings(correlation_interval=0.1))
    async with running(config, intake, outboxes(tmp_path / "sent")) as daemon:
        argv = ["--config", str(config), "--url", url(daemon)]
        capsys.readouterr()
        code = await asyncio.to_thread(
            main, ["send", str(big), "--interface", "FSO1100A", "--environment", "qual", *argv]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        message_id = out.strip().splitlines()[-1]  # the daemon's own logs come before
        assert "100%" in err
        assert "sending big-invoice.xml [####################]" in err
        await until(lambda: acknowledged(daemon, message_id))
        await until(lambda: chain_with(daemon, message_id, "indexed"))
        code = await asyncio.to_thread(main, ["messages", "chain", message_id, *argv])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "routed" in out
        assert "acknowledged" in out
        code = await asyncio.to_thread(
            main, ["send", str(big), "--interface", "FSO9999A", "--environment", "qual", *argv]
        )
        _, err = capsys.readouterr()
        assert code == 1
        assert "refused, unknown-code: FSO9999A is not in the interface catalogue" in err
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-token\n")
        send = ["send", str(big), "--interface", "FSO1100A", "--environment", "qual"]
        code = await asyncio.to_thread(main, [*send, *argv, "--token-file", str(wrong)])
        assert code == 1
        assert "refused, unauthorized" in capsys.readouterr().err
    message = await until(lambda: _stored(tmp_path / "data", message_id))
    assert message.size == big.stat().st_size
    chained = ["messages", "chain", message_id, "--config", str(config), "--json"]
    code = await asyncio.to_thread(main, chained)
    out, err = capsys.readouterr()  # the gateway is stopped: read from the store itself
    assert code == 0, err
    chain = json.loads(out)
    assert chain["message"]["state"] == "acknowledged"
    assert chain["references"] == {"invoice": ["RACCORD-2026-0001"]}


async def _stored(data: Path, message_id: str) -> Message:
    store = await open_store(data)
    try:
        message: Message = await store.get(message_id)
        return message
    finally:
        await store.close()
