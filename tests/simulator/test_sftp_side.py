"""AIFE's SFTP side on a real loopback socket: only the connection's own key may log in."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config_rules import catalogue_for
from gateway.simulator import flows
from gateway.simulator.desk import Desk, Timing
from gateway.simulator.sftpside import SftpSide, known_hosts_path
from protocols.errors import SendError, TransientSendError
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import load_client_key, load_known_hosts
from protocols.sftp.sender import SftpSender
from tests.simulator.world import Aife, aife_world, simulator_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator_sandbox(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
async def aife(sandbox: Path, tmp_path: Path) -> AsyncIterator[Aife]:
    aife = aife_world(sandbox, tmp_path, "g2b-qual-sftp")
    side = SftpSide(aife.config, aife.conn, aife.desk)
    await side.start()
    yield aife
    await side.stop(timeout=2.0)
    aife.state.close()


async def _upload(aife: Aife, tmp_path: Path, *, key_of: str, code: str) -> None:
    """Push one file as the gateway does, logging in with connection `key_of`'s client key."""
    pair = next(c for c in aife.config.connections if c.name == key_of).certificates.client
    assert pair is not None
    params = ClientParams(
        connection="g2b-qual-sftp", host="127.0.0.1", port=aife.conn.network.aife.port,
        username="PA-G2B-QUAL", client_key=load_client_key(pair.key),
        pins=tuple(load_known_hosts(known_hosts_path(aife.conn))),
        ciphers=("aes128-gcm@openssh.com",), connect_timeout=10,
        remote_dirs={code: f"/out/{code}"},
    )  # fmt: skip
    payload = tmp_path / "status.xml"
    payload.write_bytes(b"<StatutFactureG2B><Statut>PRISE_EN_CHARGE</Statut></StatutFactureG2B>")
    sender = SftpSender(params)
    try:
        await sender.send_file(payload, file_name=f"{code}_01M8DRRBEF82FPCSW4ECN74EG7.xml",
                               interface_code=code)  # fmt: skip
    finally:
        await sender.close()


async def test_login_with_another_connections_key_is_refused(aife: Aife, tmp_path: Path) -> None:
    with pytest.raises(TransientSendError, match="refused our key"):
        await _upload(aife, tmp_path, key_of="g2b-prod-as2", code="XGB0002A")
    assert aife.state.deposits() == []


async def test_code_the_connection_does_not_subscribe_is_refused(
    aife: Aife, tmp_path: Path
) -> None:
    with pytest.raises(SendError, match="refused"):
        await _upload(aife, tmp_path, key_of="g2b-qual-sftp", code="FSO1100A")
    assert aife.state.deposits() == []


async def test_own_key_deposit_is_integrated_and_answered(aife: Aife, tmp_path: Path) -> None:
    await _upload(aife, tmp_path, key_of="g2b-qual-sftp", code="XGB0002A")
    [deposit] = aife.state.deposits()
    assert (deposit.connection, deposit.code) == ("g2b-qual-sftp", "XGB0002A")
    assert deposit.result == flows.INTEGRATED
    [report] = aife.state.due(now=dt.datetime.now(dt.UTC).timestamp() + 60)
    assert (report.code, report.connection) == ("XGB0003A", "g2b-qual-sftp")


async def test_delivery_waits_for_the_gateways_host_key(aife: Aife) -> None:
    desk_side = SftpSide(aife.config, aife.conn, _unused_desk(aife))
    with pytest.raises(TransientSendError, match="host key"):
        await desk_side.deliver("SIM1", "XGB0001A_SIM1.xml", b"<Invoice/>")


def _unused_desk(aife: Aife) -> Desk:
    return Desk(config=aife.config, catalogue=catalogue_for(aife.config), state=aife.state,
                folder=Path("/nonexistent"), timing=Timing(),
                clock=lambda: dt.datetime.now(dt.UTC), draw=random.Random(2))  # fmt: skip
