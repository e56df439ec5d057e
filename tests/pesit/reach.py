"""Drive a real requester/server pair into each state of pesit.md §7 (for table-driven tests).

Some states only exist for an instant, inside one call, because the core answers at once
(RELEASE → RELCONF, ORF → ACK(ORF), IDT → ACK(IDT)…): they are listed in `TRANSIENT` and
cannot be observed from outside.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.pesit.connection import PesitConnection
from protocols.pesit.events import ConnectionRequested, Event, FileInfo
from protocols.pesit.fpdu import Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, frame
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PesitSettings
from protocols.pesit.state import Role, State
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, fpdus_of

S = State
TRANSIENT = {
    Role.REQUESTER: {S.TDE06A, S.TDL06A, S.TDE07A},
    Role.SERVER: {
        S.CN04B, S.MSG01B, S.SF04B, S.OF01B, S.OF03B, S.TDE01B, S.TDE06B, S.TDL06B, S.TDL08B,
    },
}  # fmt: skip


def connected(settings: PesitSettings = SETTINGS) -> Pair:
    pair = Pair(PesitRequester(settings), PesitServer(now=NOW))

    def accept(event: Event) -> None:
        if isinstance(event, ConnectionRequested):
            pair.server.accept_connection(settings, now=NOW)

    pair.on_server = accept
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair


def selected(settings: PesitSettings = SETTINGS, *, pull: bool = False) -> Pair:
    pair = connected(settings)
    if pull:
        pair.requester.select(FILE, now=NOW)
        pair.pump()
        pair.server.accept_select(FileInfo(transfer_id=9, article_size=1024), now=NOW)
    else:
        pair.requester.create(FILE, now=NOW)
        pair.pump()
        pair.server.accept_create(now=NOW)
    pair.pump()
    return pair


def opened(settings: PesitSettings = SETTINGS, *, pull: bool = False) -> Pair:
    pair = selected(settings, pull=pull)
    pair.requester.open_file(now=NOW)
    pair.pump()
    return pair


def writing(settings: PesitSettings = SETTINGS) -> Pair:
    pair = opened(settings)
    pair.requester.write(now=NOW)
    pair.pump()
    return pair


def reading(settings: PesitSettings = SETTINGS) -> Pair:
    pair = opened(settings, pull=True)
    pair.requester.read(now=NOW)
    pair.pump()
    pair.server.accept_read(now=NOW)
    pair.pump()
    return pair


def _then(make: Callable[[], Pair], action: Callable[[Pair], object]) -> Callable[[], Pair]:
    def build() -> Pair:
        pair = make()
        action(pair)
        return pair

    return build


def _pumped(action: Callable[[Pair], object]) -> Callable[[Pair], None]:
    def run(pair: Pair) -> None:
        action(pair)
        pair.pump()

    return run


def dtf_end_only(pair: Pair) -> bytes:
    """Deliver DTF.END, hold back the TRANS.END sent with it, and return it (framed)."""
    pair.requester.end_data(now=NOW)
    dtf_end, trans_end = fpdus_of(pair.requester.data_to_send())
    pair.server.receive_data(frame(encode_fpdu(dtf_end), Framing.PREFIXED), now=NOW)
    return frame(encode_fpdu(trans_end), Framing.PREFIXED)


def _fresh_requester() -> Pair:
    return Pair(PesitRequester(SETTINGS), PesitServer(now=NOW, framing=Framing.PREFIXED))


def _fresh_server() -> Pair:
    return _fresh_requester()


def _connect_unanswered() -> Pair:
    pair = _fresh_requester()
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair


def _message_started(pair: Pair) -> None:
    pair.server.receive_data(frame(encode_fpdu(Fpdu(FpduType.MSGDM, 1)), Framing.PREFIXED), now=NOW)


_REQUESTER: dict[State, Callable[[], Pair]] = {
    S.CN01: _fresh_requester,
    S.CN02A: _then(_fresh_requester, lambda p: p.requester.connect(now=NOW)),
    S.CN03: connected,
    S.CN04A: _then(connected, lambda p: p.requester.release(now=NOW)),
    S.SF01A: _then(connected, lambda p: p.requester.create(FILE, now=NOW)),
    S.SF02A: _then(connected, lambda p: p.requester.select(FILE, now=NOW)),
    S.SF03: selected,
    S.SF04A: _then(selected, lambda p: p.requester.deselect(now=NOW)),
    S.OF01A: _then(selected, lambda p: p.requester.open_file(now=NOW)),
    S.OF02: opened,
    S.OF03A: _then(opened, lambda p: p.requester.close_file(now=NOW)),
    S.TDE01A: _then(opened, lambda p: p.requester.write(now=NOW)),
    S.TDE02A: writing,
    S.TDE05A: _then(writing, lambda p: p.requester.interrupt(now=NOW)),
    S.TDE08A: _then(writing, lambda p: p.requester.end_data(now=NOW)),
    S.TDL01A: _then(lambda: opened(pull=True), lambda p: p.requester.read(now=NOW)),
    S.TDL02A: reading,
    S.TDL05A: _then(reading, lambda p: p.requester.interrupt(now=NOW)),
    S.TDL07A: _then(reading, _pumped(lambda p: p.server.end_data(now=NOW))),
    S.TDL08A: _then(
        _then(reading, _pumped(lambda p: p.server.end_data(now=NOW))),
        lambda p: p.requester.confirm_end(now=NOW),
    ),
}
_SERVER: dict[State, Callable[[], Pair]] = {
    S.CN01: _fresh_server,
    S.CN02B: _connect_unanswered,
    S.CN03: connected,
    S.MSG02B: _then(connected, _message_started),
    S.SF01B: _then(connected, _pumped(lambda p: p.requester.create(FILE, now=NOW))),
    S.SF02B: _then(connected, _pumped(lambda p: p.requester.select(FILE, now=NOW))),
    S.SF03: selected,
    S.OF02: opened,
    S.TDE02B: writing,
    S.TDE05B: _then(writing, lambda p: p.server.interrupt(now=NOW)),
    S.TDE07B: _then(writing, dtf_end_only),
    S.TDE08B: _then(writing, _pumped(lambda p: p.requester.end_data(now=NOW))),
    S.TDL01B: _then(lambda: opened(pull=True), _pumped(lambda p: p.requester.read(now=NOW))),
    S.TDL02B: reading,
    S.TDL05B: _then(reading, lambda p: p.server.interrupt(now=NOW)),
    S.TDL07B: _then(reading, lambda p: p.server.end_data(now=NOW)),
}
RECIPES = {Role.REQUESTER: _REQUESTER, Role.SERVER: _SERVER}


def reach(role: Role, state: State) -> tuple[PesitConnection, Pair]:
    """A connection of `role` standing in `state`, with the pair it lives in."""
    pair = RECIPES[role][state]()
    conn: PesitConnection = pair.requester if role is Role.REQUESTER else pair.server
    assert conn.state is state, f"recipe for {state.name} reached {conn.state.name}"
    return conn, pair
