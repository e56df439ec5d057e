"""The whole gateway with only the PeSIT plug: the sandbox's b2g-prod-pesit connection.

The daemon runs in this process on a private copy of the sandbox configuration; AIFE is
played by our own adapters with the sandbox's AIFE certificate. Files go through the real
inbox port (traffic, subscription and routing rules), the real store and the outbox worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway import plug_pesit
from gateway.daemon import Daemon
from gateway.metrics import REGISTRY
from gateway.model import Direction, MessageState
from gateway.services import GatewayContext
from protocols.errors import SendError
from protocols.pesit.endpoint import (
    Journal,
    OutgoingFile,
    Peer,
    PesitListener,
    PesitPermanentError,
    PushResult,
    ServerProfile,
    Spool,
    client_context,
    pull,
    push,
    server_context,
)
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.receiving import Receiver
from protocols.pesit.endpoint.spool import logged_points
from protocols.pesit.events import FileInfo
from protocols.pesit.settings import PesitSettings
from protocols.ports import Incoming
from tests.pesit_endpoint.helpers import (
    TIMERS,
    CutProxy,
    MemoryInbox,
    Starts,
    Waiting,
    wait_for,
)
from tests.sandbox import make_sandbox

CONNECTION, OUR_ID = "b2g-prod-pesit", "PAB2GPRD"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].public_bytes(Encoding.DER)


@dataclass
class Sandbox:
    config: Path
    certs: Path
    listen_port: int

    def anchors(self) -> str:
        return (self.certs / "ca.pem").read_text()

    def aife_caller(self) -> Peer:
        """AIFE calling our server: its certificate, our server certificate pinned."""
        return Peer(
            connection=CONNECTION,
            host="127.0.0.1",
            port=self.listen_port,
            ssl_context=client_context(
                certificate=self.certs / "aife-prod.pem",
                key=self.certs / "aife-prod.key",
                anchors=self.anchors(),
            ),
            pins=frozenset({_der(self.certs / "b2g-prod-pesit-server.pem")}),
            settings=PesitSettings(requester_id="CPRO", server_id=OUR_ID, timers=TIMERS),
        )

    async def aife_server(
        self, inbox: MemoryInbox, spool: Path, waiting: Waiting | None = None
    ) -> PesitListener:
        """AIFE's server: its certificate, our client certificate expected."""
        profile = ServerProfile(
            connection="aife",
            settings=PesitSettings(requester_id=OUR_ID, server_id="CPRO", timers=TIMERS),
            names={},
            max_size=1 << 30,
            spool_dir=spool,
        )
        listener = PesitListener(
            profile,
            host="127.0.0.1",
            port=0,
            ssl_context=server_context(
                certificate=self.certs / "aife-prod.pem",
                key=self.certs / "aife-prod.key",
                anchors=self.anchors(),
            ),
            pins=frozenset({_der(self.certs / "b2g-prod-pesit.pem")}),
            inbox=inbox,
            admission=_AdmitAll(),
            outgoing=waiting or Waiting(),
        )
        await listener.start()
        return listener


class _AdmitAll:
    def admit(self, interface_code: str) -> None:
        del interface_code


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox (CA, certificates) per module; each test works on a copy of it."""
    root = tmp_path_factory.mktemp("sandbox")
    make_sandbox(root)
    return root


def _sandbox(template: Path, root: Path) -> Sandbox:
    """A private copy of the sandbox; `configure` says where AIFE listens."""
    shutil.copytree(template, root, dirs_exist_ok=True)
    config = root / "config" / "sandbox" / "raccord.yaml"
    return Sandbox(config, root / "certs" / "sandbox", _free_port())


def configure(sandbox: Sandbox, *, aife_port: int, **settings: Any) -> Sandbox:
    raw = yaml.safe_load(sandbox.config.read_text())
    raw.pop("x-contact", None)
    raw.pop("x-validity", None)
    for sheet in raw["connections"]:
        if sheet["name"] == CONNECTION:
            sheet["network"]["aife"]["port"] = aife_port
            sheet["settings"] = {"listen_port": sandbox.listen_port, **settings}
            sheet["retry"] = {"base_delay": 0.05, "max_delay": 0.1}
    sandbox.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return sandbox


@contextlib.asynccontextmanager
async def running(sandbox: Sandbox) -> AsyncIterator[Daemon]:
    daemon = Daemon(
        sandbox.config, factories=[plug_pesit.factory], extensions=[], install_signals=False
    )
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(1000):
            assert not task.done(), "the daemon stopped at start-up"
            if daemon.admin is not None and (await daemon.readiness())["listeners"]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the PeSIT services never got ready")
        yield daemon
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


def _context(daemon: Daemon) -> GatewayContext:
    assert daemon.context is not None
    return daemon.context


@pytest.fixture(autouse=True)
def _admin_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")


async def test_aife_pushes_a_flow_then_pulls_it_back(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_read_back(self: Receiver) -> NoReturn:
        raise AssertionError("the gateway's inbox adopts the spool: it is never read back")

    sandbox = configure(_sandbox(template, tmp_path), aife_port=_free_port())
    body = (FIXTURES / "integration-report.xml").read_bytes()
    source = tmp_path / "report.xml"
    source.write_bytes(body)
    async with running(sandbox) as daemon:
        store = _context(daemon).store
        with monkeypatch.context() as patched:  # the gateway's side only: the pull below reads
            patched.setattr(Receiver, "chunks", no_read_back)
            await push(
                sandbox.aife_caller(),
                source,
                file=FileInfo(file_name="FEN1200A", transfer_id=77, label="cycle.xml"),
            )
        [message] = await store.list_messages(direction=Direction.RECEPTION)
        assert (message.connection, message.interface_code) == (CONNECTION, "FEN1200A")
        assert (message.state, message.file_name) == (MessageState.ACCEPTED, "cycle.xml")
        assert store.payload_path(message).read_bytes() == body
        back = MemoryInbox()
        await pull(
            sandbox.aife_caller(),
            names={"FEN1200A": "FEN1200A"},
            spool=Spool(tmp_path / "aife-pulled"),
            inbox=back,
            max_size=1 << 20,
        )
        assert [b for _, b in back.files] == [body]
        delivered = await store.get(message.id)
        assert delivered.state is MessageState.DELIVERED
    (served,) = (tmp_path / "var" / "data" / "pesit").glob("*/served")  # the pull's sync grid…
    assert list(served.iterdir()) == []  # …kept while it ran, gone once it was delivered


async def test_a_known_transfer_identity_on_other_bytes_is_refused_not_taken_for_a_repeat(
    template: Path, tmp_path: Path
) -> None:
    """The server recognises a resend by PI 13, 12 and 51 even announced as new: the same bytes
    are a duplicate, other bytes under that identity are refused, never dropped as a repeat."""
    sandbox = configure(_sandbox(template, tmp_path), aife_port=_free_port())
    body = (FIXTURES / "integration-report.xml").read_bytes()
    first, other = tmp_path / "first.xml", tmp_path / "other.xml"
    first.write_bytes(body)
    other.write_bytes(body.replace(b"</", b"<!-- another file --></", 1))
    same = FileInfo(file_name="FEN1200A", transfer_id=88, label="r.xml", created="261127090000")
    async with running(sandbox) as daemon:
        store = _context(daemon).store
        await push(sandbox.aife_caller(), first, file=same)
        await push(sandbox.aife_caller(), first, file=same)  # a requester that lost its journal
        with pytest.raises(PesitPermanentError):
            await push(sandbox.aife_caller(), other, file=same)
        [message] = await store.list_messages(direction=Direction.RECEPTION)
        assert store.payload_path(message).read_bytes() == body
        kinds = [e.kind for e in await store.events(message.id)]
        assert kinds.count("duplicate") == 1
        assert kinds.count("conflicting_repeat") == 1


async def test_aife_push_of_an_unsubscribed_code_is_refused_before_any_byte(
    template: Path, tmp_path: Path
) -> None:
    sandbox = configure(_sandbox(template, tmp_path), aife_port=_free_port())
    source = tmp_path / "flow.xml"
    source.write_bytes(b"<x/>")
    refused = _sample("raccord_refused_total", protocol="pesit", kind="not-subscribed")
    sent = _sample("raccord_pesit_diagnostics_total", connection=CONNECTION, diagnostic="2/226")
    async with running(sandbox) as daemon:
        with pytest.raises(PesitPermanentError, match="2/226"):
            await push(sandbox.aife_caller(), source, file=FileInfo(file_name="FEN1201A"))
        assert await _context(daemon).store.list_messages() == []
    assert _sample("raccord_refused_total", protocol="pesit", kind="not-subscribed") == refused + 1
    assert (
        _sample("raccord_pesit_diagnostics_total", connection=CONNECTION, diagnostic="2/226")
        == sent + 1
    )


async def test_another_connections_certificate_is_counted_and_refused(
    template: Path, tmp_path: Path
) -> None:
    sandbox = configure(_sandbox(template, tmp_path), aife_port=_free_port())
    source = tmp_path / "flow.xml"
    source.write_bytes(b"<x/>")
    other = replace(
        sandbox.aife_caller(),
        ssl_context=client_context(
            certificate=sandbox.certs / "aife-qual.pem",  # AIFE's, but another connection's
            key=sandbox.certs / "aife-qual.key",
            anchors=sandbox.anchors(),
        ),
    )
    failures = "raccord_authentication_failures_total"
    before = _sample(failures, protocol="pesit", reason="certificate")
    async with running(sandbox) as daemon:
        with pytest.raises(SendError):
            await push(other, source, file=FileInfo(file_name="FEN1200A"))
        assert await _context(daemon).store.list_messages() == []
    assert _sample(failures, protocol="pesit", reason="certificate") == before + 1


def _sample(name: str, **labels: str) -> float:
    """The current value of a counter (0 before its first increment)."""
    found = [
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    return sum(found)


async def _emit(context: GatewayContext, body: bytes) -> str:
    incoming = Incoming(
        protocol="api",
        direction="emission",
        source="back-office",
        interface_code="FSO1100A",
        environment="prod",
    )
    accepted = await context.inbox_port.accept(body, incoming)
    return accepted.message_id


async def test_routed_emission_is_pushed_to_aife_and_acknowledged(
    template: Path, tmp_path: Path
) -> None:
    aife_inbox = MemoryInbox()
    body = (FIXTURES / "ubl-invoice.xml").read_bytes()
    sandbox = _sandbox(template, tmp_path)
    aife = await sandbox.aife_server(aife_inbox, tmp_path / "aife-spool")
    configure(sandbox, aife_port=aife.port)
    try:
        async with running(sandbox) as daemon:
            context = _context(daemon)
            message_id = await _emit(context, body)
            await wait_for(lambda: len(aife_inbox.files) == 1, 10)
            await _until_state(context, message_id, MessageState.ACKNOWLEDGED)
            message = await context.store.get(message_id)
    finally:
        await aife.stop(timeout=1)
    incoming, received = aife_inbox.files[0]
    assert received == body
    assert incoming.interface_code == "FSO1100A"
    assert incoming.file_name == message.file_name  # PI 37 carries our file name
    assert message.sent_message_id is not None


async def _until_state(context: GatewayContext, message_id: str, state: MessageState) -> None:
    for _ in range(500):
        if (await context.store.get(message_id)).state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never reached {state}")


async def test_push_cut_mid_transfer_resumes_and_is_sent_once(
    template: Path, tmp_path: Path
) -> None:
    aife_inbox = MemoryInbox()
    invoice = (FIXTURES / "ubl-invoice.xml").read_bytes()
    cut = invoice.rindex(b"</")
    body = invoice[:cut] + b"<!--" + b"p" * 400_000 + b"-->" + invoice[cut:]
    sandbox = _sandbox(template, tmp_path)
    aife = await sandbox.aife_server(aife_inbox, tmp_path / "aife-spool")
    try:
        async with CutProxy(aife.port, up=len(body) // 2) as relay:
            configure(sandbox, aife_port=relay.port)
            async with running(sandbox) as daemon:
                context = _context(daemon)
                message_id = await _emit(context, body)
                await wait_for(lambda: relay.cuts == 1, 10)
                await _until_state(context, message_id, MessageState.QUEUED)
                await asyncio.sleep(0.2)  # the retry is due after a 0.1 s backoff at most
                context.wakeups.notify(CONNECTION)
                await _until_state(context, message_id, MessageState.ACKNOWLEDGED)
                events = await context.store.events(message_id)
    finally:
        await aife.stop(timeout=1)
    starts = [e.detail for e in events if e.kind == "pesit.transfer"]
    assert [s["restart"] for s in starts] == [False, True]
    assert starts[0]["transfer_id"] == starts[1]["transfer_id"]
    sent = [e.detail for e in events if e.state is MessageState.ACKNOWLEDGED]
    assert 0 < int(str(sent[-1]["resumed_from_byte"])) < len(body)
    assert [b for _, b in aife_inbox.files] == [body]  # identical, exactly once


async def test_return_flows_are_polled_from_aife_into_the_store(
    template: Path, tmp_path: Path
) -> None:
    body = (FIXTURES / "integration-report.xml").read_bytes()
    report = tmp_path / "report.xml"
    report.write_bytes(body)
    created = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    waiting = Waiting([OutgoingFile("R1", report, len(body), "CSO1100A", created, "cr.xml")])
    sandbox = _sandbox(template, tmp_path / "gw")
    aife = await sandbox.aife_server(MemoryInbox(), tmp_path / "aife-spool", waiting)
    configure(sandbox, aife_port=aife.port, pull_interval=0.2)
    try:
        async with running(sandbox) as daemon:
            await wait_for(lambda: bool(waiting.done), 10)
            store = _context(daemon).store
            [message] = await store.list_messages(direction=Direction.RECEPTION)
            payload = store.payload_path(message).read_bytes()
    finally:
        await aife.stop(timeout=1)
    assert (message.interface_code, message.connection) == ("CSO1100A", CONNECTION)
    assert (message.file_name, payload) == ("cr.xml", body)
    assert [d for d, _ in waiting.done] == ["R1"]


class Gateway:
    """The daemon with only the PeSIT plug, in a child process we may kill like a crash."""

    SCRIPT = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from gateway import plug_pesit\n"
        "from gateway.daemon import Daemon\n"
        "daemon = Daemon(Path(sys.argv[1]), factories=[plug_pesit.factory], extensions=[])\n"
        "sys.exit(asyncio.run(daemon.run()))\n"
    )

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "RACCORD_ADMIN_PORT": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_started(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if b'"gateway_started"' in line:
                return
        raise AssertionError("the gateway did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.slow
async def test_gateway_killed_mid_push_from_aife_resumes_after_restart(
    template: Path, tmp_path: Path
) -> None:
    """A crash (SIGKILL) in the middle of AIFE's push; the restarted gateway resumes it."""
    sandbox = configure(_sandbox(template, tmp_path), aife_port=_free_port(), sync_interval_kb=4)
    body = (FIXTURES / "integration-report.xml").read_bytes() * 4000
    source = tmp_path / "big.xml"
    source.write_bytes(body)
    journal, starts = Journal(tmp_path / "aife-journal"), Starts()

    async def started(transfer_id: int, restart: bool, points: int) -> None:
        starts.append((transfer_id, restart, points))

    def attempt() -> Coroutine[Any, Any, PushResult]:
        return send_resumable(
            sandbox.aife_caller(), source, key="AIFE1", size=len(body), journal=journal,
            describe=lambda tid, restart: FileInfo(
                file_name="FEN1200A", transfer_id=tid, restart=restart
            ),
            started=started,
        )  # fmt: skip

    first = Gateway(sandbox.config)
    try:
        await asyncio.to_thread(first.wait_started)
        sending = asyncio.create_task(attempt())
        await wait_for(lambda: _points(tmp_path) >= 5, 20)
    finally:
        first.kill()
    with pytest.raises(SendError):
        await sending
    durable = _points(tmp_path)
    async with running(sandbox) as daemon:
        result = await attempt()
        messages = await _context(daemon).store.list_messages(direction=Direction.RECEPTION)
    assert starts[1][1] is True
    assert result.resumed_from.point >= durable >= 5
    assert [m.size for m in messages] == [len(body)]


def _points(root: Path) -> int:
    logs = list((root / "var" / "data" / "pesit").glob("*/received/*/points"))
    return len(logged_points(logs[0])) if logs else 0
