"""Whole transfers between the two cores, shared by the transfer, restart and IDT tests."""

from __future__ import annotations

from protocols.pesit.events import Released, TransferEnded
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PesitSettings
from protocols.pesit.state import State
from tests.pesit.harness import NOW, SETTINGS, Pair, PullApp, PushApp, ServerApp, Storage, payload

DATA = payload(40_000)


def run_push(
    data: bytes = DATA,
    *,
    settings: PesitSettings = SETTINGS,
    article_size: int = 1024,
    chunk: int = 0,
    server: PesitServer | None = None,
) -> tuple[Pair, ServerApp]:
    """A whole push of `data`, connect to release; the server application keeps the bytes."""
    pair = Pair(PesitRequester(settings), server or PesitServer(now=NOW), chunk=chunk)
    app = ServerApp(pair.server, settings)
    pair.on_server = app
    pair.on_requester = PushApp(pair.requester, data, article_size=article_size)
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair, app


def run_pull(
    data: bytes = DATA, *, settings: PesitSettings = SETTINGS, chunk: int = 0
) -> tuple[Pair, Storage]:
    """A whole pull of `data`, connect to release, into the returned storage."""
    pair = Pair(PesitRequester(settings), PesitServer(now=NOW), chunk=chunk)
    pair.on_server = ServerApp(pair.server, settings, files={"FSO1100A": data})
    storage = Storage()
    pair.on_requester = PullApp(pair.requester, storage)
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair, storage


def ended_cleanly(pair: Pair) -> None:
    """One successful transfer on each side, then RELEASE/RELCONF, and the right timers."""
    assert pair.requester.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    for side in ("r", "s"):
        ended = [e for e in pair.events(side) if isinstance(e, TransferEnded)]
        assert [e.diagnostic.ok for e in ended] == [True]
        assert isinstance(pair.events(side)[-1], Released)
    assert pair.requester.next_deadline() is None  # the requester hangs up at once
    assert pair.server.next_deadline() == NOW + 30.0  # the server waits Tr for it
