"""The desk judges deposits as Chorus Pro does; hostile payloads get a reason, never a crash."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.correlation_xml import facts_from_bytes
from gateway.interfaces import PayloadFormat
from gateway.simulator import flows
from gateway.simulator.desk import Desk, Timing, judge
from gateway.simulator.samples import cii_invoice, facturx_invoice, ubl_invoice
from gateway.simulator.state import SimulatorState
from protocols.ports import Incoming, RefusalKind, TransferRefused
from tests.sandbox import SANDBOX

DAY = dt.date(2026, 11, 27)
T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def config() -> Config:
    return load(SANDBOX, check_files=False, env={"RACCORD_ADMIN_PORT": "0"})


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SimulatorState]:
    opened = SimulatorState(tmp_path / "sim.sqlite3")
    yield opened
    opened.close()


def _desk(config: Config, state: SimulatorState, tmp_path: Path, **timing: float) -> Desk:
    return Desk(config=config, catalogue=catalogue_for(config), state=state,
                folder=tmp_path / "received", timing=Timing(**timing),  # type: ignore[arg-type]
                clock=lambda: T0, draw=random.Random(3))  # fmt: skip


def _incoming(code: str, *, connection: str = "b2g-qual-as2", peer: str = "<m1@x>") -> Incoming:
    return Incoming(protocol="as2", direction="reception", source=connection,
                    interface_code=code, connection=connection, peer_message_id=peer,
                    file_name=f"{code}_01M8DREM9JZJGWX475QMFRXYG5.xml")  # fmt: skip


def test_judge_rejects_malformed_xml_with_a_reason() -> None:
    result, reason, _ = judge(b"<Invoice><unclosed></Invoice>", PayloadFormat.ANY)
    assert result == flows.REJECTED
    assert reason
    assert "mal formé" in reason


def test_judge_rejects_a_format_that_does_not_match_the_code() -> None:
    result, reason, _ = judge(cii_invoice("X", issued=DAY), PayloadFormat.UBL_INVOICE)
    assert result == flows.REJECTED
    assert reason
    assert "cii-16b" in reason
    assert "ubl-invoice" in reason
    result, reason, _ = judge(ubl_invoice("X", issued=DAY), PayloadFormat.FACTURX)
    assert result == flows.REJECTED
    assert reason


def test_judge_refuses_a_billion_laughs_without_expanding_it() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">]><a>&a;&a;</a>'
    result, reason, _ = judge(bomb, PayloadFormat.ANY)
    assert result == flows.REJECTED
    assert reason
    assert "DOCTYPE" in reason


@pytest.mark.parametrize("junk", [b"", b"\x00\xff" * 50, b"PK\x03\x04zip", b"%PDF-1.4 truncated"])
def test_judge_never_crashes_on_junk(junk: bytes) -> None:
    result, reason, invoices = judge(junk, PayloadFormat.UBL_INVOICE)
    assert result == flows.REJECTED
    assert reason
    assert invoices == ()


def test_judge_integrates_the_samples_with_their_numbers() -> None:
    assert judge(ubl_invoice("U-1", issued=DAY), PayloadFormat.UBL_INVOICE) == (
        flows.INTEGRATED, None, ("U-1",),
    )  # fmt: skip
    assert judge(facturx_invoice("F-1", issued=DAY), PayloadFormat.FACTURX)[0] == flows.INTEGRATED


async def test_unsubscribed_code_is_refused_at_the_transfer(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = _desk(config, state, tmp_path)
    with pytest.raises(TransferRefused) as refused:
        await desk.accept(b"<x/>", _incoming("FSO1106A", connection="g2b-prod-as2"))
    assert refused.value.kind is RefusalKind.NOT_SUBSCRIBED
    with pytest.raises(TransferRefused) as unknown:
        await desk.accept(b"<x/>", _incoming("FSO1100A", connection="nobody"))
    assert unknown.value.kind is RefusalKind.INVALID
    assert state.deposits() == []


async def test_oversize_stream_is_refused_before_it_is_kept(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    small = config.model_copy(update={"connections": tuple(
        c.model_copy(update={"max_size": 100}) for c in config.connections
    )})  # fmt: skip
    desk = _desk(small, state, tmp_path)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 50

    with pytest.raises(TransferRefused) as refused:
        await desk.accept(chunks(), _incoming("FSO1100A"))
    assert refused.value.kind is RefusalKind.TOO_LARGE
    assert not (tmp_path / "received").exists()


async def test_rejected_deposit_gets_a_report_with_its_reason_and_no_lifecycle(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = _desk(config, state, tmp_path, report_delay=2.0)
    accepted = await desk.accept(cii_invoice("C-1", issued=DAY), _incoming("FSO1100A"))
    [deposit] = state.deposits()
    assert deposit.flow_id == accepted.message_id
    assert deposit.result == flows.REJECTED
    assert state.due(now=T0.timestamp() + 1.9) == []
    [report] = state.due(now=T0.timestamp() + 2.0)
    assert report.code == "CSO1100A"
    assert report.kind == "report"
    facts = facts_from_bytes(report.body)
    assert facts.records[0].status == flows.REJECTED
    assert "cii-16b" in (facts.records[0].reason or "")
    assert state.due(now=T0.timestamp() + 3600) == [report]


async def test_integrated_deposit_gets_report_then_statuses_over_time(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = _desk(config, state, tmp_path, report_delay=1.0, status_interval=5.0,
                 reject_share=0.0, suspend_share=0.0)  # fmt: skip
    payload = ubl_invoice("U-7", issued=DAY)
    first = await desk.accept(payload, _incoming("FSO1100A"))
    again = await desk.accept(payload, _incoming("FSO1100A"))
    assert again.duplicate
    assert again.message_id == first.message_id
    assert not first.duplicate
    owed = state.due(now=T0.timestamp() + 1000)
    assert [(f.code, f.kind) for f in owed] == [("CSO1100A", "report")] + [
        ("FEN1200A", "status")
    ] * len(flows.HAPPY_PATH)
    statuses = [facts_from_bytes(f.body).records[0] for f in owed[1:]]
    assert [s.status for s in statuses] == list(flows.HAPPY_PATH)
    assert {s.invoice for s in statuses} == {"U-7"}
    assert len(state.due(now=T0.timestamp() + 1.0 + 5.0 * 2)) == 3
    kept = list((tmp_path / "received" / "b2g-qual-as2").iterdir())
    assert [p.read_bytes() for p in kept] == [payload]


async def test_g2b_status_is_answered_with_the_g2b_report_only(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = _desk(config, state, tmp_path)
    await desk.accept(b"<Statut/>", _incoming("XGB0002A", connection="g2b-prod-as2"))
    owed = state.due(now=T0.timestamp() + 1000)
    assert [(f.code, f.kind, f.connection) for f in owed] == [
        ("XGB0003A", "report", "g2b-prod-as2")
    ]


def test_g2b_invoices_are_issued_on_g2b_connections_only(
    config: Config, state: SimulatorState, tmp_path: Path
) -> None:
    desk = _desk(config, state, tmp_path)
    by_name = {c.name: c for c in config.connections}
    assert desk.issue_g2b_invoice(by_name["g2b-prod-as2"], "G-1")
    assert not desk.issue_g2b_invoice(by_name["b2g-qual-as2"], "G-2")
    [flow] = state.due(now=T0.timestamp())
    assert flow.code == "XGB0001A"
    assert facts_from_bytes(flow.body).invoices == ("G-1",)


def test_state_survives_a_restart_and_failed_flows_wait(tmp_path: Path) -> None:
    """What is owed is on disk: a new process finds it; a failure postpones, never drops."""
    first = SimulatorState(tmp_path / "sim.sqlite3")
    first.owe("g2b-prod-as2", [("XGB0001A", "XGB0001A_SIM1.xml", "invoice", "G-1", b"<x/>", 10.0)])
    [flow] = first.due(now=10.0)
    first.mark_failed(flow.id, reason="transport: refused", retry_at=20.0)
    first.close()
    again = SimulatorState(tmp_path / "sim.sqlite3")
    try:
        assert again.due(now=19.9) == []
        [retry] = again.due(now=20.0)
        assert retry.attempts == 1
        assert again.issued_invoices() == []
        again.mark_sent(retry.id, now=21.0)
        assert again.issued_invoices() == [("g2b-prod-as2", "G-1", "XGB0001A_SIM1.xml")]
        again.mark_answered("G-1")
        again.mark_answered("G-1")
        assert again.issued_invoices(unanswered=True) == []
        assert again.counts() == {("g2b-prod-as2", "invoice"): (1, 0)}
    finally:
        again.close()


def test_a_failed_flow_holds_back_the_later_ones_of_its_connection(tmp_path: Path) -> None:
    state = SimulatorState(tmp_path / "sim.sqlite3")
    try:
        state.owe("a", [("CSO1100A", "CSO1100A_SIM1.xml", "report", "D", b"1", 1.0),
                        ("FEN1200A", "FEN1200A_SIM2.xml", "status", "D", b"2", 2.0),
                        ("FEN1200A", "FEN1200A_SIM3.xml", "status", "D", b"3", 50.0)])  # fmt: skip
        state.owe("b", [("CSO1106A", "CSO1106A_SIM4.xml", "report", "E", b"4", 2.0)])
        report = state.due(now=1.0)[0]
        state.mark_failed(report.id, reason="down", retry_at=10.0)
        assert [f.file_name for f in state.due(now=9.9)] == ["CSO1106A_SIM4.xml"]
        assert [f.file_name for f in state.due(now=10.0) if f.connection == "a"] == [
            "CSO1100A_SIM1.xml", "FEN1200A_SIM2.xml",
        ]  # fmt: skip
    finally:
        state.close()
