"""What the application may not do: refused locally, before any byte leaves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from protocols.pesit.connection import PesitConnection
from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.fpdu import Fpdu, FpduType
from protocols.pesit.pi import PI, Params
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import Timers
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, feed
from tests.pesit.reach import connected, dtf_end_only, opened, reading, writing

F = FpduType


Misuse = Callable[[], object]


def _call(make: Callable[[], PesitConnection], name: str, *args: object) -> Callable[[], Misuse]:
    """A deferred `conn.name(*args, now=NOW)` on a connection built by `make`."""

    def build() -> Misuse:
        conn = make()
        return lambda: getattr(conn, name)(*args, now=NOW)

    return build


def _closed() -> PesitRequester:
    requester = PesitRequester(SETTINGS)
    requester.connect(now=NOW)
    requester.abort(now=NOW)
    return requester


def _connect_pending() -> PesitServer:
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair.server


def _read_pending_at_3() -> PesitServer:
    pair = opened(pull=True)
    feed(pair.server, Fpdu(F.READ, 1, params=Params.of((PI.RESTART_POINT, 3))))
    return pair.server


def _confirmed_once() -> PesitServer:
    pair = writing()
    dtf_end_only(pair)
    pair.server.confirm_end(now=NOW)
    return pair.server


def _requester(make: Callable[[], Pair]) -> Callable[[], PesitConnection]:
    return lambda: make().requester


def _server(make: Callable[[], Pair]) -> Callable[[], PesitConnection]:
    return lambda: make().server


def _pull_open() -> Pair:
    return opened(pull=True)


MISUSES = [
    ("create-before-connect", _call(lambda: PesitRequester(SETTINGS), "create", FILE)),
    ("connect-twice", _call(_requester(connected), "connect")),
    ("abort-when-closed", _call(_closed, "abort")),
    ("send-outside-data", _call(_requester(opened), "send_articles", [b"x"])),
    ("confirm-without-data", _call(_requester(opened), "confirm_durable", 1)),
    ("confirm-end-requester", _call(_requester(reading), "confirm_end")),
    ("confirm-end-server", _call(_server(writing), "confirm_end")),
    ("confirm-end-twice", _call(_confirmed_once, "confirm_end")),
    ("interrupt-outside-data", _call(_requester(opened), "interrupt")),
    ("end-data-while-receiving", _call(_requester(reading), "end_data")),
    ("read-in-wrong-state", _call(_requester(connected), "read")),
    ("refuse-nothing", _call(_server(connected), "refuse", Diagnostic.FILE_BUSY)),
    ("refuse-with-success", _call(_connect_pending, "refuse", Diagnostic.SUCCESS)),
    ("answer-no-preconnection", _call(lambda: PesitServer(now=NOW), "answer_preconnection", None)),
    ("accept-no-connect", _call(lambda: PesitServer(now=NOW), "accept_connection", SETTINGS)),
    ("accept-select-no-select", _call(_server(connected), "accept_select", FILE)),
    ("accept-create-no-create", _call(_server(connected), "accept_create")),
    ("accept-read-wrong-point", _call(_read_pending_at_3, "accept_read")),
    ("accept-read-no-read", _call(_server(_pull_open), "accept_read")),
]


@pytest.mark.parametrize("make", [m for _, m in MISUSES], ids=[n for n, _ in MISUSES])
def test_misuse_is_refused_locally(make: Callable[[], Misuse]) -> None:
    call = make()
    with pytest.raises(PesitLocalError):
        call()


@pytest.mark.parametrize(
    "changes",
    [
        {"requester_id": ""},
        {"server_id": "x" * 25},
        {"password": "123456789"},
        {"password": "é"},
        {"connection_id": 0},
        {"connection_id": 256},
        {"sync_interval_kb": 65536},
        {"sync_window": -1},
        {"max_entity_size": 63},
        {"article_size": 0},
    ],
)
def test_settings_refuse_values_pesit_cannot_carry(changes: dict[str, object]) -> None:
    with pytest.raises(PesitLocalError):
        replace(SETTINGS, **changes)  # type: ignore[arg-type]


def test_timers_must_be_positive() -> None:
    with pytest.raises(PesitLocalError, match="tp"):
        Timers(tp=0)
