"""The OpenSSH `sftp` client (batch mode) against our listener: hostile first, then the flows."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.metrics import AUTH_FAILURES, DELIVERIES
from gateway.model import Direction, MessageState
from protocols.ports import Incoming
from protocols.sftp.server import SftpListener
from tests.sftp.harness import Accounts, GatewayEnv, invoice, openssh_batch

pytestmark = pytest.mark.interop


async def nothing_stored(env: GatewayEnv, *, within: float = 5.0) -> bool:
    """No message, and no temp file once the session's teardown has removed whatever a
    dropped upload spooled (polled: the teardown runs after the client has gone)."""
    async with asyncio.timeout(within):
        while list((env.store.root / "payloads" / "tmp").iterdir()):
            await asyncio.sleep(0.02)
    return not await env.store.list_messages()


NO = "No such file|not found|does not exist"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("put {f} /etc/passwd", NO),
        ("put {f} ../../../etc/cron.d/x", NO),
        ("put {f} /out/FSO1100A/../../../../root/x", NO),
        ("put {f} /out/FSO9999A/x.xml", NO),
        ("put {f} /in/FEN1200A/x.xml", "Permission denied"),
        ("put {f} /out", NO),
        ("mkdir /out/FSO1100A/sub", "Permission denied"),
        ("symlink /etc/passwd /out/FSO1100A/link.xml", "Permission denied"),
        ("ln /out/FSO1100A/a /out/FSO1100A/b", "Permission denied"),
        ("rmdir /out/FSO1100A", "Permission denied"),
        ("rm /out/FSO1100A", "Permission denied"),
        ("chmod 777 /out/FSO1100A", "Permission denied"),
        ("get /etc/passwd {d}/stolen", NO),
        ("ls /etc", NO),
        ("cd /proc", NO),
    ],
)
async def test_hostile_commands_are_refused_and_store_nothing(
    *,
    listener: SftpListener,
    env: GatewayEnv,
    accounts: Accounts,
    tmp_path: Path,
    command: str,
    expected: str,
) -> None:
    local = tmp_path / "f.xml"
    local.write_bytes(invoice())
    line = command.format(f=local, d=tmp_path)
    batch = await openssh_batch(listener.port, "backoffice", accounts.backoffice.private, [line])
    assert batch.returncode != 0
    assert re.search(expected, batch.stderr), batch.stderr
    assert await nothing_stored(env)
    assert not (tmp_path / "stolen").exists()


async def test_a_stranger_key_is_refused_and_counted(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    before = AUTH_FAILURES.labels("sftp", "unknown-key")._value.get()
    batch = await openssh_batch(listener.port, "backoffice", accounts.stranger.private, ["ls /"])
    assert batch.returncode != 0
    assert "Permission denied" in batch.stderr
    assert AUTH_FAILURES.labels("sftp", "unknown-key")._value.get() == before + 1
    assert await nothing_stored(env)


async def test_a_refused_login_is_logged_with_the_peer_address(
    listener: SftpListener, accounts: Accounts
) -> None:
    """An operator must see who tried: the address is kept from the start of the connection."""
    with capture_logs() as logs:
        batch = await openssh_batch(
            listener.port, "backoffice", accounts.stranger.private, ["ls /"]
        )
        assert batch.returncode != 0
        for _ in range(100):  # the connection is lost on the server's side a moment later
            failed = [e for e in logs if e["event"] == "sftp.auth_failed"]
            if failed:
                break
            await asyncio.sleep(0.02)
    assert [(e["reason"], e["peer"]) for e in failed] == [("unknown-key", "127.0.0.1")]


async def test_the_key_of_another_account_does_not_open_this_one(
    listener: SftpListener, accounts: Accounts
) -> None:
    batch = await openssh_batch(listener.port, "backoffice", accounts.aife.private, ["ls /"])
    assert batch.returncode != 0
    assert "Permission denied" in batch.stderr


async def test_an_unknown_account_is_refused_like_a_wrong_key(
    listener: SftpListener, accounts: Accounts
) -> None:
    before = AUTH_FAILURES.labels("sftp", "unknown-account")._value.get()
    batch = await openssh_batch(listener.port, "root", accounts.backoffice.private, ["ls /"])
    assert batch.returncode != 0
    assert AUTH_FAILURES.labels("sftp", "unknown-account")._value.get() == before + 1


async def test_put_is_durable_and_routed(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    local = tmp_path / "facture.xml"
    local.write_bytes(invoice())
    batch = await openssh_batch(
        listener.port,
        "backoffice",
        accounts.backoffice.private,
        ["cd /out/FSO1100A", f"put {local}", "ls -l", "ls /", "ls /out"],
    )
    assert batch.returncode == 0, batch.stderr
    [message] = await env.store.list_messages(direction=Direction.EMISSION)
    assert message.state is MessageState.QUEUED
    assert (message.connection, message.interface_code) == ("b2g-qual-as2", "FSO1100A")
    assert (message.source, message.protocol) == ("backoffice", "sftp")
    assert message.file_name == f"FSO1100A_{message.id}.xml"
    assert env.store.payload_path(message).read_bytes() == local.read_bytes()
    assert "facture.xml" in batch.stdout
    assert "FSO1106A" in batch.stdout
    assert "in" in batch.stdout


async def test_a_part_file_is_delivered_only_when_renamed(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    local = tmp_path / "f.xml"
    local.write_bytes(invoice())
    key = accounts.aife.private  # reception: no routing, the message keeps the name given
    abandoned = await openssh_batch(
        listener.port, "aife-g2b-qual", key, [f"put {local} /out/XGB0001A/a.xml.part"]
    )
    assert abandoned.returncode == 0, abandoned.stderr
    assert await nothing_stored(env)  # closed under its temporary name, never renamed
    batch = await openssh_batch(
        listener.port,
        "aife-g2b-qual",
        key,
        [
            f"put {local} /out/XGB0001A/b.xml.part",
            "ls -l /out/XGB0001A",
            "rename /out/XGB0001A/b.xml.part /out/XGB0001A/b.xml",
            "ls -l /out/XGB0001A",
        ],
    )
    assert batch.returncode == 0, batch.stderr
    [message] = await env.store.list_messages()
    assert message.file_name == "b.xml"
    assert message.state is MessageState.ACCEPTED
    assert batch.stdout.count("b.xml.part") == 3  # put, the first listing and the rename


async def test_a_payload_of_the_wrong_format_is_refused_with_its_reason(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    local = tmp_path / "f.pdf"
    local.write_bytes(b"%PDF-1.7\n" + b"x" * 2000)
    batch = await openssh_batch(
        listener.port, "backoffice", accounts.backoffice.private, [f"put {local} /out/FSO1100A/"]
    )
    assert batch.returncode != 0
    assert "Failure" in batch.stderr
    [message] = await env.store.list_messages()
    assert message.state is MessageState.REJECTED
    assert "ubl-invoice" in (message.last_error or "")


async def test_reception_flows_are_collected_then_marked_fetched(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    body = (Path(__file__).parent.parent / "fixtures/payloads/cpp-statut.xml").read_bytes()
    accepted = await env.port.accept(
        body,
        Incoming(
            protocol="as2",
            direction="reception",
            source="b2g-qual-as2",
            interface_code="FEN1200A",
            connection="b2g-qual-as2",
            file_name="statut.xml",
        ),
    )
    name = f"FEN1200A_{accepted.message_id}.xml"
    before = DELIVERIES.labels("sftp", "FEN1200A", "delivered")._value.get()
    key = accounts.backoffice.private
    batch = await openssh_batch(
        listener.port,
        "backoffice",
        key,
        ["ls /in/FEN1200A", f"get /in/FEN1200A/{name} {tmp_path}/"],
    )
    assert batch.returncode == 0, batch.stderr
    assert name in batch.stdout
    assert (tmp_path / name).read_bytes() == body
    message = await env.store.get(accepted.message_id)
    assert message.state is MessageState.DELIVERED
    assert DELIVERIES.labels("sftp", "FEN1200A", "delivered")._value.get() == before + 1
    after = await openssh_batch(listener.port, "backoffice", key, ["ls /in/FEN1200A"])
    assert name not in after.stdout
    assert (await env.store.events(accepted.message_id))[-1].detail["account"] == "backoffice"


async def test_the_chorus_pro_side_delivers_reception_flows_of_its_connection(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    local = tmp_path / "g2b.xml"
    local.write_bytes(invoice())
    batch = await openssh_batch(
        listener.port,
        "aife-g2b-qual",
        accounts.aife.private,
        [f"put {local} /out/XGB0001A/", "ls /", f"-put {local} /out/FSO1100A/"],
    )
    assert batch.returncode == 0, batch.stderr
    [message] = await env.store.list_messages()
    assert message.direction is Direction.RECEPTION
    assert (message.connection, message.interface_code) == ("g2b-qual-sftp", "XGB0001A")
    assert "No such file" in batch.stderr  # FSO1100A is not this account's code
