"""The data phase's fast paths: the few FPDUs a transfer is made of, in few steps.

A transfer is DTF, SYN, DTF, SYN… one way and ACK(SYN) the other way. In the states where the
table keeps the state for those FPDUs (`keeps_state`), checking the table once per call is
checking it for each FPDU, and they can be encoded and decoded without building `Fpdu` or
`Params` objects. The connection takes these paths only there, and only for the plain forms
(whole articles in a DTF, PI 20 alone in a SYN); anything else goes the general way, which
also raises every error. Tests hold both ways to the same bytes and the same events.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from protocols.pesit.events import Event, SyncPointAcknowledged
from protocols.pesit.fpdu import DATA_FAMILY, HEADER_SIZE, PHASE_DATA, Fpdu, FpduType, encode_parts
from protocols.pesit.framing import Framing, prefix
from protocols.pesit.output import Output
from protocols.pesit.pi import PI
from protocols.pesit.state import Direction, Role, State, keeps_state
from protocols.pesit.transfer import DataReceiver, DataSender

__all__ = [
    "FAST_STATES",
    "FastStates",
    "data_head",
    "dtf_articles",
    "encode_data",
    "plain_events",
    "plain_unit",
    "sync_number",
    "sync_unit",
]

F = FpduType
_HEADER = struct.Struct(">HBBBB")
_PREFIXED_HEADER = struct.Struct(">HHBBBB")
_SYNC_HEAD = struct.Struct(">HBBBBBB")
_SYNC_PI = int(PI.SYNC_NUMBER)
_KINDS = {F.DTF.value: F.DTF, F.SYN.value: F.SYN, F.ACK_SYN.value: F.ACK_SYN}
_TYPE_BYTES = {kind: kind.value for kind in _KINDS.values()}  # enum `.value` costs two calls


class FastStates:
    """Where the data phase's FPDUs leave one role's state as it is."""

    def __init__(self, role: Role) -> None:
        send, receive = Direction.SEND, Direction.RECEIVE
        self.data_in: frozenset[State] = keeps_state(role, receive, (F.DTF, F.SYN))
        self.data_out: frozenset[State] = keeps_state(role, send, (*DATA_FAMILY, F.SYN))
        self.ack_in: frozenset[State] = keeps_state(role, receive, (F.ACK_SYN,))
        self.ack_out: frozenset[State] = keeps_state(role, send, (F.ACK_SYN,))


FAST_STATES: Mapping[Role, FastStates] = MappingProxyType({r: FastStates(r) for r in Role})


# -- writing ---------------------------------------------------------------------------------


def data_head(size: int, dst: int, *, prefixed: bool) -> bytes:
    """What goes before a one-article DTF of `size` bytes (with its NSDU prefix if
    `prefixed`): the first part `encode_parts` gives, without building the FPDU. The caller
    keeps `size` within the entity and `dst` a byte, as `DataSender` does."""
    length = HEADER_SIZE + size
    if prefixed:
        return _PREFIXED_HEADER.pack(length, length, PHASE_DATA, 0, dst, 0)
    return _HEADER.pack(length, PHASE_DATA, 0, dst, 0)


def sync_unit(kind: FpduType, dst: int, number: int, *, prefixed: bool) -> bytes | None:
    """A whole SYN or ACK(SYN) carrying PI 20 = `number`, byte for byte what `encode_fpdu`
    writes (NSDU prefix included if `prefixed`); None if `number` does not fit PI 20 (N3)."""
    if not 0 <= number < 1 << 24:
        return None
    value = number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")
    length = HEADER_SIZE + 2 + len(value)
    phase, type_byte = _TYPE_BYTES.get(kind) or kind.value
    unit = _SYNC_HEAD.pack(length, phase, type_byte, dst, 0, _SYNC_PI, len(value)) + value
    return length.to_bytes(2, "big") + unit if prefixed else unit


def encode_data(fpdus: Sequence[Fpdu], out: Output, *, dst: int, framing: Framing) -> None:
    """Queue `DataSender`'s FPDUs (the data family and SYNs, all for `dst`) once the table
    was checked for them: the plain ones encoded in place, the others by `encode_parts`."""
    prefixed = framing is Framing.PREFIXED
    for fpdu in fpdus:
        if fpdu.kind is F.DTF and len(fpdu.data) == 1:
            article = fpdu.data[0]
            out.add(data_head(len(article), dst, prefixed=prefixed))
            out.add(article)
            continue
        unit = None
        if fpdu.kind is F.SYN:
            unit = sync_unit(F.SYN, dst, fpdu.params.require_number(PI.SYNC_NUMBER),
                             prefixed=prefixed)  # fmt: skip
        if unit is not None:
            out.add(unit)
            continue
        parts = encode_parts(fpdu)
        parts[0] = prefix(sum(map(len, parts)), framing) + parts[0]
        if len(parts) > 2:  # several articles: one piece, not one per length and article
            out.add(b"".join(parts))
        else:
            for part in parts:
                out.add(part)


# -- reading ---------------------------------------------------------------------------------


def plain_unit(unit: bytes | memoryview, local_id: int) -> tuple[FpduType, int] | None:
    """(DTF, n) for a DTF of n articles (0: the body is the one article), (SYN, n) or
    (ACK(SYN), n) with PI 20 = n alone, 1 to 3 bytes; addressed to `local_id` and alone in
    `unit`. None for anything else."""
    size = len(unit)
    if size < HEADER_SIZE or unit[0] << 8 | unit[1] != size or unit[4] != local_id:
        return None
    kind = _KINDS.get((unit[2], unit[3]))
    if kind is F.DTF:
        return (kind, unit[5]) if unit[5] != 1 else None
    if kind is None or unit[5]:
        return None
    number = sync_number(unit)
    return None if number is None else (kind, number)


def plain_events(
    unit: bytes | memoryview,
    *,
    local_id: int,
    state: State,
    fast: FastStates,
    receiver: DataReceiver | None,
    sender: DataSender | None,
) -> list[Event] | None:
    """What the general path would emit for a plain DTF, SYN or ACK(SYN) where the table
    keeps `state`, without building the FPDU; None: the general path's turn (it also raises
    whatever the unit breaks)."""
    plain = plain_unit(unit, local_id)
    if plain is None:
        return None
    kind, number = plain
    if kind is F.DTF and receiver is not None and state in fast.data_in:
        articles = dtf_articles(unit, number)
        return None if articles is None else list(receiver.whole(articles))
    if kind is F.SYN and receiver is not None and state in fast.data_in:
        return [receiver.syn(number)]
    if kind is F.ACK_SYN and sender is not None and state in fast.ack_in:
        return [SyncPointAcknowledged(position) for position in sender.acknowledge(number)]
    return None


def dtf_articles(unit: bytes | memoryview, count: int) -> list[bytes] | None:
    """The articles of a plain DTF (`count` from `plain_unit`), each copied out once; None
    if the body is not exactly `count` length-prefixed articles (the general decoder says
    what is wrong)."""
    body = memoryview(unit)[HEADER_SIZE:]
    if not count:
        return [bytes(body)]
    articles, pos, end = [], 0, len(body)
    for _ in range(count):
        if pos + 2 > end:
            return None
        start = pos + 2
        pos = start + (body[pos] << 8 | body[pos + 1])
        if pos > end:
            return None
        articles.append(bytes(body[start:pos]))
    return articles if pos == end else None


def sync_number(unit: bytes | memoryview) -> int | None:
    """PI 20 of a SYN or ACK(SYN) whose body is exactly that PI, 1 to 3 bytes long."""
    size = len(unit)
    if not HEADER_SIZE + 3 <= size <= HEADER_SIZE + 5:
        return None
    if unit[HEADER_SIZE] != _SYNC_PI or unit[HEADER_SIZE + 1] != size - HEADER_SIZE - 2:
        return None
    return int.from_bytes(unit[HEADER_SIZE + 2 :], "big")
