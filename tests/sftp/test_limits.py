"""Limits and durability at the listener, driven by the asyncssh client."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable
from pathlib import Path
from typing import cast

import asyncssh
import pytest

from gateway.metrics import AUTH_FAILURES, SESSIONS
from gateway.model import MessageState
from protocols.ports import Accepted, Incoming, RefusalKind, TransferRefused
from protocols.sftp.ports import Limits
from protocols.sftp.server import SftpListener
from tests.sftp.harness import Accounts, GatewayEnv, KeyFiles, invoice, quiet, start_listener


async def login(
    port: int, user: str, key: KeyFiles | None = None, password: str | None = None
) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        client_keys=[key.key] if key is not None else None,
        password=password,
        known_hosts=None,
        agent_path=None,
        config=None,
        preferred_auth="password" if password is not None else "publickey",
    )


async def deposit(port: int, key: KeyFiles, name: str, data: bytes) -> None:
    async with (
        await login(port, "backoffice", key) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open(f"/out/FSO1100A/{name}", "wb") as remote,
    ):
        await remote.write(data)


def gauge() -> float:
    return float(SESSIONS.labels("sftp", "server")._value.get())


async def test_a_hundred_concurrent_sessions_all_land(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(
        env,
        accounts.build(max_sessions=150),
        tmp_path / "hk",
        limits=Limits(max_sessions=150),
    )
    try:
        await asyncio.gather(
            *(
                deposit(listener.port, accounts.backoffice, f"f{i}.xml", invoice())
                for i in range(100)
            )
        )
    finally:
        await listener.stop(timeout=5)
    messages = await env.store.list_messages(limit=1000)
    assert len(messages) == 100
    assert {m.state for m in messages} == {MessageState.QUEUED}


async def test_the_total_session_limit_turns_away_the_next_connection(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(
        env, accounts.build(), tmp_path / "hk", limits=Limits(max_sessions=2)
    )
    try:
        first = await login(listener.port, "backoffice", accounts.backoffice)
        second = await login(listener.port, "aife-g2b-qual", accounts.aife)
        with pytest.raises((asyncssh.DisconnectError, ConnectionError)):
            await login(listener.port, "backoffice", accounts.backoffice)
        first.close()
        second.close()
    finally:
        await listener.stop(timeout=5)


async def test_the_per_account_limit_is_counted_and_spares_other_accounts(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(env, accounts.build(max_sessions=1), tmp_path / "hk")
    before = AUTH_FAILURES.labels("sftp", "session-limit")._value.get()
    opened = gauge()
    try:
        first = await login(listener.port, "backoffice", accounts.backoffice)
        assert gauge() == opened + 1
        with pytest.raises(asyncssh.PermissionDenied):
            await login(listener.port, "backoffice", accounts.backoffice)
        other = await login(listener.port, "aife-g2b-qual", accounts.aife)
        other.close()
        first.close()
        await first.wait_closed()
        await asyncio.sleep(0.1)
        again = await login(listener.port, "backoffice", accounts.backoffice)
        again.close()
    finally:
        await listener.stop(timeout=5)
    assert AUTH_FAILURES.labels("sftp", "session-limit")._value.get() == before + 1
    assert gauge() == opened


async def test_an_idle_session_is_closed(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(
        env, accounts.build(), tmp_path / "hk", limits=Limits(idle_timeout=0.3)
    )
    try:
        conn = await login(listener.port, "backoffice", accounts.backoffice)
        await asyncio.wait_for(conn.wait_closed(), 5)
    finally:
        await listener.stop(timeout=5)


async def test_passwords_work_only_when_explicitly_enabled(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    built = accounts.build()
    with_password = (dataclasses.replace(built[0], password=b"s3cret-passw0rd"), built[1])
    closed = await start_listener(env, with_password, tmp_path / "hk")
    try:
        with pytest.raises(asyncssh.PermissionDenied):
            await login(closed.port, "backoffice", password="s3cret-passw0rd")
    finally:
        await closed.stop(timeout=5)
    opened = await start_listener(env, with_password, tmp_path / "hk", password_login=True)
    before = AUTH_FAILURES.labels("sftp", "bad-password")._value.get()
    try:
        with pytest.raises(asyncssh.PermissionDenied):
            await login(opened.port, "backoffice", password="wrong")
        conn = await login(opened.port, "backoffice", password="s3cret-passw0rd")
        conn.close()
        with pytest.raises(asyncssh.PermissionDenied):  # no password configured for it
            await login(opened.port, "aife-g2b-qual", password="s3cret-passw0rd")
    finally:
        await opened.stop(timeout=5)
    assert AUTH_FAILURES.labels("sftp", "bad-password")._value.get() == before + 1


async def test_close_returns_only_once_the_file_and_its_record_are_durable(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    data = invoice(padding=3_000_000)
    async with (
        await login(listener.port, "backoffice", accounts.backoffice) as conn,
        conn.start_sftp_client() as sftp,
    ):
        remote = await sftp.open("/out/FSO1100A/big.xml", "wb")
        await remote.write(data)
        assert await env.store.list_messages() == []  # written, not closed: not yet
        await remote.close()
        [message] = await env.store.list_messages()  # no wait: it is there already
        assert env.store.payload_path(message).read_bytes() == data


async def test_a_connection_lost_mid_upload_leaves_nothing(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    conn = await login(listener.port, "backoffice", accounts.backoffice)
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/out/FSO1100A/lost.xml", "wb")
    await remote.write(invoice(padding=2_000_000))
    conn.abort()
    await quiet(listener)
    assert await env.store.list_messages() == []
    assert list((env.store.root / "payloads" / "tmp").iterdir()) == []


class Unavailable:
    """An inbox port whose disk is gone: every file is refused with UNAVAILABLE."""

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        del data, incoming
        raise TransferRefused(RefusalKind.UNAVAILABLE, "the gateway could not store the file")


async def test_our_failure_is_a_failure_status_naming_the_reason(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(env, accounts.build(), tmp_path / "hk")
    listener.inbox = Unavailable()
    try:
        async with (
            await login(listener.port, "backoffice", accounts.backoffice) as conn,
            conn.start_sftp_client() as sftp,
        ):
            with pytest.raises(asyncssh.SFTPFailure, match="unavailable: the gateway"):
                async with sftp.open("/out/FSO1100A/x.xml", "wb") as remote:
                    await remote.write(b"<x/>")
    finally:
        await listener.stop(timeout=5)


async def test_a_partial_download_is_not_marked_fetched(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    body = invoice(padding=100_000)
    accepted = await env.port.accept(
        body,
        Incoming(
            protocol="pesit",
            direction="reception",
            source="g2b-qual-sftp",
            interface_code="XGB0001A",
            connection="g2b-qual-sftp",
        ),
    )
    path = f"/in/XGB0001A/XGB0001A_{accepted.message_id}.xml"
    async with (
        await login(listener.port, "backoffice", accounts.backoffice) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open(path, "rb") as remote:
            assert cast(bytes, await remote.read(1000)) == body[:1000]
        assert (await env.store.get(accepted.message_id)).state is MessageState.ACCEPTED
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.remove(path)
        async with sftp.open(path, "rb") as remote:
            assert cast(bytes, await remote.read()) == body
        await sftp.remove(path)  # fetched: removing it is an acknowledgement
    assert (await env.store.get(accepted.message_id)).state is MessageState.DELIVERED


async def test_fetched_flows_stay_readable_in_the_archive_when_configured(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    body = invoice()
    accepted = await env.port.accept(
        body,
        Incoming(
            protocol="pesit",
            direction="reception",
            source="g2b-qual-sftp",
            interface_code="XGB0001A",
            connection="g2b-qual-sftp",
        ),
    )
    name = f"XGB0001A_{accepted.message_id}.xml"
    listener = await start_listener(env, accounts.build(archive=True), tmp_path / "hk")
    try:
        async with (
            await login(listener.port, "backoffice", accounts.backoffice) as conn,
            conn.start_sftp_client() as sftp,
        ):
            assert await sftp.listdir("/in/XGB0001A/archive") == [".", ".."]
            async with sftp.open(f"/in/XGB0001A/{name}", "rb") as remote:
                assert cast(bytes, await remote.read()) == body
            assert name not in await sftp.listdir("/in/XGB0001A")
            assert name in await sftp.listdir("/in/XGB0001A/archive")
            async with sftp.open(f"/in/XGB0001A/archive/{name}", "rb") as remote:
                assert cast(bytes, await remote.read()) == body
    finally:
        await listener.stop(timeout=5)
    events = [e.kind for e in await env.store.events(accepted.message_id)]
    assert events.count("delivered") == 1


async def test_stop_lets_an_upload_in_flight_finish_then_disconnects(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> None:
    listener = await start_listener(env, accounts.build(), tmp_path / "hk")
    conn = await login(listener.port, "backoffice", accounts.backoffice)
    sftp = await conn.start_sftp_client()
    remote = await sftp.open("/out/FSO1100A/draining.xml", "wb")
    await remote.write(invoice())
    stopping = asyncio.create_task(listener.stop(timeout=5))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waiting for the upload in flight
    await remote.close()
    await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    [message] = await env.store.list_messages()
    assert message.state is MessageState.QUEUED
