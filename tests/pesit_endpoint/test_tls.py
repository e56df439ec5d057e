"""Hostile TLS first: who may reach our PeSIT server, and whom our requester agrees to call.

Every refusal happens before a PeSIT byte is read: nothing is spooled, nothing reaches the
inbox, and the listener counts the failure with its reason.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from protocols.errors import SendError
from protocols.pesit.endpoint import PesitPermanentError, PesitTransientError, push
from protocols.pesit.events import FileInfo
from protocols.pesit.fpdu import Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, frame
from protocols.pesit.negotiation import connect_params
from tests.pesit_endpoint.helpers import (
    CODE,
    MemoryInbox,
    Pki,
    Recorder,
    Who,
    payload,
    peer,
    settings,
    start_listener,
)

FILE = FileInfo(file_name=CODE, transfer_id=9)
CONNECT = frame(
    encode_fpdu(Fpdu(FpduType.CONNECT, 0, 1, connect_params(settings()))), Framing.PREFIXED
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "flow.xml"
    path.write_bytes(payload(20_000))
    return path


async def _refused_client(pki: Pki, tmp_path: Path, source: Path, who: Who) -> Recorder:
    observer, inbox = Recorder(), MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox, observer=observer)
    try:
        with pytest.raises(SendError):
            await push(peer(pki, listener.port, who=who), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert inbox.files == []
    assert not (tmp_path / "spool").exists()  # not one byte was spooled
    return observer


async def test_client_certificate_of_an_untrusted_ca_is_refused(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    observer = await _refused_client(pki, tmp_path, source, pki.stranger)
    assert observer.of("auth") == [("auth", "tls")]


async def test_expired_client_certificate_is_refused(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    observer = await _refused_client(pki, tmp_path, source, pki.expired)
    assert observer.of("auth") == [("auth", "tls")]


async def test_another_connections_valid_certificate_is_refused(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    observer = await _refused_client(pki, tmp_path, source, pki.other)
    assert observer.of("auth") == [("auth", "certificate")]


async def test_client_without_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    observer = Recorder()
    listener = await start_listener(pki, tmp_path / "spool", observer=observer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=pki.anchors)
    connect = Fpdu(FpduType.CONNECT, 0, 1, connect_params(settings()))
    try:
        answer = await _answer_to(
            listener.port, frame(encode_fpdu(connect), Framing.PREFIXED), context
        )
    finally:
        await listener.stop(timeout=1)
    assert answer == b""
    assert observer.of("auth") == [("auth", "tls")]


async def _answer_to(port: int, data: bytes, context: ssl.SSLContext | None) -> bytes:
    """What the server says to `data`: b"" when it closes (or resets) without a word."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except (ssl.SSLError, ConnectionError):
        return b""
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1000), 5)
    except (ssl.SSLError, ConnectionError):
        return b""
    finally:
        writer.close()


async def test_plain_tcp_connect_is_refused_without_a_pesit_answer(
    pki: Pki, tmp_path: Path
) -> None:
    observer = Recorder()
    listener = await start_listener(pki, tmp_path / "spool", observer=observer)
    try:
        answer = await _answer_to(listener.port, CONNECT, None)
    finally:
        await listener.stop(timeout=1)
    assert answer[:1] in {b"", b"\x15"}  # silence or a TLS alert record: PeSIT never started
    assert observer.of("auth") == [("auth", "tls")]


async def test_tls_below_the_configured_minimum_is_refused(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    observer = Recorder()
    strict = pki.server_tls()
    strict.minimum_version = ssl.TLSVersion.TLSv1_3  # a connection set to tls_min_version "1.3"
    listener = await start_listener(pki, tmp_path / "spool", observer=observer, tls=strict)
    old = pki.client_tls()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with pytest.raises(SendError):
            await push(replace(peer(pki, listener.port), ssl_context=old), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert observer.of("auth") == [("auth", "tls")]


async def test_requester_refuses_a_server_that_is_not_the_partner(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    listener = await start_listener(pki, tmp_path / "spool", server_who=pki.other)
    try:
        with pytest.raises(PesitPermanentError, match="not this connection's partner"):
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)


async def test_requester_refuses_a_server_of_an_untrusted_ca(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    listener = await start_listener(pki, tmp_path / "spool", server_who=pki.stranger)
    try:
        with pytest.raises(PesitPermanentError, match="TLS certificate refused"):
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)


async def test_nobody_listening_is_a_transient_failure(pki: Pki, source: Path) -> None:
    with pytest.raises(PesitTransientError, match="cannot reach"):
        await push(peer(pki, 1), source, file=FILE)
