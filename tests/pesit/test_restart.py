"""A connection cut at every sync point, then a restart from the last durable one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.pesit.events import FileReady, WriteStarted
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, PullApp, PushApp, ServerApp, Storage
from tests.pesit.runs import DATA, ended_cleanly


def _points(data: bytes) -> int:
    return (len(data) - 1) // 4096


@pytest.mark.parametrize("cut_after", range(1, _points(DATA) + 1))
def test_push_cut_at_each_sync_point_restarts_from_the_last_durable_one(cut_after: int) -> None:
    stores: dict[int, Storage] = {}
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, SETTINGS, stores=stores)
    pusher = PushApp(pair.requester, DATA)
    pair.on_requester = pusher
    pair.stop = lambda: any(p.point >= cut_after for p in pusher.acked)
    pair.requester.connect(now=NOW)
    pair.pump()
    store = stores[FILE.transfer_id]
    store.crash()
    durable_at_cut = store.durable
    assert durable_at_cut.point >= cut_after
    assert len(store.data) == durable_at_cut.byte_offset < len(DATA)

    again = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    again.on_server = ServerApp(again.server, SETTINGS, stores=stores)
    resumed = PushApp(
        again.requester,
        DATA,
        file=replace(FILE, restart=True),
        known=list(pusher.sent_points.values()),
    )
    again.on_requester = resumed
    again.requester.connect(now=NOW)
    again.pump()
    started = next(e for e in again.events("r") if isinstance(e, WriteStarted))
    assert started.position == durable_at_cut  # resumed right after the last durable point
    assert bytes(stores[FILE.transfer_id].data) == DATA
    ended_cleanly(again)


@pytest.mark.parametrize("cut_after", range(1, _points(DATA) + 1))
def test_pull_cut_at_each_sync_point_restarts_from_the_last_durable_one(cut_after: int) -> None:
    files = {"FSO1100A": DATA}
    pair = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    server_app = ServerApp(pair.server, SETTINGS, files=files)
    pair.on_server = server_app
    storage = Storage()
    pair.on_requester = PullApp(pair.requester, storage)
    pair.stop = lambda: storage.durable.point >= cut_after
    pair.requester.connect(now=NOW)
    pair.pump()
    storage.crash()
    given = next(e for e in pair.events("r") if isinstance(e, FileReady)).file.transfer_id

    again = Pair(PesitRequester(SETTINGS), PesitServer(now=NOW))
    again.on_server = ServerApp(
        again.server, SETTINGS, files=files, sent_points=server_app.sent_points
    )
    transfer = replace(FILE, restart=True, transfer_id=given)
    again.on_requester = PullApp(again.requester, storage, file=transfer, resume=storage.durable)
    again.requester.connect(now=NOW)
    again.pump()
    assert bytes(storage.data) == DATA
    ended_cleanly(again)
