"""Our sender against our endpoint playing AIFE: sync and async MDNs, retries, refusals, TLS.

A flow deposited for Chorus Pro is routed to the QUAL connection's outbox; its worker builds
with our key and AIFE's certificate, POSTs, and judges the MDN. A transport failure is retried
with the same Message-ID; a negative MDN rejects the message with its reason.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.model import MessageState
from gateway.store import Message
from protocols.as2.endpoint import server_tls
from protocols.ports import Incoming, RefusalKind, TransferRefused
from tests.as2_endpoint.aife import MemoryInbox, aife_side
from tests.as2_endpoint.harness import (
    QUAL,
    TEST_CODE,
    Layout,
    Parties,
    Running,
    free_port,
    metric,
    running_gateway,
    write_config,
)

INVOICE = b'<?xml version="1.0"?>\n<Invoice>\n  <ID>F-2026-0001</ID>\n</Invoice>\n'
S = MessageState


async def deposit(gw: Running, payload: bytes = INVOICE) -> str:
    """A flow for Chorus Pro, as the back office deposits it: routed to QUAL's outbox."""
    accepted = await gw.context.inbox_port.accept(
        payload,
        Incoming(protocol="api", direction="emission", source="back-office",
                 interface_code=TEST_CODE, environment="qual", file_name="invoice.xml"),
    )  # fmt: skip
    return accepted.message_id


async def settled(
    gw: Running, message_id: str, *states: MessageState, timeout: float = 15.0
) -> Message:
    """The message once it reaches one of `states` (fails the test on timeout)."""
    store = gw.context.store
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        message = await store.get(message_id)
        if message.state in states:
            return message
        if asyncio.get_running_loop().time() > deadline:
            kinds = [e.kind for e in await store.events(message_id)]
            raise AssertionError(f"{message.state} after {timeout}s; events {kinds}")
        await asyncio.sleep(0.02)


async def _kinds(gw: Running, message_id: str) -> list[str]:
    return [e.kind for e in await gw.context.store.events(message_id)]


async def test_sync_mdn_acknowledges_and_aife_has_the_bytes(
    parties: Parties, tmp_path: Path
) -> None:
    async with aife_side(parties) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port)
        async with running_gateway(write_config(layout)) as gw:
            before = metric(
                "raccord_as2_mdn_total",
                connection=QUAL,
                direction="received",
                disposition="processed",
                modifier="none",
            )
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
            [(payload, incoming)] = aife.inbox.files.values()
            assert payload == INVOICE
            assert incoming.interface_code == TEST_CODE
            assert incoming.file_name == f"{TEST_CODE}_{message_id}.xml"
            assert message.sent_message_id == aife.posts[0]
            assert message.sent_message_id.startswith(f"<{message_id}.")
            assert await _kinds(gw, message_id) == [
                "accepted",
                "routed",
                "claimed",
                "as2.sending",
                "acknowledged",
            ]
            assert (
                metric(
                    "raccord_as2_mdn_total",
                    connection=QUAL,
                    direction="received",
                    disposition="processed",
                    modifier="none",
                )
                == before + 1
            )


async def test_async_mdn_on_the_listener_acknowledges(parties: Parties, tmp_path: Path) -> None:
    async with aife_side(parties) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port, qual={"mdn_mode": "async"})
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw, os.urandom(30_000))
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
            assert len(aife.posts) == 1
            [answer] = aife.answers
            assert answer.disposition.ok
            assert answer.status == 200


async def test_async_mdn_on_the_admin_url_after_the_sender_stopped_waiting(
    parties: Parties, tmp_path: Path
) -> None:
    """No sender waits: the MDN is recorded, then settles the `sent` message."""
    admin_port = free_port()
    async with aife_side(parties) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port, qual={
            "mdn_mode": "async", "async_mdn_wait": 0.001, "mdn_timeout": 2,
            "mdn_url": f"http://127.0.0.1:{admin_port}/as2/mdn"})  # fmt: skip
        config = write_config(layout)
        config.write_text(config.read_text().replace("port: 0", f"port: {admin_port}"))
        async with running_gateway(config) as gw:
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
            kinds = await _kinds(gw, message_id)
            assert "as2.mdn_received" in kinds
            assert kinds[-1] == "acknowledged"


async def test_transport_failure_then_success_keeps_the_message_id(
    parties: Parties, tmp_path: Path
) -> None:
    async with aife_side(parties, fail_first=2) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port)
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
            assert message.attempts == 3
            assert len(aife.posts) == 3
            assert len(set(aife.posts)) == 1
            assert message.sent_message_id == aife.posts[0]
            kinds = await _kinds(gw, message_id)
            assert kinds.count("retry_scheduled") == 2


async def test_partner_down_then_up_gets_the_same_message_id(
    parties: Parties, tmp_path: Path
) -> None:
    port = free_port()
    layout = Layout(
        tmp_path,
        parties,
        aife_port=port,
        retry={"max_attempts": 50, "base_delay": 0.05, "max_delay": 0.1},
    )
    async with running_gateway(write_config(layout)) as gw:
        message_id = await deposit(gw)
        while "retry_scheduled" not in await _kinds(gw, message_id):
            await asyncio.sleep(0.02)
        failed = await gw.context.store.get(message_id)
        assert failed.last_error is not None
        assert "transport" in failed.last_error
        async with aife_side(parties, port=port) as aife:
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
        events = await gw.context.store.events(message_id)
        ids = {e.detail["message_id"] for e in events if e.kind == "as2.sending"}
        assert ids == {aife.posts[-1]} == {message.sent_message_id}


async def test_negative_mdn_rejects_with_its_reason(parties: Parties, tmp_path: Path) -> None:
    refusal = TransferRefused(RefusalKind.WRONG_FORMAT, "not a UBL invoice")
    async with aife_side(parties, inbox=MemoryInbox(refuse=refusal)) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port)
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.REJECTED
            assert message.last_error is not None
            assert "negative MDN" in message.last_error
            assert "unexpected-processing-error" in message.last_error
            assert len(aife.posts) == 1  # final: never sent again


async def test_https_with_verified_server_and_our_client_certificate(
    parties: Parties, tmp_path: Path
) -> None:
    tls = server_tls(
        certificate=parties.aife_tls.cert_path,
        key=parties.aife_tls.key_path,
        password=None,
        client_auth="required",
        anchors_pem=parties.root.read_bytes(),
    )
    async with aife_side(parties, tls=tls) as aife:
        layout = Layout(
            tmp_path,
            parties,
            aife_port=aife.port,
            aife_host="localhost",
            qual={"aife_scheme": "https", "tls_client_certificate": True},
        )
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error


async def test_https_server_outside_our_trust_anchors_is_never_sent_to(
    parties: Parties, tmp_path: Path
) -> None:
    tls = server_tls(
        certificate=parties.stranger.cert_path,
        key=parties.stranger.key_path,
        password=None,
        client_auth="none",
        anchors_pem=b"",
    )
    async with aife_side(parties, tls=tls) as aife:
        layout = Layout(
            tmp_path,
            parties,
            aife_port=aife.port,
            aife_host="localhost",
            qual={"aife_scheme": "https"},
        )
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw)
            message = await settled(gw, message_id, S.DEAD, S.ACKNOWLEDGED)
            assert message.state is S.DEAD
            assert "TLS certificate verification failed" in (message.last_error or "")
            assert aife.posts == []  # the handshake failed before any byte of the message


async def test_missing_async_mdn_sends_again_with_the_same_message_id(
    parties: Parties, tmp_path: Path
) -> None:
    async with aife_side(parties, post_mdns=False) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port, qual={
            "mdn_mode": "async", "async_mdn_wait": 0.05, "mdn_timeout": 0.6})  # fmt: skip
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw)
            await settled(gw, message_id, S.SENT)
            while len(aife.posts) < 2:
                await asyncio.sleep(0.05)
            assert len(set(aife.posts)) == 1
            assert len(aife.inbox.files) == 1  # AIFE saw a repeat, not a second file
            events = await gw.context.store.events(message_id)
            assert any("no MDN within" in str(e.detail.get("reason")) for e in events)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_large_payload_both_framings(parties: Parties, tmp_path: Path, chunked: bool) -> None:
    payload = os.urandom(3 << 20)
    async with aife_side(parties) as aife:
        layout = Layout(tmp_path, parties, aife_port=aife.port, qual={"chunked": chunked})
        async with running_gateway(write_config(layout)) as gw:
            message_id = await deposit(gw, payload)
            message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
            assert message.state is S.ACKNOWLEDGED, message.last_error
            [(received, _)] = aife.inbox.files.values()
            assert received == payload
