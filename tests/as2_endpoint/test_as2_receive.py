"""Inbound AS2 on a real loopback listener: OpenSSL-built messages stored byte for byte.

The MDN comes back only once the payload is durable, signed by *our* connection's certificate,
with the MIC of the signed entity; a repeated Message-ID gets the very same MDN bytes again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.model import Direction
from protocols.as2.receipts import StoredMdn
from tests.as2_endpoint.harness import (
    PA_QUAL,
    QUAL,
    Layout,
    Parties,
    post,
    raw_request,
    running_gateway,
    write_config,
)
from tests.as2_endpoint.messages import entity, mic_of, openssl_message, read_mdn

pytestmark = pytest.mark.interop

XML = b'<?xml version="1.0"?>\n<Report>\n  <Status>OK</Status>\n</Report>\n'


async def _stored(context: object, message_id: str) -> bytes:
    store = context.store  # type: ignore[attr-defined]
    message = await store.get(message_id)
    return bytes(store.payload_path(message).read_bytes())


async def test_openssl_message_is_durable_before_its_signed_mdn(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    async with running_gateway(write_config(layout)) as gw:
        status, answer_headers, answer = await post(f"{layout.base_url}/as2", headers, body)
        assert status == 200, answer
        mdn = read_mdn(answer_headers, answer, parties)
        assert mdn.disposition.ok, mdn.text
        assert mdn.original_message_id == headers["Message-ID"]
        assert answer_headers["AS2-From"] == PA_QUAL
        signed_entity = entity(XML).replace(b"\r\n", b"\r\n")
        assert mdn.mic is not None
        assert mdn.mic.header_value() == mic_of(signed_entity)
        [message] = await gw.context.store.list_messages(connection=QUAL)
        assert message.direction is Direction.RECEPTION
        assert message.interface_code == "CSO1100A"
        assert message.file_name == "CSO1100A_42.xml"
        assert message.peer_message_id == headers["Message-ID"]
        assert await _stored(gw.context, message.id) == XML
        events = await gw.context.store.events(message.id)
        assert [e.kind for e in events] == ["accepted", "as2.mdn_sent"]  # recorded before sent
        assert events[1].at == events[0].at  # in the commit that accepted the payload
        sent = StoredMdn.from_detail(events[1].detail)
        assert sent is not None
        assert sent.body == answer  # exactly what a repeat of this Message-ID gets again
        assert all(answer_headers[name] == value for name, value in sent.headers)


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_chunked_body_and_binary_payload_byte_identical(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    payload = os.urandom(50_000) + b"\r\n\n\r\x00"
    headers, body = openssl_message(parties, payload, file_name="FEN1200A_7.bin")
    async with running_gateway(write_config(layout)) as gw:
        status, answer_headers, answer = await post(
            f"{layout.base_url}/as2", headers, _chunks(body)
        )
        assert status == 200, answer
        assert read_mdn(answer_headers, answer, parties).disposition.ok
        [message] = await gw.context.store.list_messages(connection=QUAL)
        assert message.interface_code == "FEN1200A"
        stored = await _stored(gw.context, message.id)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(payload).digest()


async def test_replayed_message_id_gets_the_same_mdn_and_one_message(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    again = openssl_message(parties, XML, msg_id=headers["Message-ID"])  # re-signed, re-sealed
    other = openssl_message(parties, XML + b"<!-- other -->", msg_id=headers["Message-ID"])
    async with running_gateway(write_config(layout)) as gw:
        first = await post(f"{layout.base_url}/as2", headers, body)
        second = await post(f"{layout.base_url}/as2", headers, body)
        third = await post(f"{layout.base_url}/as2", again[0], again[1])
        assert first[0] == second[0] == third[0] == 200
        assert first[2] == second[2] == third[2]  # byte-identical MDN, signature included
        assert first[1]["Message-ID"] == third[1]["Message-ID"]
        # the same Message-ID on other content is not a replay: refused, never taken for one
        conflict = await post(f"{layout.base_url}/as2", other[0], other[1])
        assert conflict[0] == 200
        assert conflict[2] != first[2]
        assert b"processed/error" in conflict[2]
        assert b"already names message" in conflict[2]
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST /as2 HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n"
        raw = await raw_request(layout.listen_port, request.encode() + b"\r\n" + body)
        answer_head, _, answer_body = raw.partition(b"\r\n\r\n")
        assert answer_head.lower().count(b"\r\ndate:") == 1  # ours, not a second one
        assert answer_body == first[2]
        messages = await gw.context.store.list_messages(connection=QUAL)
        assert len(messages) == 1
        kinds = [e.kind for e in await gw.context.store.events(messages[0].id)]
        assert kinds == [
            "accepted", "as2.mdn_sent", "duplicate", "duplicate", "conflicting_repeat", "duplicate"
        ]  # fmt: skip
