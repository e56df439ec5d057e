"""The requester and server state machines of pesit.md §7, as two transition tables.

A transition is keyed by (state, direction, FPDU type). A pair missing from the table is a
protocol error: received, it is answered with ABORT 3/311; sent, it is refused locally
before any byte leaves. ACKs carry a second target for the negative answer, which returns
to the state before the request. Data-phase collisions (pesit.md §7) appear as `ignore`
entries: the weaker FPDU that crossed our IDT is dropped, and the requester wins a tie.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from protocols.pesit.diagnostics import Diagnostic, PesitError, PesitLocalError
from protocols.pesit.fpdu import DATA_FAMILY, FpduType

__all__ = [
    "TABLES",
    "Direction",
    "Machine",
    "Role",
    "State",
    "Transition",
    "awaits_peer",
    "keeps_state",
]

F = FpduType


class Role(Enum):
    REQUESTER = "requester"
    SERVER = "server"


class Direction(Enum):
    SEND = "send"
    RECEIVE = "receive"

    __hash__ = object.__hash__  # members are singletons: identity hashing, done in C


class State(Enum):
    """§4.8 names; A = requester only, B = server only. CLOSED: after ABORT, RELCONF, RCONNECT."""

    __hash__ = object.__hash__  # the table is looked up for every FPDU: hash in C

    CN01 = "idle"
    CN02A = "CONNECT sent"
    CN02B = "CONNECT received"
    CN03 = "connected"
    CN04A = "RELEASE sent"
    CN04B = "RELEASE received"
    MSG01B = "MSG received"
    MSG02B = "segmented MSG arriving"
    SF01A = "CREATE sent"
    SF01B = "CREATE received"
    SF02A = "SELECT sent"
    SF02B = "SELECT received"
    SF03 = "file selected"
    SF04A = "DESELECT sent"
    SF04B = "DESELECT received"
    OF01A = "ORF sent"
    OF01B = "ORF received"
    OF02 = "file open"
    OF03A = "CRF sent"
    OF03B = "CRF received"
    TDE01A = "WRITE sent"
    TDE01B = "WRITE received"
    TDE02A = "sending data (write)"
    TDE02B = "receiving data (write)"
    TDE05A = "IDT sent (write, requester)"
    TDE05B = "IDT sent (write, server)"
    TDE06A = "IDT received (write, requester)"
    TDE06B = "IDT received (write, server)"
    TDE07A = "DTF.END sent"
    TDE07B = "DTF.END received"
    TDE08A = "TRANS.END sent (write)"
    TDE08B = "TRANS.END received (write)"
    TDL01A = "READ sent"
    TDL01B = "READ received"
    TDL02A = "receiving data (read)"
    TDL02B = "sending data (read)"
    TDL05A = "IDT sent (read, requester)"
    TDL05B = "IDT sent (read, server)"
    TDL06A = "IDT received (read, requester)"
    TDL06B = "IDT received (read, server)"
    TDL07A = "DTF.END received (read)"
    TDL07B = "DTF.END sent (read)"
    TDL08A = "TRANS.END sent (read)"
    TDL08B = "TRANS.END received (read)"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Transition:
    """`ok`: next state; `ko`: next state on a negative ACK; `ignore`: drop the FPDU."""

    ok: State
    ko: State | None = None
    ignore: bool = False


Key = tuple[State, Direction, FpduType]
S, R = Direction.SEND, Direction.RECEIVE


def _order(kind: FpduType) -> tuple[int, int]:
    return kind.value


_DATA = (*sorted(DATA_FAMILY, key=_order), F.SYN)  # sorted: a stable table order


def _stay(state: State, direction: Direction, kinds: Iterable[FpduType]) -> dict[Key, Transition]:
    return {(state, direction, kind): Transition(state) for kind in kinds}


def _drop(state: State, kinds: Iterable[FpduType]) -> dict[Key, Transition]:
    return {(state, R, kind): Transition(state, ignore=True) for kind in sorted(kinds, key=_order)}


def _data_phase(*, sender: Direction, side: str, family: str) -> dict[Key, Transition]:
    """One data phase (TDE or TDL) seen by one side; `sender` is SEND if this side sends."""
    receiver = R if sender is S else S

    def st(number: str) -> State:
        return State[f"{family}{number}{side}"]

    table: dict[Key, Transition] = {
        **_stay(st("02"), sender, _DATA),
        **_stay(st("02"), receiver, [F.ACK_SYN]),
        (st("02"), sender, F.DTF_END): Transition(st("07")),
        **_stay(st("07"), receiver, [F.ACK_SYN]),
        **_stay(st("08"), receiver, [F.ACK_SYN]),
        (st("05"), R, F.ACK_IDT): Transition(State.OF02),
        (st("06"), S, F.ACK_IDT): Transition(State.OF02),
    }
    trans_end = S if side == "A" else R
    table[(st("07"), trans_end, F.TRANS_END)] = Transition(st("08"))
    answer = R if side == "A" else S
    table[(st("08"), answer, F.ACK_TRANS_END)] = Transition(State.OF02, State.OF02)
    for number in ("02", "07", "08"):
        table[(st(number), S, F.IDT)] = Transition(st("05"))
        table[(st(number), R, F.IDT)] = Transition(st("06"))
    # What the peer may legitimately have sent before it saw our IDT is dropped, not fatal.
    crossing = {k for (state, d, k) in table if d is R and state in {st("02"), st("07"), st("08")}}
    table.update(_drop(st("05"), crossing - {F.IDT, F.ABORT}))
    # Same type crossing: the requester keeps waiting for its ACK(IDT), the server yields.
    yielded = Transition(st("05"), ignore=True) if side == "A" else Transition(st("06"))
    table[(st("05"), R, F.IDT)] = yielded
    return table


def _requester() -> dict[Key, Transition]:
    table: dict[Key, Transition] = {
        (State.CN01, S, F.CONNECT): Transition(State.CN02A),
        (State.CN02A, R, F.ACONNECT): Transition(State.CN03),
        (State.CN02A, R, F.RCONNECT): Transition(State.CLOSED),
        (State.CN03, S, F.CREATE): Transition(State.SF01A),
        (State.CN03, S, F.SELECT): Transition(State.SF02A),
        (State.CN03, S, F.RELEASE): Transition(State.CN04A),
        (State.CN04A, R, F.RELCONF): Transition(State.CLOSED),
        (State.SF01A, R, F.ACK_CREATE): Transition(State.SF03, State.CN03),
        (State.SF02A, R, F.ACK_SELECT): Transition(State.SF03, State.CN03),
        (State.SF03, S, F.ORF): Transition(State.OF01A),
        (State.SF03, S, F.DESELECT): Transition(State.SF04A),
        (State.SF04A, R, F.ACK_DESELECT): Transition(State.CN03, State.SF03),
        (State.OF01A, R, F.ACK_ORF): Transition(State.OF02, State.SF03),
        (State.OF02, S, F.WRITE): Transition(State.TDE01A),
        (State.OF02, S, F.READ): Transition(State.TDL01A),
        (State.OF02, S, F.CRF): Transition(State.OF03A),
        (State.OF03A, R, F.ACK_CRF): Transition(State.SF03, State.OF02),
        (State.TDE01A, R, F.ACK_WRITE): Transition(State.TDE02A, State.OF02),
        (State.TDL01A, R, F.ACK_READ): Transition(State.TDL02A, State.OF02),
    }
    table.update(_data_phase(sender=S, side="A", family="TDE"))
    table.update(_data_phase(sender=R, side="A", family="TDL"))
    return table


def _server() -> dict[Key, Transition]:
    table: dict[Key, Transition] = {
        (State.CN01, R, F.CONNECT): Transition(State.CN02B),
        (State.CN02B, S, F.ACONNECT): Transition(State.CN03),
        (State.CN02B, S, F.RCONNECT): Transition(State.CLOSED),
        (State.CN03, R, F.CREATE): Transition(State.SF01B),
        (State.CN03, R, F.SELECT): Transition(State.SF02B),
        (State.CN03, R, F.RELEASE): Transition(State.CN04B),
        (State.CN03, R, F.MSG): Transition(State.MSG01B),
        (State.CN03, R, F.MSGDM): Transition(State.MSG02B),
        (State.MSG02B, R, F.MSGMM): Transition(State.MSG02B),
        (State.MSG02B, R, F.MSGFM): Transition(State.MSG01B),
        (State.MSG01B, S, F.ACK_MSG): Transition(State.CN03, State.CN03),
        (State.CN04B, S, F.RELCONF): Transition(State.CLOSED),
        (State.SF01B, S, F.ACK_CREATE): Transition(State.SF03, State.CN03),
        (State.SF02B, S, F.ACK_SELECT): Transition(State.SF03, State.CN03),
        (State.SF03, R, F.ORF): Transition(State.OF01B),
        (State.SF03, R, F.DESELECT): Transition(State.SF04B),
        (State.SF04B, S, F.ACK_DESELECT): Transition(State.CN03, State.SF03),
        (State.OF01B, S, F.ACK_ORF): Transition(State.OF02, State.SF03),
        (State.OF02, R, F.WRITE): Transition(State.TDE01B),
        (State.OF02, R, F.READ): Transition(State.TDL01B),
        (State.OF02, R, F.CRF): Transition(State.OF03B),
        (State.OF03B, S, F.ACK_CRF): Transition(State.SF03, State.OF02),
        (State.TDE01B, S, F.ACK_WRITE): Transition(State.TDE02B, State.OF02),
        (State.TDL01B, S, F.ACK_READ): Transition(State.TDL02B, State.OF02),
    }
    table.update(_data_phase(sender=R, side="B", family="TDE"))
    table.update(_data_phase(sender=S, side="B", family="TDL"))
    return table


def _with_abort(table: dict[Key, Transition], role: Role) -> Mapping[Key, Transition]:
    """ABORT may be sent or received in every live state and always ends the connection."""
    for state in states_of(role):
        for direction in Direction:
            table[(state, direction, F.ABORT)] = Transition(State.CLOSED)
    return MappingProxyType(table)


def states_of(role: Role) -> list[State]:
    """The live states a role can be in (CLOSED excluded)."""
    other = "B" if role is Role.REQUESTER else "A"
    return [s for s in State if s is not State.CLOSED and not s.name.endswith(other)]


TABLES: Mapping[Role, Mapping[Key, Transition]] = MappingProxyType(
    {
        Role.REQUESTER: _with_abort(_requester(), Role.REQUESTER),
        Role.SERVER: _with_abort(_server(), Role.SERVER),
    },
)

# States where the next move belongs to the peer: the Tp watchdog runs there.
_PEER_TURN = {
    Role.REQUESTER: frozenset(
        {
            State.CN02A, State.CN04A, State.SF01A, State.SF02A, State.SF04A, State.OF01A,
            State.OF03A, State.TDE01A, State.TDE05A, State.TDE08A, State.TDL01A,
            State.TDL02A, State.TDL05A, State.TDL08A,
        },
    ),
    Role.SERVER: frozenset(
        {
            State.SF03, State.OF02, State.MSG02B, State.TDE02B, State.TDE05B, State.TDE07B,
            State.TDL05B, State.TDL07B,
        },
    ),
}  # fmt: skip


def awaits_peer(role: Role, state: State) -> bool:
    return state in _PEER_TURN[role]


def keeps_state(role: Role, direction: Direction, kinds: Iterable[FpduType]) -> frozenset[State]:
    """The states where every one of `kinds` may go `direction` and leaves the state as it
    was (not dropped, no negative answer): where the data phase's fast paths may skip the
    table for each FPDU, having checked it once."""
    table = TABLES[role]
    found: frozenset[State] | None = None
    for kind in kinds:
        states = frozenset(
            state
            for (state, way, each), transition in table.items()
            if way is direction
            and each is kind
            and transition.ok is state
            and transition.ko is None
            and not transition.ignore
        )
        found = states if found is None else found & states
    return found or frozenset()


class Machine:
    """Current state of one role plus the checks that make every move go through the table."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = State.CN01
        self._table = TABLES[role]

    def allows(self, direction: Direction, kind: FpduType) -> bool:
        return (self.state, direction, kind) in self._table

    def receive(self, kind: FpduType, *, ok: bool = True) -> Transition:
        """Apply a received FPDU; not in the table → `PesitError` 3/311 (answer: ABORT)."""
        transition = self._table.get((self.state, R, kind))
        if transition is None:
            raise PesitError(
                Diagnostic.PROTOCOL_ERROR, f"{kind.name} not allowed in {self.state.name}"
            )
        self.state = _target(transition, ok=ok)
        return transition

    def close(self) -> None:
        """End outside the table: transport lost, a timer fired, a pre-connection refused."""
        self.state = State.CLOSED

    def send(self, kind: FpduType, *, ok: bool = True) -> None:
        """Apply an FPDU we are about to send; not allowed → `PesitLocalError`, no change."""
        transition = self._table.get((self.state, S, kind))
        if transition is None:
            raise PesitLocalError(
                Diagnostic.PROTOCOL_ERROR,
                f"{self.role.value} may not send {kind.name} in {self.state.name}",
            )
        self.state = _target(transition, ok=ok)


def _target(transition: Transition, *, ok: bool) -> State:
    if not ok and transition.ko is not None:
        return transition.ko
    return transition.ok
