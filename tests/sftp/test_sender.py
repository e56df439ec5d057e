"""Our client against a real OpenSSH sshd (internal-sftp, chroot) on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from bench.sftp_servers import OpenSshd, start_sshd
from gateway.model import MessageState
from gateway.plug_sftp import ClientPlan, ClientService
from gateway.store import RetryPolicy
from protocols.errors import PermanentSendError, TransientSendError
from protocols.ports import Incoming
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import fingerprint
from protocols.sftp.poller import Poller, PollParams
from protocols.sftp.sender import SftpSender
from tests.sftp.harness import GatewayEnv, invoice

pytestmark = pytest.mark.interop
CLIENT = asyncssh.generate_private_key("ssh-ed25519")
LINE = CLIENT.export_public_key("openssh").decode().strip()


@pytest.fixture(scope="module")
def sshd() -> Iterator[OpenSshd]:
    try:
        server = start_sshd([LINE])
    except RuntimeError as exc:
        pytest.skip(f"OpenSSH sshd cannot run here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def depot(sshd: OpenSshd, request: pytest.FixtureRequest) -> Path:
    """A fresh directory inside the chroot for each test."""
    path: Path = sshd.jail / str(request.node.name)[:40]
    path.mkdir()
    return path


def params(sshd: OpenSshd, depot: Path, **overrides: object) -> ClientParams:
    values: dict[str, object] = {
        "connection": "g2b-qual-sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": "root",
        "client_key": CLIENT,
        "pins": (sshd.host_key,),
        "ciphers": ("aes128-gcm@openssh.com",),
        "connect_timeout": 10.0,
        "remote_dir": f"/jail/{depot.name}",
    }
    values.update(overrides)
    return ClientParams(**values)  # type: ignore[arg-type]


async def test_a_changed_host_key_refuses_the_transfer(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    sender = SftpSender(params(sshd, depot, pins=(other,)))
    payload = tmp_path / "p.xml"
    payload.write_bytes(b"<x/>")
    with pytest.raises(TransientSendError, match="not pinned") as caught:
        await sender.send_file(payload, file_name="XGB0002A_1.xml", interface_code="XGB0002A")
    assert fingerprint(sshd.host_key) in caught.value.reason
    assert list(depot.iterdir()) == []


async def test_no_pinned_key_means_no_connection(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "p.xml"
    payload.write_bytes(b"<x/>")
    sender = SftpSender(params(sshd, depot, pins=()))
    with pytest.raises(TransientSendError, match="no pinned host key"):
        await sender.send_file(payload, file_name="a.xml", interface_code="XGB0002A")


async def test_a_key_the_server_does_not_know_is_a_clear_error(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "p.xml"
    payload.write_bytes(b"<x/>")
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    sender = SftpSender(params(sshd, depot, client_key=stranger))
    with pytest.raises(TransientSendError, match="refused our key"):
        await sender.send_file(payload, file_name="a.xml", interface_code="XGB0002A")


async def test_a_hostile_file_name_is_never_sent(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "p.xml"
    payload.write_bytes(b"<x/>")
    sender = SftpSender(params(sshd, depot))
    with pytest.raises(PermanentSendError, match=r"not a file name|separator"):
        await sender.send_file(payload, file_name="../../etc/x", interface_code="XGB0002A")


async def test_upload_lands_under_its_final_name_only(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    data = invoice(padding=3_000_000)
    payload = tmp_path / "p.xml"
    payload.write_bytes(data)
    sender = SftpSender(params(sshd, depot))
    try:
        done = await sender.send_file(payload, file_name="XGB0002A_1.xml", interface_code="X")
        assert [p.name for p in depot.iterdir()] == ["XGB0002A_1.xml"]
        assert (depot / "XGB0002A_1.xml").read_bytes() == data
        assert (done.resumed_from, done.already_there) == (0, False)
        again = await sender.send_file(payload, file_name="XGB0002A_1.xml", interface_code="X")
        assert again.already_there
    finally:
        await sender.close()


async def test_a_broken_upload_resumes_where_the_server_stands(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    data = invoice(padding=2_000_000)
    payload = tmp_path / "p.xml"
    payload.write_bytes(data)
    (depot / "XGB0002A_2.xml.part").write_bytes(data[:700_000])  # what a broken attempt left
    sender = SftpSender(params(sshd, depot))
    try:
        done = await sender.send_file(payload, file_name="XGB0002A_2.xml", interface_code="X")
    finally:
        await sender.close()
    assert done.resumed_from == 700_000
    assert (depot / "XGB0002A_2.xml").read_bytes() == data
    assert not (depot / "XGB0002A_2.xml.part").exists()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


async def test_a_killed_session_is_reopened_on_the_next_attempt(
    sshd: OpenSshd, depot: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "p.xml"
    payload.write_bytes(invoice())
    sender = SftpSender(params(sshd, depot))
    try:
        await sender.send_file(payload, file_name="a.xml", interface_code="X")
        for child in _children(sshd.process.pid):
            os.kill(child, signal.SIGKILL)  # the server side of our open session dies
        await asyncio.sleep(0.2)
        outcomes = []
        for _ in range(2):
            try:
                await sender.send_file(payload, file_name="b.xml", interface_code="X")
            except TransientSendError as exc:
                outcomes.append(exc.reason)
                continue
            outcomes.append("sent")
            break
        assert outcomes[-1] == "sent", outcomes
    finally:
        await sender.close()
    assert (depot / "b.xml").read_bytes() == payload.read_bytes()


async def test_polled_files_are_removed_only_once_durable(
    sshd: OpenSshd, depot: Path, env: GatewayEnv
) -> None:
    (depot / "XGB0001A").mkdir()
    body = invoice()
    (depot / "XGB0001A" / "in1.xml").write_bytes(body)
    (depot / "XGB0001A" / "writing.xml.part").write_bytes(b"half")
    poll = PollParams(directories={"XGB0001A": f"/jail/{depot.name}/XGB0001A"}, interval=60)
    poller = Poller(params(sshd, depot), poll, inbox=env.port)
    assert await poller.poll_once() == 0  # first sight: wait until it stops changing
    assert await poller.poll_once() == 1
    [message] = await env.store.list_messages()
    assert (message.connection, message.interface_code) == ("g2b-qual-sftp", "XGB0001A")
    assert env.store.payload_path(message).read_bytes() == body
    assert sorted(p.name for p in (depot / "XGB0001A").iterdir()) == ["writing.xml.part"]


async def test_polled_files_can_be_moved_aside_and_refusals_stay(
    sshd: OpenSshd, depot: Path, env: GatewayEnv
) -> None:
    (depot / "XGB0003A").mkdir()
    (depot / "FEN1200A").mkdir()
    (depot / "XGB0003A" / "ok.xml").write_bytes(invoice())
    (depot / "FEN1200A" / "not-subscribed.xml").write_bytes(invoice())
    directories = {
        "XGB0003A": f"/jail/{depot.name}/XGB0003A",
        "FEN1200A": f"/jail/{depot.name}/FEN1200A",
    }
    poll = PollParams(directories=directories, interval=60, after="move", archive_dir="done")
    poller = Poller(params(sshd, depot), poll, inbox=env.port)
    await poller.poll_once()
    assert await poller.poll_once() == 1
    assert (depot / "XGB0003A" / "done" / "ok.xml").exists()
    assert (depot / "FEN1200A" / "not-subscribed.xml").exists()
    assert await poller.poll_once() == 0  # the refusal is remembered, not retried each poll


async def test_the_outbox_worker_sends_a_routed_message(
    sshd: OpenSshd, depot: Path, env: GatewayEnv
) -> None:
    accepted = await env.port.accept(
        invoice(),
        Incoming(
            protocol="api",
            direction="emission",
            source="backoffice",
            interface_code="XGB0002A",
            environment="qual",
            file_name="status.xml",
        ),
    )
    plan = ClientPlan(params(sshd, depot), None, RetryPolicy(max_attempts=3, base_delay=0.1))
    service = ClientService(plan, env.context())
    await service.start()
    try:
        for _ in range(200):
            message = await env.store.get(accepted.message_id)
            if message.state is MessageState.ACKNOWLEDGED:
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop(timeout=5)
    assert message.state is MessageState.ACKNOWLEDGED, message.last_error
    assert (depot / f"XGB0002A_{accepted.message_id}.xml").read_bytes() == invoice_of(env, message)


def invoice_of(env: GatewayEnv, message: object) -> bytes:
    return env.store.payload_path(message).read_bytes()  # type: ignore[arg-type]
