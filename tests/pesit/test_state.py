"""The transition tables of pesit.md §7, and every illegal FPDU in every state → ABORT 3/311."""

from __future__ import annotations

import pytest

from protocols.pesit.connection import ACK_KINDS, PesitConnection
from protocols.pesit.diagnostics import Diagnostic, PesitError, PesitLocalError
from protocols.pesit.events import Aborted
from protocols.pesit.fpdu import DATA_FAMILY, Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, frame
from protocols.pesit.pi import PI, Params, SyncPoints
from protocols.pesit.state import TABLES, Direction, Machine, Role, State, states_of
from tests.pesit.harness import NOW, fpdus_of
from tests.pesit.reach import RECIPES, TRANSIENT, reach

F = FpduType
R, S = Direction.RECEIVE, Direction.SEND


def sample(kind: FpduType, dst: int) -> Fpdu:
    """A plausible FPDU of `kind` for a connection whose id is `dst`."""
    if kind in DATA_FAMILY:
        return Fpdu(kind, dst, data=(b"x",))
    params = Params()
    if kind in ACK_KINDS or kind in {F.IDT, F.ABORT, F.RCONNECT, F.RELEASE, F.DTF_END, F.CRF}:
        params = Params.of((PI.DIAGNOSTIC, Diagnostic.SUCCESS.code))
    elif kind in {F.SYN, F.ACK_SYN, F.RESYN, F.ACK_RESYN}:
        params = Params.of((PI.SYNC_NUMBER, 1))
    elif kind in {F.CONNECT, F.ACONNECT}:
        params = Params.of(
            (PI.REQUESTER_ID, "X"), (PI.VERSION, 2), (PI.SYNC_POINTS, SyncPoints(4, 2))
        )
    src = 5 if kind.phase == 0x40 else 0
    return Fpdu(kind, 0 if kind is F.CONNECT else dst, src, params)


def _illegal_cases() -> list[tuple[Role, State, FpduType]]:
    cases = []
    for role, recipes in RECIPES.items():
        table = TABLES[role]
        for state in recipes:
            cases += [(role, state, k) for k in FpduType if (state, R, k) not in table]
    return cases


ILLEGAL = _illegal_cases()


def test_every_live_state_is_reachable_or_known_transient() -> None:
    for role in Role:
        assert set(RECIPES[role]) | TRANSIENT[role] == set(states_of(role))
        assert not set(RECIPES[role]) & TRANSIENT[role]


def test_enough_illegal_pairs_are_exercised() -> None:
    assert len(ILLEGAL) > 1000


@pytest.mark.parametrize(
    ("role", "state", "kind"),
    ILLEGAL,
    ids=[f"{r.value}-{s.name}-{k.name}" for r, s, k in ILLEGAL],
)
def test_illegal_fpdu_is_answered_with_abort_311(role: Role, state: State, kind: FpduType) -> None:
    conn, _ = reach(role, state)
    conn.data_to_send()
    while conn.next_event() is not None:
        pass
    conn.receive_data(frame(encode_fpdu(sample(kind, 1)), Framing.PREFIXED), now=NOW)
    assert conn.state is State.CLOSED
    answer = fpdus_of(conn.data_to_send())
    assert [f.kind for f in answer] == [F.ABORT]
    assert answer[0].params.diagnostic() == Diagnostic.PROTOCOL_ERROR.code
    event = conn.next_event()
    assert isinstance(event, Aborted)
    assert not event.by_peer
    assert event.diagnostic == Diagnostic.PROTOCOL_ERROR.code
    assert conn.next_deadline() == NOW + 30.0  # Tr: hang up if the peer does not


NEGATIVE = [
    (state, kind, t.ko)
    for (state, d, kind), t in TABLES[Role.REQUESTER].items()
    if d is R and t.ko is not None and state in RECIPES[Role.REQUESTER]
]


@pytest.mark.parametrize(("state", "kind", "back"), NEGATIVE, ids=[k.name for _, k, _ in NEGATIVE])
def test_negative_ack_returns_to_the_state_before_the_request(
    state: State, kind: FpduType, back: State
) -> None:
    conn, _ = reach(Role.REQUESTER, state)
    conn.data_to_send()
    negative = Params.of((PI.DIAGNOSTIC, Diagnostic.FILE_BUSY.code))
    conn.receive_data(frame(encode_fpdu(Fpdu(kind, 1, params=negative)), Framing.PREFIXED), now=NOW)
    assert conn.state is back
    assert conn.data_to_send() == b""


def test_every_ack_with_a_negative_form_has_a_way_back() -> None:
    for role, table in TABLES.items():
        for (state, _, kind), transition in table.items():
            if kind in ACK_KINDS and not transition.ignore:
                assert transition.ko is not None, (role, state, kind)


def test_abort_is_allowed_everywhere_both_ways() -> None:
    for role, table in TABLES.items():
        for state in states_of(role):
            for direction in Direction:
                assert table[(state, direction, F.ABORT)].ok is State.CLOSED


def test_each_side_receives_only_what_the_other_may_send() -> None:
    """The tables mirror each other: what one side sends somewhere, the other receives."""
    sent = {k for (_, d, k) in TABLES[Role.REQUESTER] if d is S}
    received = {k for (_, d, k) in TABLES[Role.SERVER] if d is R}
    assert sent - {F.ABORT} <= received
    sent = {k for (_, d, k) in TABLES[Role.SERVER] if d is S}
    received = {k for (_, d, k) in TABLES[Role.REQUESTER] if d is R}
    assert sent - {F.ACK_MSG} <= received  # ACK(MSG) answers an MSG we never send


def test_no_resyn_anywhere() -> None:
    for table in TABLES.values():
        assert not any(k in {F.RESYN, F.ACK_RESYN} for (_, _, k) in table)


def test_machine_refuses_a_send_the_table_lacks_and_keeps_its_state() -> None:
    machine = Machine(Role.REQUESTER)
    with pytest.raises(PesitLocalError, match="may not send CREATE in CN01"):
        machine.send(F.CREATE)
    assert machine.state is State.CN01
    with pytest.raises(PesitError):
        machine.receive(F.DTF)
    assert machine.allows(S, F.CONNECT)


def test_conn_helper_reaches_each_state(request: pytest.FixtureRequest) -> None:
    del request
    for role, recipes in RECIPES.items():
        for state in recipes:
            conn, _ = reach(role, state)
            assert isinstance(conn, PesitConnection)
