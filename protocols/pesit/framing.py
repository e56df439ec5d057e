"""Cutting the TCP/TLS byte stream into PeSIT units (pesit.md §2).

Three shapes of unit travel: the optional 24-byte EBCDIC pre-connection, its 4-byte answer
(ACK0/NAK0), and NSDUs holding FPDUs. Each may or may not carry the 2-byte length prefix
depending on the stack; a server detects which from the first bytes, a requester is told.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from protocols.pesit.diagnostics import DecodeError, Diagnostic, Fault, PesitLocalError
from protocols.pesit.fpdu import HEADER_SIZE

__all__ = [
    "ACK0",
    "NAK0",
    "PRECONNECTION_SIZE",
    "Framing",
    "PreConnection",
    "UnitReader",
    "decode_preconnection",
    "encode_preconnection",
    "frame",
    "prefix",
]

EBCDIC = "cp500"
PRECONNECTION_SIZE = 24
MAGIC = "PESIT   ".encode(EBCDIC)
ACK0 = "ACK0".encode(EBCDIC)
NAK0 = "NAK0".encode(EBCDIC)
_PREFIXED_PRECONNECTION = PRECONNECTION_SIZE.to_bytes(2, "big") + MAGIC[:5]
_PREFIXED_ANSWER = len(ACK0).to_bytes(2, "big")
_DETECT_SIZE = len(_PREFIXED_PRECONNECTION)
_CONNECT_PHASE, _CONNECT_TYPE = 0x40, 0x20


class Framing(Enum):
    """PREFIXED: each unit after a 2-byte length; RAW: none; AUTO: server-side detection."""

    PREFIXED = "prefixed"
    RAW = "raw"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class PreConnection:
    """The pre-connection's caller id and password, blanks stripped."""

    caller_id: str
    password: str


def frame(unit: bytes, framing: Framing) -> bytes:
    """One unit ready for the wire; `framing` must be decided (not AUTO)."""
    return prefix(len(unit), framing) + unit


def prefix(size: int, framing: Framing) -> bytes:
    """What goes before a unit of `size` bytes: its length, or nothing (RAW)."""
    if framing is Framing.AUTO:
        raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, "framing not detected yet")
    if framing is Framing.RAW:
        return b""
    if size > 0xFFFF:
        raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, f"NSDU of {size} bytes")
    return size.to_bytes(2, "big")


def encode_preconnection(caller_id: str, password: str) -> bytes:
    """`PESIT` padded to 8, then id and password blank-padded to 8, all EBCDIC."""
    fields = []
    for name, value in (("caller id", caller_id), ("password", password)):
        if len(value) > 8 or not value.isascii() or not value.isprintable():
            raise PesitLocalError(Diagnostic.PARAMETER_ERROR, f"pre-connection {name} {value!r}")
        fields.append(value.ljust(8).encode(EBCDIC))
    return MAGIC + b"".join(fields)


def decode_preconnection(unit: bytes) -> PreConnection:
    if len(unit) != PRECONNECTION_SIZE:
        raise DecodeError(Fault.LENGTH_MISMATCH, f"pre-connection of {len(unit)} bytes")
    if unit[:8] != MAGIC:
        raise DecodeError(Fault.BAD_FRAMING, "pre-connection does not start with PESIT")
    caller_id = unit[8:16].decode(EBCDIC).rstrip()
    return PreConnection(caller_id, unit[16:24].decode(EBCDIC).rstrip())


class _Chunks:
    """Received bytes kept as the chunks they came in, read through a cursor.

    A unit that lies inside one chunk is handed out as a view of it (no copy); only a unit
    that spans chunks is joined. Consumed chunks are dropped whole, never shifted.
    """

    __slots__ = ("_head", "_pos", "_size", "_tail")

    def __init__(self) -> None:
        self._head = b""
        self._pos = 0
        self._tail: deque[bytes] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        if data:
            self._tail.append(bytes(data))  # no copy for bytes; a caller's buffer may change
            self._size += len(data)

    def peek(self, count: int) -> bytes:
        """Up to `count` bytes from the front, left in place (for short headers)."""
        out = self._head[self._pos : self._pos + count]
        for chunk in self._tail:
            if len(out) >= count:
                break
            out += chunk[: count - len(out)]
        return out

    def u16(self) -> int:
        """The first two bytes, big-endian (`len(self) >= 2`): a unit's length."""
        head, pos = self._head, self._pos
        if pos + 2 <= len(head):
            return head[pos] << 8 | head[pos + 1]
        return int.from_bytes(self.peek(2), "big")

    def take(self, count: int) -> memoryview:
        """The next `count` bytes (`count` <= len(self)), as a read-only view."""
        if self._pos == len(self._head):
            self._head, self._pos = self._tail.popleft(), 0
        end = self._pos + count
        self._size -= count
        if end <= len(self._head):
            view = memoryview(self._head)[self._pos : end]
            self._pos = end
            return view
        parts = [self._head[self._pos :]]
        need = count - len(parts[0])
        while need:
            chunk = self._tail.popleft()
            piece = chunk[:need]
            parts.append(piece)
            need -= len(piece)
            self._head, self._pos = chunk, len(piece)
        return memoryview(b"".join(parts))


class UnitReader:
    """Buffers received bytes and hands out whole units; never returns a partial one."""

    def __init__(self, framing: Framing) -> None:
        self._buffer = _Chunks()
        self._framing = framing
        self._auto = framing is Framing.AUTO

    @property
    def framing(self) -> Framing:
        return self._framing

    def feed(self, data: bytes) -> None:
        self._buffer.feed(data)

    def next_opening(self) -> tuple[bool, bytes] | None:
        """Server side, before CONNECT: (True, pre-connection) or (False, NSDU holding CONNECT).

        In AUTO mode the framing is detected again for each opening unit, so a prefixed
        pre-connection followed by a raw CONNECT (or the reverse) is still understood.
        """
        if len(self._buffer) < _DETECT_SIZE:
            return None
        if self._auto:
            self._framing = _detect(self._buffer.peek(_DETECT_SIZE))
        if self._starts_preconnection():
            unit = self._take_unit(fixed=PRECONNECTION_SIZE)
            return None if unit is None else (True, bytes(unit))
        unit = self._take_unit(fixed=None)
        if unit is None:
            return None
        self._auto = False
        return (False, bytes(unit))

    def _starts_preconnection(self) -> bool:
        start = self._buffer.peek(_DETECT_SIZE)
        if self._framing is Framing.RAW:
            return start.startswith(MAGIC[:5])
        return start.startswith(_PREFIXED_PRECONNECTION)

    def next_answer(self) -> bytes | None:
        """Requester side: ACK0 or NAK0, accepted with or without a length prefix."""
        if len(self._buffer) < 2:
            return None
        prefixed = self._buffer.peek(2) == _PREFIXED_ANSWER
        size = len(ACK0) + (2 if prefixed else 0)
        if len(self._buffer) < size:
            return None
        answer = bytes(self._buffer.take(size)[size - len(ACK0) :])
        if answer not in {ACK0, NAK0}:
            raise DecodeError(Fault.BAD_FRAMING, f"pre-connection answer {answer.hex(' ')}")
        return answer

    def next_nsdu(self) -> bytes | None:
        """One NSDU: after its prefix, or (RAW) one FPDU cut by its own length field."""
        unit = self._take_unit(fixed=None)
        return None if unit is None else bytes(unit)

    def next_view(self) -> memoryview | None:
        """`next_nsdu` without the copy: a read-only view of the received bytes."""
        return self._take_unit(fixed=None)

    def next_views(self) -> list[memoryview]:
        """Every whole NSDU held, in order: `next_view` until None, in one call."""
        buffer = self._buffer
        raw = self._framing is Framing.RAW
        start, minimum = (0, HEADER_SIZE) if raw else (2, 1)
        units: list[memoryview] = []
        while len(buffer) >= 2:
            size = buffer.u16()
            if size < minimum:
                raise DecodeError(Fault.LENGTH_MISMATCH, f"unit length {size}")
            if len(buffer) < start + size:
                break
            unit = buffer.take(start + size)
            units.append(unit[start:] if start else unit)
        return units

    def _take_unit(self, *, fixed: int | None) -> memoryview | None:
        raw = self._framing is Framing.RAW
        if raw and fixed is not None:
            size, start = fixed, 0
        else:
            if len(self._buffer) < 2:
                return None
            size = int.from_bytes(self._buffer.peek(2), "big")
            start = 0 if raw else 2
            if size < (HEADER_SIZE if raw else 1):
                raise DecodeError(Fault.LENGTH_MISMATCH, f"unit length {size}")
        if len(self._buffer) < start + size:
            return None
        unit = self._buffer.take(start + size)
        return unit[start:] if start else unit


def _detect(start: bytes) -> Framing:
    """pesit.md §2: prefixed if bytes 0-1 == 2-3 and byte 4 is 0x40, raw CONNECT if 40 20."""
    if start.startswith(MAGIC[:5]):
        return Framing.RAW
    if start.startswith(_PREFIXED_PRECONNECTION):
        return Framing.PREFIXED
    if start[0:2] == start[2:4] and start[4] == _CONNECT_PHASE:
        return Framing.PREFIXED
    if start[2] == _CONNECT_PHASE and start[3] == _CONNECT_TYPE:
        return Framing.RAW
    raise DecodeError(Fault.BAD_FRAMING, f"neither pre-connection nor CONNECT: {start.hex(' ')}")
