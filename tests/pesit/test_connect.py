"""CONNECT and the pre-connection: what is refused, what is negotiated."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.events import (
    Aborted,
    ConnectionClosed,
    ConnectionRefused,
    ConnectionRequested,
    PreConnectionRequested,
)
from protocols.pesit.fpdu import Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, encode_preconnection, frame
from protocols.pesit.negotiation import connect_params, read_connect
from protocols.pesit.pi import PI, Params, SyncPoints, Value
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PesitSettings, PreConnection
from protocols.pesit.state import State
from tests.pesit.harness import NOW, SETTINGS, Pair, ServerApp, feed, fpdus_of

F = FpduType


def connect_fpdu(**changes: Value | None) -> Fpdu:
    """Our own CONNECT with some parameters changed (None: removed)."""
    params: dict[int, Value] = dict(connect_params(SETTINGS).units)
    for name, value in changes.items():
        code = PI[name.upper()]
        if value is None:
            params.pop(code)
        else:
            params[code] = value
    return Fpdu(F.CONNECT, 0, 1, Params(tuple(params.items())))


# -- CONNECT --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "diagnostic"),
    [
        ({"version": 1}, Diagnostic.VERSION_NOT_SUPPORTED),
        ({"version": None}, Diagnostic.VERSION_NOT_SUPPORTED),
        ({"crc": 1}, Diagnostic.NEGOTIATION_FAILURE),
        ({"requester_id": None}, Diagnostic.PARAMETER_ERROR),
    ],
    ids=["version-d", "no-version", "crc", "no-requester-id"],
)
def test_unacceptable_connect_gets_rconnect(
    changes: dict[str, Value | None], diagnostic: Diagnostic
) -> None:
    server = PesitServer(now=NOW, framing=Framing.PREFIXED)
    events, answer = feed(server, connect_fpdu(**changes))
    assert [f.kind for f in answer] == [F.RCONNECT]
    assert answer[0].params.diagnostic() == diagnostic.code
    assert answer[0].dst == 1
    assert [type(e) for e in events] == [ConnectionRefused]
    assert server.state is State.CLOSED
    assert server.next_deadline() == NOW + 30.0


def test_connect_with_requester_id_zero_is_aborted() -> None:
    server = PesitServer(now=NOW, framing=Framing.PREFIXED)
    fpdu = connect_fpdu()
    _, answer = feed(server, Fpdu(F.CONNECT, 0, 0, fpdu.params))
    assert [f.kind for f in answer] == [F.ABORT]


@pytest.mark.parametrize(
    ("server_settings", "diagnostic"),
    [
        (replace(SETTINGS, requester_id="SOMEONE-ELSE"), Diagnostic.ID_UNKNOWN),
        (replace(SETTINGS, server_id="NOT-ME"), Diagnostic.ID_UNKNOWN),
        (replace(SETTINGS, password="other"), Diagnostic.NOT_AUTHORISED),
        (replace(SETTINGS, password=""), Diagnostic.NOT_AUTHORISED),
    ],
    ids=["requester-id", "server-id", "password", "no-password-expected"],
)
def test_credentials_are_checked_against_the_settings(
    server_settings: PesitSettings, diagnostic: Diagnostic
) -> None:
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, server_settings)
    pair.requester.connect(now=NOW)
    pair.pump()
    refused = pair.events("r")
    assert refused == [ConnectionRefused(diagnostic.code, "")]
    assert pair.requester.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    assert pair.server.settings is None


def test_the_application_may_refuse_a_connect() -> None:
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    pair.requester.connect(now=NOW)
    pair.pump()
    assert isinstance(pair.events("s")[0], ConnectionRequested)
    pair.server.refuse(Diagnostic.TOO_MANY_CONNECTIONS, now=NOW)
    pair.pump()
    assert pair.events("r") == [ConnectionRefused(Diagnostic.TOO_MANY_CONNECTIONS.code, "")]


@pytest.mark.parametrize(
    ("ours", "theirs", "agreed"),
    [((32, 4), (8, 8), (8, 4)), ((8, 8), (32, 4), (8, 4)), ((0, 2), (32, 2), (0, 2))],
)
def test_the_smaller_sync_interval_and_window_win(
    ours: tuple[int, int], theirs: tuple[int, int], agreed: tuple[int, int]
) -> None:
    requester = replace(SETTINGS, sync_interval_kb=ours[0], sync_window=ours[1])
    server = replace(SETTINGS, sync_interval_kb=theirs[0], sync_window=theirs[1])
    pair = Pair(PesitRequester(requester), PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, server)
    pair.requester.connect(now=NOW)
    pair.pump()
    assert pair.requester.sync_points == SyncPoints(*agreed)
    assert pair.server.sync_points == SyncPoints(*agreed)


def test_connect_without_sync_points_means_none() -> None:
    server = PesitServer(now=NOW, framing=Framing.PREFIXED)
    feed(server, connect_fpdu(sync_points=None))
    server.accept_connection(SETTINGS, now=NOW)
    assert fpdus_of(server.data_to_send())[0].params.sync_points() == SyncPoints(0, 0)


def test_read_connect_pads_and_splits_the_access_control() -> None:
    request = read_connect(
        Params.of((PI.REQUESTER_ID, "A  "), (PI.ACCESS_CONTROL, "pw      newpw"), (PI.VERSION, 2))
    )
    assert (request.requester_id, request.password, request.server_id) == ("A", "pw", "")


@pytest.mark.parametrize(
    ("aconnect", "diagnostic"),
    [
        (Fpdu(F.ACONNECT, 1, 5, Params.of((PI.VERSION, 3))), Diagnostic.VERSION_NOT_SUPPORTED),
        (Fpdu(F.ACONNECT, 1, 0, Params.of((PI.VERSION, 2))), Diagnostic.PROTOCOL_ERROR),
        (Fpdu(F.ACONNECT, 7, 5, Params.of((PI.VERSION, 2))), Diagnostic.PROTOCOL_ERROR),
    ],
    ids=["version", "server-id-zero", "wrong-id-dst"],
)
def test_requester_aborts_an_unacceptable_aconnect(aconnect: Fpdu, diagnostic: Diagnostic) -> None:
    requester = PesitRequester(SETTINGS)
    requester.connect(now=NOW)
    requester.data_to_send()
    events, answer = feed(requester, aconnect)
    assert [f.kind for f in answer] == [F.ABORT]
    assert answer[0].params.diagnostic() == diagnostic.code
    assert isinstance(events[0], Aborted)


def test_aconnect_offering_more_than_asked_is_cut_down() -> None:
    requester = PesitRequester(SETTINGS)
    requester.connect(now=NOW)
    params = Params.of((PI.VERSION, 2), (PI.SYNC_POINTS, SyncPoints(64, 9)), (PI.RESYNC, 1))
    feed(requester, Fpdu(F.ACONNECT, 1, 5, params))
    assert requester.sync_points == SyncPoints(4, 2)


# -- pre-connection -------------------------------------------------------------------------------


def test_preconnection_refused_when_the_application_knows_no_such_caller() -> None:
    server = PesitServer(now=NOW)
    server.receive_data(encode_preconnection("WHO", "x"), now=NOW)
    assert server.next_event() == PreConnectionRequested("WHO", "x")
    server.answer_preconnection(None, now=NOW)
    assert server.data_to_send() == bytes.fromhex("d5c1d2f0")  # raw, as it came
    assert server.state is State.CLOSED


@pytest.mark.parametrize(
    "expected",
    [None, PreConnection("OTHER", "pw"), PreConnection("PAEMET", "px")],
    ids=["no-preconnection-expected", "other-caller", "other-password"],
)
def test_preconnection_must_match_exactly(expected: PreConnection | None) -> None:
    server = PesitServer(now=NOW)
    server.receive_data(encode_preconnection("PAEMET", "pw"), now=NOW)
    server.answer_preconnection(replace(SETTINGS, preconnection=expected), now=NOW)
    assert server.data_to_send() == bytes.fromhex("d5c1d2f0")
    assert server.state is State.CLOSED


def test_connect_without_a_server_id_is_accepted() -> None:
    server = PesitServer(now=NOW, framing=Framing.PREFIXED)
    events, _ = feed(server, connect_fpdu(server_id=None))
    assert isinstance(events[0], ConnectionRequested)
    assert events[0].server_id == ""
    server.accept_connection(SETTINGS, now=NOW)
    assert server.state is State.CN03


def test_server_keeps_early_bytes_until_the_preconnection_is_answered() -> None:
    settings = replace(SETTINGS, preconnection=PreConnection("PAEMET", "pw"))
    server = PesitServer(now=NOW)
    connect = frame(encode_fpdu(connect_fpdu()), Framing.PREFIXED)
    server.receive_data(
        frame(encode_preconnection("PAEMET", "pw"), Framing.PREFIXED) + connect, now=NOW
    )
    assert isinstance(server.next_event(), PreConnectionRequested)
    assert server.next_event() is None
    server.answer_preconnection(settings, now=NOW)
    assert isinstance(server.next_event(), ConnectionRequested)
    assert server.data_to_send() == b"\x00\x04\xc1\xc3\xd2\xf0"


def test_garbage_before_any_connect_is_hung_up_on_without_an_answer() -> None:
    server = PesitServer(now=NOW)
    server.receive_data(b"GET / HTTP/1.1\r\n", now=NOW)
    event = server.next_event()
    assert isinstance(event, Aborted)
    assert event.diagnostic == Diagnostic.PROTOCOL_ERROR.code
    assert isinstance(server.next_event(), ConnectionClosed)  # close now, no Tr to wait
    assert server.data_to_send() == b""  # nothing understood, nothing said
    assert server.state is State.CLOSED
    assert server.next_deadline() is None


def test_requester_aborts_on_a_garbled_preconnection_answer() -> None:
    requester = PesitRequester(replace(SETTINGS, preconnection=PreConnection("A", "B")))
    requester.connect(now=NOW)
    assert len(requester.data_to_send()) == 26
    requester.receive_data(b"\x00\x04OK!!", now=NOW)
    assert isinstance(requester.next_event(), Aborted)
    assert requester.state is State.CLOSED
