"""AIFE's PeSIT side over real mutual TLS: only the connection's certificate gets a transfer in."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.simulator import flows
from gateway.simulator.pesitside import PesitSide
from gateway.simulator.samples import ubl_invoice
from protocols.errors import SendError
from protocols.pesit.endpoint import Journal, Peer, client_context
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.requester import PushResult
from protocols.pesit.endpoint.serving import pesit_date
from protocols.pesit.endpoint.spool import PushCheckpoint
from protocols.pesit.events import FileInfo
from protocols.pesit.settings import PesitSettings
from tests.simulator.world import Aife, aife_world, simulator_sandbox

DAY = dt.date(2026, 11, 27)
CREATED = pesit_date(dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator_sandbox(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
async def aife(sandbox: Path, tmp_path: Path) -> AsyncIterator[Aife]:
    aife = aife_world(sandbox, tmp_path, "b2g-prod-pesit")
    side = PesitSide(aife.config, aife.conn, aife.desk, state_dir=tmp_path)
    await side.start()
    yield aife
    await side.stop(timeout=2.0)
    aife.state.close()


async def _push(
    aife: Aife, tmp_path: Path, *, cert_of: str, code: str, journal: Journal | None = None
) -> PushResult:
    """Push as the gateway of b2g-prod-pesit does, presenting `cert_of`'s client certificate
    (PI 51 is the message's creation time, as the gateway sends it: the same on every try)."""
    pair = next(c for c in aife.config.connections if c.name == cert_of).certificates.client
    assert pair is not None
    anchors = aife.config.gateway.trust_anchors[0].read_text()
    aife_pem = aife.conn.certificates.partner[0].read_bytes()
    peer = Peer(
        connection="b2g-prod-pesit", host="127.0.0.1", port=aife.conn.network.aife.port,
        ssl_context=client_context(certificate=pair.certificate, key=pair.key, anchors=anchors),
        pins=frozenset({x509.load_pem_x509_certificate(aife_pem).public_bytes(Encoding.DER)}),
        settings=PesitSettings(requester_id="PAB2GPRD", server_id="CPRO", password=""),
        connect_timeout=5,
    )  # fmt: skip
    payload = tmp_path / "invoice.xml"
    payload.write_bytes(ubl_invoice("P-1", issued=DAY))

    async def started(transfer_id: int, restart: bool, points: int) -> None:
        del transfer_id, restart, points

    return await send_resumable(
        peer, payload, key="T1", size=payload.stat().st_size,
        journal=journal or Journal(tmp_path / "j"),
        describe=lambda tid, restart: FileInfo(file_name=code, transfer_id=tid, restart=restart,
                                               label=f"{code}_01M8DRV2CM18ZS8HHES9CX6R1S.xml",
                                               created=CREATED),
        started=started,
    )  # fmt: skip


async def test_another_connections_certificate_is_refused(aife: Aife, tmp_path: Path) -> None:
    with pytest.raises(SendError, match="PeSIT connection ended"):  # before any CONNECT answer
        await _push(aife, tmp_path, cert_of="g2b-prod-as2", code="FSO1100A")
    assert aife.state.deposits() == []


async def test_code_the_connection_does_not_subscribe_is_refused(
    aife: Aife, tmp_path: Path
) -> None:
    with pytest.raises(SendError, match="CREATE ended with 2/226 transfer_refused"):
        await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1150A")
    assert aife.state.deposits() == []


async def test_own_certificate_push_is_integrated(aife: Aife, tmp_path: Path) -> None:
    await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1100A")
    [deposit] = aife.state.deposits()
    assert (deposit.connection, deposit.code) == ("b2g-prod-pesit", "FSO1100A")
    assert deposit.file_name == "FSO1100A_01M8DRV2CM18ZS8HHES9CX6R1S.xml"
    assert deposit.result == flows.INTEGRATED
    assert deposit.invoices == ("P-1",)


async def test_a_restart_of_a_transfer_already_taken_is_not_a_second_deposit(
    aife: Aife, tmp_path: Path
) -> None:
    """Found by the e2e campaign (seed 20261127): the gateway is SIGKILLed after AIFE took
    the whole file and answered, before the outbox recorded it. The restarted gateway finds
    the transfer id its journal saved before CREATE and restarts that transfer (PI 15 = 1,
    same PI 13, PI 12, PI 51 and PI 37): Chorus Pro must recognise the file it already holds,
    not integrate it a second time (a second report, a second lifecycle for one invoice)."""
    journal = Journal(tmp_path / "j")
    first = await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1100A",
                        journal=journal)  # fmt: skip
    size = (tmp_path / "invoice.xml").stat().st_size
    journal.save("T1", PushCheckpoint(first.transfer_id, size))  # what the crash left behind
    again = await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1100A",
                        journal=journal)  # fmt: skip
    assert again.transfer_id == first.transfer_id
    deposits = aife.state.deposits()
    assert [d.invoices for d in deposits] == [("P-1",)], [d.peer_message_id for d in deposits]


async def test_a_resend_after_the_journal_was_cleared_is_not_a_second_deposit(
    aife: Aife, tmp_path: Path
) -> None:
    """The narrower window of the same crash: the push completed and `send_resumable` cleared
    its journal, then the gateway died before the outbox recorded the send. The next attempt
    finds no journal: it must still present the same transfer (PI 13 derived from the
    message, PI 51 its creation time, PI 12 its code) so that Chorus Pro recognises it."""
    await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1100A",
                journal=Journal(tmp_path / "j1"))  # fmt: skip
    await _push(aife, tmp_path, cert_of="b2g-prod-pesit", code="FSO1100A",
                journal=Journal(tmp_path / "j2"))  # fmt: skip
    deposits = aife.state.deposits()
    assert [d.invoices for d in deposits] == [("P-1",)], [d.peer_message_id for d in deposits]
