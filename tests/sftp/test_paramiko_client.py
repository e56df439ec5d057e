"""paramiko (another SFTP implementation) against our listener: aborts, oversize, links, confirm."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import paramiko
import pytest

from gateway.metrics import REFUSED
from gateway.model import MessageState
from protocols.sftp.ports import Limits
from protocols.sftp.server import SftpListener
from tests.sftp.harness import Accounts, GatewayEnv, KeyFiles, invoice, quiet, start_listener

pytestmark = pytest.mark.interop
T = TypeVar("T")


@contextmanager
def connect(port: int, user: str, key: KeyFiles) -> Iterator[paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(
            username=user, pkey=paramiko.Ed25519Key.from_private_key_file(key.private)
        )
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        yield client
    finally:
        transport.close()


async def blocking(func: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(func, *args)


def temps(env: GatewayEnv) -> list[Path]:
    return list((env.store.root / "payloads" / "tmp").iterdir())


@pytest.fixture
async def small_listener(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> AsyncIterator[SftpListener]:
    limits = Limits(max_file_size=4096)
    started = await start_listener(env, accounts.build(), tmp_path / "hk", limits=limits)
    yield started
    await started.stop(timeout=5)


async def test_an_abort_mid_upload_delivers_nothing(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    def upload_half() -> None:
        with connect(listener.port, "backoffice", accounts.backoffice) as sftp:
            remote = sftp.open("/out/FSO1100A/half.xml", "wb")
            remote.write(invoice(padding=300_000)[:200_000])
            remote.flush()
            # the transport closes here, before the file is closed: an abort

    await blocking(upload_half)
    await quiet(listener)
    assert await env.store.list_messages() == []
    assert temps(env) == []


async def test_an_eof_mid_upload_is_an_abort_not_a_close(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    def eof_half() -> None:
        with connect(listener.port, "backoffice", accounts.backoffice) as sftp:
            remote = sftp.open("/out/FSO1100A/eof.xml", "wb")
            remote.write(invoice(padding=50_000))
            channel = sftp.get_channel()
            assert channel is not None
            channel.shutdown_write()  # SSH channel EOF: the server sees its input end
            time.sleep(0.3)

    await blocking(eof_half)
    await quiet(listener)
    assert await env.store.list_messages() == []
    assert temps(env) == []


async def test_an_oversize_upload_is_refused_with_its_reason(
    small_listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    before = REFUSED.labels("sftp", "emission", "too-large")._value.get()

    def put() -> tuple[str, str]:
        with connect(small_listener.port, "backoffice", accounts.backoffice) as sftp:
            remote = sftp.open("/out/FSO1100A/big.xml", "wb")  # unpipelined: each write answered
            with pytest.raises(OSError, match="too-large") as caught:
                remote.write(invoice(padding=10_000))
            remote.close()  # paramiko swallows errors on close; putfo's confirm then fails
            with pytest.raises(OSError, match="does not exist") as confirmed:
                sftp.putfo(io.BytesIO(invoice(padding=10_000)), "/out/FSO1100A/big2.xml")
            return str(caught.value), str(confirmed.value)

    message, confirmed = await blocking(put)
    assert "too-large" in message
    assert "does not exist" in confirmed
    assert REFUSED.labels("sftp", "emission", "too-large")._value.get() == before + 2
    await quiet(small_listener)
    assert await env.store.list_messages() == []
    assert temps(env) == []


async def test_symlinks_renames_and_reads_of_deposits_are_refused(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    def hostile() -> list[str]:
        errors = []
        with connect(listener.port, "backoffice", accounts.backoffice) as sftp:
            actions: list[Callable[[], object]] = [
                lambda: sftp.symlink("/etc/passwd", "/out/FSO1100A/x.xml"),
                lambda: sftp.rename("/out/FSO1100A/a.xml", "/out/FSO1106A/a.xml"),
                lambda: sftp.open("/out/FSO1100A/a.xml", "rb"),
                lambda: sftp.open("/out/FSO1100A/a.xml", "r+b"),
                lambda: sftp.listdir("/out/FSO1100A/../../etc"),
                lambda: sftp.readlink("/out/FSO1100A/x.xml"),
                lambda: sftp.utime("/out/FSO1100A", (0, 0)),
                lambda: sftp.remove("/out/FSO1100A/x.xml"),
            ]
            for action in actions:
                with pytest.raises(OSError, match=r".") as caught:
                    action()
                errors.append(str(caught.value))
        return errors

    errors = await blocking(hostile)
    assert len(errors) == 8
    assert await env.store.list_messages() == []


async def test_putfo_with_confirmation_sees_its_file_after_close(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    data = invoice()

    def put() -> int:
        with connect(listener.port, "backoffice", accounts.backoffice) as sftp:
            attrs = sftp.putfo(io.BytesIO(data), "/out/FSO1100A/confirmed.xml", confirm=True)
            assert "confirmed.xml" in sftp.listdir("/out/FSO1100A")
            return attrs.st_size or 0

    assert await blocking(put) == len(data)
    [message] = await env.store.list_messages()
    assert message.state is MessageState.QUEUED
    assert message.size == len(data)


async def test_a_resumed_part_upload_is_completed_by_rename(
    listener: SftpListener, env: GatewayEnv, accounts: Accounts
) -> None:
    data = invoice(padding=50_000)

    def resume() -> None:
        with connect(listener.port, "aife-g2b-qual", accounts.aife) as sftp:
            with sftp.open("/out/XGB0001A/r.xml.part", "wb") as first:
                first.write(data[:20_000])
            size = sftp.stat("/out/XGB0001A/r.xml.part").st_size
            with sftp.open("/out/XGB0001A/r.xml.part", "ab") as rest:
                rest.seek(size or 0)
                rest.write(data[size:])
            sftp.posix_rename("/out/XGB0001A/r.xml.part", "/out/XGB0001A/r.xml")

    await blocking(resume)
    [message] = await env.store.list_messages()
    assert env.store.payload_path(message).read_bytes() == data
    assert message.file_name == "r.xml"
