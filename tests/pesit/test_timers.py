"""The timers of pesit.md §10 as deadlines: nothing sleeps, `now` is always given."""

from __future__ import annotations

from dataclasses import replace

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.events import Aborted, ConnectionClosed
from protocols.pesit.fpdu import Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, frame
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PreConnection, Timers
from protocols.pesit.state import State
from tests.pesit.harness import FILE, NOW, SETTINGS, fpdus_of
from tests.pesit.reach import connected, selected, writing

F = FpduType
TIMERS = Timers(tp=10.0, td=300.0, tc=20.0, tr=5.0)


def _expires_with_abort(conn: PesitServer | PesitRequester, diagnostic: Diagnostic) -> None:
    conn.data_to_send()
    deadline = conn.next_deadline()
    assert deadline is not None
    conn.handle_timeout(deadline - 0.001)
    assert conn.next_event() is None
    conn.handle_timeout(deadline)
    event = conn.next_event()
    assert isinstance(event, Aborted)
    assert event.diagnostic == diagnostic.code
    assert not event.by_peer
    answer = fpdus_of(conn.data_to_send())
    assert [f.kind for f in answer] == [F.ABORT]
    assert answer[0].params.diagnostic() == diagnostic.code
    assert conn.state is State.CLOSED
    assert conn.next_deadline() == deadline + 30.0  # then Tr for the peer to hang up


def test_tc_closes_a_transport_that_never_sends_connect() -> None:
    server = PesitServer(now=NOW, timers=TIMERS)
    assert server.next_deadline() == NOW + 20.0
    server.receive_data(b"\x00\x2f", now=NOW + 5)  # a slow start does not buy more time
    assert server.next_deadline() == NOW + 20.0
    server.handle_timeout(NOW + 20.0)
    assert isinstance(server.next_event(), ConnectionClosed)
    assert server.data_to_send() == b""
    assert server.state is State.CLOSED
    assert server.next_deadline() is None


def test_td_ends_an_idle_connection_with_313() -> None:
    pair = connected()
    assert pair.server.state is State.CN03
    assert pair.server.next_deadline() == NOW + 300.0
    _expires_with_abort(pair.server, Diagnostic.IDLE_TIMEOUT)


def test_tp_watches_an_unanswered_request() -> None:
    pair = connected()
    assert pair.requester.next_deadline() is None  # connected and idle: the requester's turn
    pair.requester.create(FILE, now=NOW + 3)
    assert pair.requester.next_deadline() == NOW + 33.0
    _expires_with_abort(pair.requester, Diagnostic.TIMER_EXPIRED)


def test_tp_on_the_server_between_requests_of_a_file() -> None:
    pair = selected()
    assert pair.server.state is State.SF03
    assert pair.server.next_deadline() == NOW + 30.0
    _expires_with_abort(pair.server, Diagnostic.TIMER_EXPIRED)


def test_tp_is_reset_by_each_fpdu_received() -> None:
    pair = writing()
    dtf = frame(encode_fpdu(Fpdu(F.DTF, 1, data=(b"abc",))), Framing.PREFIXED)
    pair.server.receive_data(dtf, now=NOW + 25)
    assert pair.server.next_deadline() == NOW + 55.0


def test_a_sender_with_room_in_its_window_has_no_deadline() -> None:
    pair = writing()
    assert pair.requester.next_deadline() is None
    pair.requester.send_articles([b"x" * 1000] * 5, now=NOW)
    assert pair.requester.next_deadline() is None


def test_a_requester_waiting_for_ack0_is_watched() -> None:
    requester = PesitRequester(replace(SETTINGS, preconnection=PreConnection("A", "B")))
    requester.connect(now=NOW)
    assert requester.next_deadline() == NOW + 30.0


def test_tr_after_rconnect_and_relconf() -> None:
    server = PesitServer(now=NOW, timers=TIMERS, framing=Framing.PREFIXED)
    server.receive_data(frame(encode_fpdu(Fpdu(F.CONNECT, 0, 1)), Framing.PREFIXED), now=NOW)
    assert server.state is State.CLOSED  # no version: RCONNECT
    assert server.next_deadline() == NOW + 5.0
    server.handle_timeout(NOW + 5.0)
    closed = [e for e in iter(server.next_event, None) if isinstance(e, ConnectionClosed)]
    assert closed == [ConnectionClosed("Tr: transport close expired")]


def test_handle_timeout_without_deadline_does_nothing() -> None:
    requester = PesitRequester(SETTINGS)
    requester.handle_timeout(NOW + 1e9)
    assert requester.next_event() is None
    assert requester.state is State.CN01
