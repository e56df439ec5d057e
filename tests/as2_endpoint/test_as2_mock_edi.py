"""Transport and MDN behaviour against mock-edi, a plain-AS2 trading partner nobody here wrote.

mock-edi speaks AS2 without S/MIME, so the connection is configured for unsigned exchanges
(no signature, no encryption, no compression, unsigned MDN accepted). Its failure injection
covers what our own stand-in does not: HTTP 500s, no MDN at all, its own idea of an MDN.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mockedi.testing import Mock

from gateway.model import MessageState
from tests.as2_endpoint.harness import Layout, Parties, running_gateway, write_config
from tests.as2_endpoint.test_as2_sender import deposit, settled

pytestmark = pytest.mark.interop
S = MessageState
PLAIN = {
    "as2_id": "ACME",
    "partner_as2_id": "MOCKEDI",
    "sign": False,
    "encrypt": False,
    "compress": False,
    "signed_mdn": False,
    "require_signature": False,
    "require_encryption": False,
}


def order(control: int = 101) -> bytes:
    """An X12 850 from ACME that mock-edi accepts (its seeded partner)."""
    segments = [
        f"ISA*00*          *00*          *ZZ*ACME           *ZZ*MOCKEDI        *260924*1030"
        f"*U*00401*{control:09d}*0*T*>~",
        f"GS*PO*ACME*MOCKEDI*20260924*1030*{control}*X*004010~",
        "ST*850*0001~",
        "BEG*00*SA*4500009999**20260924~",
        "PO1*1*10*EA*12.50**VP*WIDGET-001~",
        "CTT*1~",
        "SE*5*0001~",
        f"GE*1*{control}~",
        f"IEA*1*{control:09d}~",
    ]
    return ("\n".join(segments) + "\n").encode("ascii")


@pytest.fixture
def mock_edi(request: pytest.FixtureRequest) -> Iterator[Mock]:
    options: dict[str, Any] = getattr(request, "param", {})
    mock = Mock.start(**options)
    try:
        yield mock
    finally:
        mock.close()


def _layout(tmp_path: Path, parties: Parties, mock: Mock, **settings: Any) -> Layout:
    port = int(mock.base.rsplit(":", 1)[1])
    return Layout(tmp_path, parties, aife_port=port, qual={**PLAIN, **settings})


async def _sent_ids(gw: Any, message_id: str) -> list[str]:
    events = await gw.context.store.events(message_id)
    return [str(e.detail["message_id"]) for e in events if e.kind == "as2.sending"]


async def test_sync_mdn_from_mock_edi_acknowledges(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    async with running_gateway(write_config(_layout(tmp_path, parties, mock_edi))) as gw:
        message_id = await deposit(gw, order())
        message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
        assert message.state is S.ACKNOWLEDGED, message.last_error
        mdns = (await asyncio.to_thread(mock_edi.get, "/_mock/mdns")).body
        text = str(mdns)
        assert message.sent_message_id is not None
        assert message.sent_message_id in text


async def test_async_mdn_from_mock_edi_acknowledges(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    layout = _layout(tmp_path, parties, mock_edi, mdn_mode="async")
    async with running_gateway(write_config(layout)) as gw:
        message_id = await deposit(gw, order())
        message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
        assert message.state is S.ACKNOWLEDGED, message.last_error


async def test_negative_mdn_from_mock_edi_rejects(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    async with running_gateway(write_config(_layout(tmp_path, parties, mock_edi))) as gw:
        message_id = await deposit(gw, b"this is not an interchange\n")
        message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
        assert message.state is S.REJECTED
        assert "negative MDN" in (message.last_error or "")
        assert "unexpected-processing-error" in (message.last_error or "").lower()


def _seed_failing_once(rate: float) -> int:
    """A seed whose first draw injects a failure and whose second does not."""
    for seed in range(1000):
        draws = random.Random(seed)
        if draws.random() < rate <= draws.random():
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize(
    "mock_edi", [{"error_rate": 0.5, "seed_value": _seed_failing_once(0.5)}], indirect=True
)
async def test_injected_500_is_retried_with_the_same_message_id(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    async with running_gateway(write_config(_layout(tmp_path, parties, mock_edi))) as gw:
        message_id = await deposit(gw, order())
        message = await settled(gw, message_id, S.ACKNOWLEDGED, S.REJECTED, S.DEAD)
        assert message.state is S.ACKNOWLEDGED, message.last_error
        ids = await _sent_ids(gw, message_id)
        assert len(ids) == 2
        assert ids[0] == ids[1] == message.sent_message_id
        events = await gw.context.store.events(message_id)
        assert any("HTTP 500" in str(e.detail.get("reason")) for e in events)


@pytest.mark.parametrize("mock_edi", [{"mdn": False}], indirect=True)
async def test_partner_that_never_answers_with_an_mdn_is_retried_then_dead(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    async with running_gateway(write_config(_layout(tmp_path, parties, mock_edi))) as gw:
        message_id = await deposit(gw, order())
        message = await settled(gw, message_id, S.DEAD, S.ACKNOWLEDGED, S.REJECTED)
        assert message.state is S.DEAD
        assert "without the synchronous MDN" in (message.last_error or "")
        ids = await _sent_ids(gw, message_id)
        assert len(ids) == 3
        assert len(set(ids)) == 1


async def test_mock_edi_reads_our_mdn_refusing_its_unnamed_document(
    parties: Parties, tmp_path: Path, mock_edi: Mock
) -> None:
    """mock-edi delivers its 997 to us; no interface code travels with it: refused, in an MDN
    that an independent parser reads."""
    layout = _layout(tmp_path, parties, mock_edi)
    async with running_gateway(write_config(layout)) as gw:
        await asyncio.to_thread(mock_edi.partner, "ACME", as2_url=f"{layout.base_url}/as2")
        summary = await asyncio.to_thread(mock_edi.send, order(202).decode())
        assert summary["accepted"], summary
        await asyncio.to_thread(mock_edi.advance, everything=True)
        outbox: list[dict[str, Any]] = []
        for _ in range(200):
            outbox = await asyncio.to_thread(mock_edi.outbox)
            if any(item.get("status") not in ("pending", "ready") for item in outbox):
                break
            await asyncio.sleep(0.05)
        notes = " ".join(str(item.get("note") or item.get("last_error") or "") for item in outbox)
        assert "unexpected-processing-error" in notes.lower(), outbox
        assert await gw.context.store.list_messages() == []
