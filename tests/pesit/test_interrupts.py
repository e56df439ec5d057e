"""IDT, ABORT, a lost transport and junk: how transfers stop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.events import (
    Aborted,
    ArticleReceived,
    ConnectionClosed,
    CreateRequested,
    FileClosed,
    FileInfo,
    TransferInterrupted,
)
from protocols.pesit.fpdu import FpduType
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.state import State
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, PushApp, ServerApp
from tests.pesit.reach import reading, writing
from tests.pesit.runs import DATA, ended_cleanly, run_push

F = FpduType


@pytest.mark.parametrize("who", ["requester", "server"])
@pytest.mark.parametrize("make", [writing, reading], ids=["write", "read"])
def test_idt_stops_the_transfer_and_keeps_the_file_open(who: str, make: Callable[[], Pair]) -> None:
    pair = make()
    conn = pair.requester if who == "requester" else pair.server
    conn.interrupt(diagnostic=Diagnostic.VOLUNTARY_STOP, end_code=8, now=NOW)
    pair.pump()
    assert pair.requester.state is State.OF02
    assert pair.server.state is State.OF02
    for side in ("r", "s"):
        event = pair.events(side)[-1]
        assert isinstance(event, TransferInterrupted)
        assert event.end_code == 8
        assert event.diagnostic == Diagnostic.VOLUNTARY_STOP.code
        assert event.by_peer is ((side == "r") != (who == "requester"))
    pair.requester.close_file(now=NOW)
    pair.pump()
    assert isinstance(pair.events("r")[-1], FileClosed)


@pytest.mark.parametrize("make", [writing, reading], ids=["write", "read"])
def test_crossing_idts_the_requester_wins(make: Callable[[], Pair]) -> None:
    pair = make()
    pair.requester.interrupt(end_code=16, now=NOW)
    pair.server.interrupt(end_code=12, now=NOW)
    pair.pump()
    assert pair.requester.state is State.OF02
    assert pair.server.state is State.OF02
    assert [e.end_code for e in pair.events("r") if isinstance(e, TransferInterrupted)] == [16]
    assert [e.end_code for e in pair.events("s") if isinstance(e, TransferInterrupted)] == [16]


def test_data_crossing_an_idt_is_dropped_not_fatal() -> None:
    pair = writing()
    pair.requester.send_articles([b"late data"], now=NOW)
    pair.server.interrupt(now=NOW)
    pair.pump()
    assert pair.server.state is State.OF02
    assert pair.requester.state is State.OF02


def test_abort_reaches_the_peer_and_the_transport_closes_after_tr() -> None:
    pair = writing()
    pair.requester.abort(Diagnostic.CUT_BY_ADMINISTRATION, now=NOW)
    pair.pump()
    event = pair.events("s")[-1]
    assert isinstance(event, Aborted)
    assert event.by_peer
    assert event.diagnostic == Diagnostic.CUT_BY_ADMINISTRATION.code
    assert pair.server.next_deadline() is None
    assert pair.requester.next_deadline() == NOW + 30.0
    pair.requester.handle_timeout(NOW + 29.0)
    assert pair.requester.next_event() is None
    pair.requester.handle_timeout(NOW + 30.0)
    assert isinstance(pair.requester.next_event(), ConnectionClosed)
    pair.requester.receive_data(b"anything after the end", now=NOW)
    assert pair.requester.data_to_send() == b""


def test_peer_hanging_up_after_our_relconf_stops_tr() -> None:
    pair, _ = run_push()
    assert pair.server.next_deadline() == NOW + 30.0
    pair.server.receive_data(b"", now=NOW + 1)
    assert pair.server.next_deadline() is None
    assert pair.server.next_event() is None


def test_transport_lost_mid_transfer_is_an_abort_by_the_peer() -> None:
    pair = writing()
    pair.server.receive_data(b"", now=NOW)
    event = pair.server.next_event()
    assert isinstance(event, Aborted)
    assert event.by_peer
    assert pair.server.state is State.CLOSED
    assert pair.server.next_deadline() is None


def test_junk_after_a_valid_exchange_aborts_with_311() -> None:
    pair = writing()
    pair.requester.send_articles([b"abc"], now=NOW)
    stream = pair.requester.data_to_send() + bytes.fromhex("0006 0006 c0ff 0100")
    pair.server.receive_data(stream, now=NOW)
    kinds = [type(e).__name__ for e in iter(pair.server.next_event, None)]
    assert kinds == ["ArticleReceived", "Aborted"]
    assert pair.server.state is State.CLOSED


def test_partial_junk_just_waits() -> None:
    pair = writing()
    pair.requester.send_articles([b"abc"], now=NOW)
    pair.server.receive_data(pair.requester.data_to_send() + b"\x00", now=NOW)
    assert pair.server.state is State.TDE02B
    assert isinstance(pair.server.next_event(), ArticleReceived)
    assert pair.server.next_event() is None


def test_a_transfer_with_no_sync_points() -> None:
    settings = replace(SETTINGS, sync_interval_kb=0)
    pair, app = run_push(settings=settings)
    assert bytes(app.stores[FILE.transfer_id].data) == DATA
    assert F.SYN not in [f.kind for f in pair.sent("r")]
    assert pair.requester.sync_points.interval_kb == 0


def test_window_zero_means_sync_points_are_never_acknowledged() -> None:
    settings = replace(SETTINGS, sync_window=0)
    pair, app = run_push(settings=settings)
    assert bytes(app.stores[FILE.transfer_id].data) == DATA
    assert F.SYN in [f.kind for f in pair.sent("r")]
    assert F.ACK_SYN not in [f.kind for f in pair.sent("s")]


def test_empty_file() -> None:
    pair, app = run_push(b"")
    assert bytes(app.stores[FILE.transfer_id].data) == b""
    ended_cleanly(pair)


def test_file_info_travels_to_the_server() -> None:
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, SETTINGS)
    info = FileInfo(file_name="FSO1150A", transfer_id=77, created="260101120000", label="inv.xml")
    pair.on_requester = PushApp(pair.requester, b"x", file=info)
    pair.requester.connect(now=NOW)
    pair.pump()
    asked = pair.events("s")[1]
    assert isinstance(asked, CreateRequested)
    assert asked.file.file_name == "FSO1150A"
    assert asked.file.label == "inv.xml"
    assert asked.file.created == "260101120000"
