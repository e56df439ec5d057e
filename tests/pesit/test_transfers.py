"""Requester core ↔ server core in memory: pushes and pulls, whole and byte by byte."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.pesit.events import (
    ArticleReceived,
    DataEnded,
    SyncPointAcknowledged,
    SyncPointReached,
    TransferEnded,
)
from protocols.pesit.fpdu import DATA_FAMILY, FpduType
from protocols.pesit.framing import Framing
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PreConnection
from protocols.pesit.state import State
from tests.pesit.harness import (
    FILE,
    NOW,
    SETTINGS,
    Pair,
    PullApp,
    PushApp,
    ServerApp,
    Storage,
    fpdus_of,
    payload,
)
from tests.pesit.reach import dtf_end_only, reading, writing
from tests.pesit.runs import DATA, ended_cleanly, run_pull, run_push

F = FpduType


@pytest.mark.parametrize("chunk", [0, 1, 7], ids=["whole", "bytewise", "7-byte-slices"])
def test_push_delivers_identical_bytes(chunk: int) -> None:
    pair, app = run_push(chunk=chunk)
    assert bytes(app.stores[FILE.transfer_id].data) == DATA
    ended_cleanly(pair)
    kinds = [f.kind for f in pair.sent("r")]
    assert kinds[:4] == [F.CONNECT, F.CREATE, F.ORF, F.WRITE]
    assert kinds[-5:] == [F.DTF_END, F.TRANS_END, F.CRF, F.DESELECT, F.RELEASE]
    assert kinds.count(F.SYN) == 9  # 40 000 bytes, a SYN before each 4 096 would be exceeded


@pytest.mark.parametrize("chunk", [0, 1], ids=["whole", "bytewise"])
def test_pull_delivers_identical_bytes(chunk: int) -> None:
    pair, storage = run_pull(chunk=chunk)
    assert bytes(storage.data) == DATA
    ended_cleanly(pair)
    kinds = [f.kind for f in pair.sent("r")]
    assert kinds[:4] == [F.CONNECT, F.SELECT, F.ORF, F.READ]
    assert F.TRANS_END in kinds
    assert F.DTF_END in [f.kind for f in pair.sent("s")]


def test_two_transfers_share_one_connection() -> None:
    pair, app = run_push(settings=SETTINGS)
    del pair, app
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    server_app = ServerApp(pair.server, SETTINGS, files={"X": b"pulled"})
    pair.on_server = server_app
    pair.on_requester = PushApp(pair.requester, b"pushed", release=False)
    pair.requester.connect(now=NOW)
    pair.pump()
    assert pair.requester.state is State.CN03
    storage = Storage()
    puller = PullApp(pair.requester, storage)
    pair.on_requester = puller
    pair.requester.select(FILE, now=NOW)
    pair.pump()
    assert bytes(storage.data) == b"pulled"
    assert bytes(server_app.stores[FILE.transfer_id].data) == b"pushed"
    assert pair.server.state is State.CLOSED


def test_long_articles_are_segmented_and_joined() -> None:
    data = payload(30_000)
    pair, app = run_push(data, article_size=10_000)
    assert bytes(app.stores[FILE.transfer_id].data) == data
    kinds = [f.kind for f in pair.sent("r") if f.kind in DATA_FAMILY]
    assert kinds == [F.DTFDA, F.DTFMA, F.DTFFA] * 3  # 10 000 bytes in 4 090-byte segments
    received = [e for e in pair.events("s") if isinstance(e, ArticleReceived)]
    assert [len(e.data) for e in received] == [10_000] * 3


def test_small_articles_share_multi_article_dtfs() -> None:
    data = payload(3_000)
    pair, app = run_push(data, article_size=100)
    assert bytes(app.stores[FILE.transfer_id].data) == data
    dtfs = [f for f in pair.sent("r") if f.kind is F.DTF]
    assert len(dtfs) == 1
    assert len(dtfs[0].data) == 30
    received = [e for e in pair.events("s") if isinstance(e, ArticleReceived)]
    assert len(received) == 30


def test_raw_framing_requester_is_detected_by_the_server() -> None:
    settings = replace(SETTINGS, prefixed=False)
    pair, app = run_push(settings=settings)
    assert bytes(app.stores[FILE.transfer_id].data) == DATA
    assert pair.sent("r", Framing.RAW)[0].kind is F.CONNECT


@pytest.mark.parametrize("prefixed", [True, False], ids=["prefixed", "raw"])
def test_preconnection_then_push(prefixed: bool) -> None:
    settings = replace(SETTINGS, preconnection=PreConnection("PAEMET", "pre-pw"), prefixed=prefixed)
    pair, app = run_push(settings=settings, chunk=3)
    assert bytes(app.stores[FILE.transfer_id].data) == DATA
    assert pair.kinds("s")[0] == "PreConnectionRequested"


def test_preconnection_with_a_wrong_password_gets_nak0() -> None:
    settings = replace(SETTINGS, preconnection=PreConnection("PAEMET", "wrong"))
    pair = Pair(PesitRequester(settings), PesitServer(now=NOW))
    server_settings = replace(SETTINGS, preconnection=PreConnection("PAEMET", "right"))
    pair.on_server = ServerApp(pair.server, server_settings)
    pair.requester.connect(now=NOW)
    pair.pump()
    assert pair.kinds("r") == ["ConnectionRefused"]
    assert pair.requester.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    assert bytes(pair.wire["s"]) == b"\x00\x04\xd5\xc1\xd2\xf0"


# -- durability gates the acknowledgements -------------------------------------------------------


def test_ack_syn_waits_for_confirm_durable_and_the_window_holds_the_sender() -> None:
    pair = writing()
    articles = [payload(1024, seed=i) for i in range(40)]
    taken = pair.requester.send_articles(articles, now=NOW)
    assert taken == 12  # 4 before SYN 1, 4 before SYN 2, 4 more; SYN 3 would overflow window 2
    blocked = not pair.requester.can_send  # (a local: mypy would narrow the property)
    assert blocked
    assert pair.requester.send_articles(articles[taken:], now=NOW) == 0
    pair.pump()
    reached = [e for e in pair.events("s") if isinstance(e, SyncPointReached)]
    assert [e.position.point for e in reached] == [1, 2]
    assert F.ACK_SYN not in [f.kind for f in pair.sent("s")]  # nothing durable yet
    assert pair.server.next_deadline() is None  # the sender waits for us: no Tp on us
    assert pair.requester.next_deadline() == NOW + 30.0  # the blocked sender watches us
    pair.server.confirm_durable(1, now=NOW)
    pair.pump()
    assert [f.kind for f in pair.sent("s")].count(F.ACK_SYN) == 1
    assert pair.requester.can_send
    acked = [e for e in pair.events("r") if isinstance(e, SyncPointAcknowledged)]
    assert [e.position.byte_offset for e in acked] == [4096]
    assert pair.server.pending_sync_points[0].point == 2


def test_ack_trans_end_waits_for_confirm_end() -> None:
    pair = writing()
    pair.requester.send_articles([b"abc"], now=NOW)
    pair.requester.end_data(now=NOW)
    pair.pump()
    assert pair.server.state is State.TDE08B
    assert F.ACK_TRANS_END not in [f.kind for f in pair.sent("s")]
    ended = [e for e in pair.events("s") if isinstance(e, DataEnded)]
    assert (ended[0].byte_count, ended[0].article_count) == (3, 1)
    pair.server.confirm_end(now=NOW)
    pair.pump()
    assert pair.requester.state is State.OF02
    assert isinstance(pair.events("r")[-1], TransferEnded)


def test_confirm_end_before_trans_end_answers_when_it_comes() -> None:
    pair = writing()
    pair.requester.send_articles([b"abc"] * 5, now=NOW)
    pair.pump()
    trans_end = dtf_end_only(pair)
    assert isinstance(pair.server.next_event(), DataEnded)
    pair.server.confirm_end(now=NOW)
    assert pair.server.data_to_send() == b""
    pair.server.receive_data(trans_end, now=NOW)
    pair.pump()
    assert pair.server.state is State.OF02
    assert pair.requester.state is State.OF02


def test_pending_sync_points_are_acknowledged_before_trans_end() -> None:
    pair = reading()
    pair.server.send_articles([payload(1024, seed=i) for i in range(8)], now=NOW)
    pair.server.end_data(now=NOW)
    pair.pump()
    assert [p.point for p in pair.requester.pending_sync_points] == [1]
    pair.requester.confirm_end(now=NOW)
    kinds = [f.kind for f in fpdus_of(pair.requester.data_to_send())]
    assert kinds == [F.ACK_SYN, F.TRANS_END]
