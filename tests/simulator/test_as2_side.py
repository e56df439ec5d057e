"""AIFE's AS2 side on a real loopback socket, with the sandbox's real certificates (HTTPS)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import Config
from gateway.offload import run_blocking
from gateway.simulator import flows
from gateway.simulator.as2side import As2Side, load_aife_identity
from gateway.simulator.samples import ubl_invoice
from protocols.as2.cms import SigningIdentity
from protocols.as2.params import As2SendParams
from protocols.as2.receipts import MdnOutcome
from protocols.as2.sender import As2Client, MdnWaiters, Outbound, client_tls, message_id_for
from tests.simulator.world import Aife as World
from tests.simulator.world import aife_world, simulator_sandbox

DAY = dt.date(2026, 11, 27)


@dataclasses.dataclass
class Aife(World):
    session: aiohttp.ClientSession


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator_sandbox(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
async def aife(sandbox: Path, tmp_path: Path) -> AsyncIterator[Aife]:
    world = aife_world(sandbox, tmp_path, "b2g-qual-as2")
    identity = await run_blocking(load_aife_identity, world.conn)
    side = As2Side(world.config, world.conn, identity, world.desk)
    await side.start()
    async with aiohttp.ClientSession() as session:
        yield Aife(world.config, world.conn, world.state, world.desk, session)
    await side.stop(timeout=2.0)
    world.state.close()


def _signer(config: Config, name: str) -> SigningIdentity:
    """The client key and certificate of connection `name` (as the gateway signs with it)."""
    pair = next(c for c in config.connections if c.name == name).certificates.client
    assert pair is not None
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return SigningIdentity(key, x509.load_pem_x509_certificate(pair.certificate.read_bytes()))


async def _send(aife: Aife, code: str, *, signed_by: str) -> tuple[MdnOutcome, str | None]:
    """POST as the gateway of b2g-qual-as2 would, signing with `signed_by`'s certificate."""
    identity = load_aife_identity(aife.conn)
    name = f"{code}_01M8DREM9JZJGWX475QMFRXYG5.xml"
    params = As2SendParams(as2_from="PA-B2G-QUAL", as2_to="AIFE-QUAL",
                           signing=_signer(aife.config, signed_by),
                           encryption_certificate=identity.certificate, file_name=name,
                           subject=name, content_type="application/xml")  # fmt: skip
    anchors = aife.config.gateway.trust_anchors[0].read_bytes()
    out = Outbound(connection="b2g-qual-as2", params=params,
                   url=f"https://127.0.0.1:{aife.conn.network.aife.port}/as2",
                   partner_certificates=(identity.certificate,), signed_mdn_required=True,
                   timeout=30, async_wait=5,
                   tls=client_tls(anchors_pem=anchors, verify_hostname=False))  # fmt: skip
    client = As2Client(session=aife.session, offload=run_blocking,
                       clock=lambda: dt.datetime.now(dt.UTC), waiters=MdnWaiters())  # fmt: skip
    built = await client.build(ubl_invoice("U-1", issued=DAY), out,
                               message_id=message_id_for("T1", domain="test.invalid"))  # fmt: skip
    posted = await client.send(built, out)
    assert posted.outcome is not None
    return posted.outcome, posted.outcome.verdict(expected_mic=built.mic, signature_required=True)


async def test_message_signed_with_another_connections_certificate_is_refused(
    aife: Aife,
) -> None:
    outcome, reason = await _send(aife, "FSO1100A", signed_by="g2b-prod-as2")
    assert reason is not None
    assert "negative MDN" in reason
    assert "authentication-failed" in outcome.disposition or "error" in outcome.disposition
    assert outcome.signed  # AIFE signs even its refusals
    assert aife.state.deposits() == []


async def test_code_the_connection_does_not_subscribe_is_refused(aife: Aife) -> None:
    _outcome, reason = await _send(aife, "FSO1150A", signed_by="b2g-qual-as2")
    assert reason is not None
    assert "negative MDN" in reason
    assert aife.state.deposits() == []


async def test_the_connections_own_certificate_is_accepted_and_integrated(aife: Aife) -> None:
    outcome, reason = await _send(aife, "FSO1100A", signed_by="b2g-qual-as2")
    assert reason is None, outcome.disposition
    [deposit] = aife.state.deposits()
    assert deposit.code == "FSO1100A"
    assert deposit.result == flows.INTEGRATED
    assert deposit.invoices == ("U-1",)
    again, _ = await _send(aife, "FSO1100A", signed_by="b2g-qual-as2")  # new Message-ID
    assert again.disposition == outcome.disposition
