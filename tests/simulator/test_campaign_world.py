"""The campaign's world: B2G over SFTP beside the sandbox, and Chorus Pro going down and back.

The configuration must stay one the gateway accepts (routing never ambiguous, one certificate
per connection); the simulator must play B2G over SFTP like the other protocols (report, then
the lifecycle code the sheet subscribes to) and recognise a file it already took; an outage
must really close every listener, then open them again on the same addresses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.correlation_xml import facts_from_bytes
from gateway.simulator import flows
from gateway.simulator.campaign import SFTP_B2G, PortPicker, build, with_b2g_sftp
from gateway.simulator.desk import Desk, Timing
from gateway.simulator.hostile import impersonate
from gateway.simulator.runner import Options, Simulator
from gateway.simulator.samples import ubl_invoice
from gateway.simulator.state import SimulatorState
from protocols.ports import Incoming
from tests.sandbox import SANDBOX

T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
NAME = "FSO1150A_01M8DRV2CM18ZS8HHES9CX6R1S.xml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("campaign"), source=SANDBOX, now=dt.datetime.now(dt.UTC))


@pytest.fixture
def config(world: Path) -> Config:
    return load(world, env={"RACCORD_ADMIN_PORT": "0"})  # every rule, certificates read


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SimulatorState]:
    opened = SimulatorState(tmp_path / "sim.sqlite3")
    yield opened
    opened.close()


def _sftp(name: str = NAME) -> Incoming:
    return Incoming(protocol="sftp", direction="reception", source="PA-B2G-QUAL-SFTP",
                    interface_code="FSO1150A", connection=SFTP_B2G, file_name=name)  # fmt: skip


def test_the_sftp_sheet_is_routable_and_the_backoff_capped(config: Config) -> None:
    sheet = config.connection(SFTP_B2G)
    assert sheet is not None
    assert (sheet.circuit.value, sheet.protocol.value, sheet.environment.value) == (
        "b2g", "sftp", "qual",
    )  # fmt: skip
    assert sheet.subscriptions.emission == ("FSO1150A",)
    others = [c for c in config.connections if c.name != SFTP_B2G and c.environment.value == "qual"]
    assert all("FSO1150A" not in c.subscriptions.emission for c in others)
    assert all(c.retry.max_delay <= 2.0 and c.retry.max_attempts >= 1000
               for c in config.connections)  # fmt: skip
    assert config.intake.poll_interval <= 0.5


def test_every_port_is_a_fresh_one() -> None:
    ports = iter(range(40000, 40100))
    text = with_b2g_sftp(SANDBOX.read_text(), free_port=lambda: next(ports))
    assert "port: 185" not in text
    assert text.count("retry: {max_attempts: 1000") == 5


def test_ports_are_never_given_twice_and_stay_below_the_ephemeral_range() -> None:
    pick = PortPicker(seed=7)
    ports = [pick() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(20000 <= p < 32768 for p in ports)


async def test_b2g_over_sftp_gets_its_report_then_the_cpp_lifecycle(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = Desk(config=config, catalogue=catalogue_for(config), state=state,
                folder=tmp_path / "received", timing=Timing(report_delay=1, status_interval=1,
                reject_share=0, suspend_share=0, happy_path=("DEPOSEE", "MISE_EN_PAIEMENT")),
                clock=lambda: T0, draw=random.Random(1))  # fmt: skip
    payload = ubl_invoice("S-1", issued=T0.date())
    first = await desk.accept(payload, _sftp())
    again = await desk.accept(payload, _sftp())  # a new session, the same file name
    assert again.duplicate
    assert again.message_id == first.message_id
    [deposit] = state.deposits()
    assert deposit.peer_message_id == NAME
    owed = state.due(now=T0.timestamp() + 100)
    assert [(f.code, f.kind) for f in owed] == [("CSO1150A", "report"), ("FEN1201A", "status"),
                                                ("FEN1201A", "status")]  # fmt: skip
    assert [facts_from_bytes(f.body).records[0].status for f in owed[1:]] == [
        "DEPOSEE", "MISE_EN_PAIEMENT",
    ]  # fmt: skip


def test_a_chain_has_at_least_two_statuses() -> None:
    with pytest.raises(ValueError, match="at least two"):
        Timing(happy_path=("DEPOSEE",))
    with pytest.raises(ValueError, match="at least two"):
        flows.plan_lifecycle(random.Random(1), reject_share=0, suspend_share=0, happy_path=())


def _listening(port: int) -> bool:
    """Bound by someone (a connecting probe would leave half-open TLS handshakes behind)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


async def test_an_outage_closes_every_listener_then_opens_them_again(
    config: Config, tmp_path: Path
) -> None:
    options = Options(state_dir=tmp_path / "sim", feed=False, summary_every=0, tick=0.05)
    sim = Simulator(config, options)
    task = asyncio.create_task(sim.run())
    ports = [c.network.aife.port for c in config.connections]
    try:
        await asyncio.wait_for(sim.ready.wait(), 20)
        assert all(_listening(p) for p in ports)
        sim.request_outage(1.0)
        while sim.ready.is_set():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert sim.down
        assert not any(_listening(p) for p in ports)
        await asyncio.wait_for(sim.ready.wait(), 20)
        assert all(_listening(p) for p in ports)
        [(began, back)] = sim.outages
        assert (back - began).total_seconds() >= 1.0
        with pytest.raises(ValueError, match="positive"):
            sim.request_outage(0)
    finally:
        sim.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


async def test_impersonating_needs_another_connection(config: Config) -> None:
    with pytest.raises(ValueError, match="another connection"):
        await impersonate(config, target=SFTP_B2G, wearing=SFTP_B2G, flow_id="SIM1",
                          file_name="FEN1201A_SIM1.xml", body=b"<x/>")  # fmt: skip


async def test_a_hostile_peer_finding_nobody_is_reported_refused(config: Config) -> None:
    """No gateway listens in this test: the attempt fails, reported (never raised)."""
    done = await impersonate(
        config, target="b2g-qual-as2", wearing="g2b-prod-as2", flow_id="SIM1",
        file_name="FEN1200A_SIM1.xml", body=b"<x/>",
    )  # fmt: skip
    assert done.refused
    assert done.protocol == "as2"
    assert done.reason
