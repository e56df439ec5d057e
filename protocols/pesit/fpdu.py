"""The FPDU codec (pesit.md §3-§4): a 6-byte header, then parameter units or file data.

One `Fpdu` dataclass for every type: `params` for the parameter-carrying FPDUs, `data` for the
DTF family (the articles of a DTF, the one segment of a DTFDA/DTFMA/DTFFA). Encoders are
strict, the decoder lenient but total: anything malformed raises a `DecodeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from protocols.pesit.diagnostics import DecodeError, Diagnostic, Fault, PesitLocalError
from protocols.pesit.pi import PI, Params, decode_params, encode_params

__all__ = [
    "CONCATENABLE",
    "DATA_FAMILY",
    "HEADER_SIZE",
    "Fpdu",
    "FpduType",
    "Header",
    "decode_fpdu",
    "decode_header",
    "encode_fpdu",
    "encode_parts",
    "split_fpdus",
]

HEADER_SIZE = 6
MAX_FPDU_SIZE = 0xFFFF
PHASE_CONNECTION = 0x40
PHASE_DATA = 0x00
PHASE_OTHER = 0xC0
_HEADER = struct.Struct(">HBBBB")


class FpduType(Enum):
    """Phase and type bytes of each FPDU (pesit.md §4)."""

    __hash__ = object.__hash__  # looked up in sets and tables for every FPDU: hash in C

    CONNECT = (PHASE_CONNECTION, 0x20)
    ACONNECT = (PHASE_CONNECTION, 0x21)
    RCONNECT = (PHASE_CONNECTION, 0x22)
    RELEASE = (PHASE_CONNECTION, 0x23)
    RELCONF = (PHASE_CONNECTION, 0x24)
    ABORT = (PHASE_CONNECTION, 0x25)
    READ = (PHASE_OTHER, 0x01)
    WRITE = (PHASE_OTHER, 0x02)
    SYN = (PHASE_OTHER, 0x03)
    DTF_END = (PHASE_OTHER, 0x04)
    RESYN = (PHASE_OTHER, 0x05)
    IDT = (PHASE_OTHER, 0x06)
    TRANS_END = (PHASE_OTHER, 0x08)
    CREATE = (PHASE_OTHER, 0x11)
    SELECT = (PHASE_OTHER, 0x12)
    DESELECT = (PHASE_OTHER, 0x13)
    ORF = (PHASE_OTHER, 0x14)
    CRF = (PHASE_OTHER, 0x15)
    MSG = (PHASE_OTHER, 0x16)
    MSGDM = (PHASE_OTHER, 0x17)
    MSGMM = (PHASE_OTHER, 0x18)
    MSGFM = (PHASE_OTHER, 0x19)
    ACK_CREATE = (PHASE_OTHER, 0x30)
    ACK_SELECT = (PHASE_OTHER, 0x31)
    ACK_DESELECT = (PHASE_OTHER, 0x32)
    ACK_ORF = (PHASE_OTHER, 0x33)
    ACK_CRF = (PHASE_OTHER, 0x34)
    ACK_READ = (PHASE_OTHER, 0x35)
    ACK_WRITE = (PHASE_OTHER, 0x36)
    ACK_TRANS_END = (PHASE_OTHER, 0x37)
    ACK_SYN = (PHASE_OTHER, 0x38)
    ACK_RESYN = (PHASE_OTHER, 0x39)
    ACK_IDT = (PHASE_OTHER, 0x3A)
    ACK_MSG = (PHASE_OTHER, 0x3B)
    DTF = (PHASE_DATA, 0x00)
    DTFMA = (PHASE_DATA, 0x40)
    DTFDA = (PHASE_DATA, 0x41)
    DTFFA = (PHASE_DATA, 0x42)

    @property
    def phase(self) -> int:
        return self.value[0]

    @property
    def type_byte(self) -> int:
        return self.value[1]


_BY_BYTES: MappingProxyType[tuple[int, int], FpduType] = MappingProxyType(
    {kind.value: kind for kind in FpduType},
)
DATA_FAMILY = frozenset({FpduType.DTF, FpduType.DTFDA, FpduType.DTFMA, FpduType.DTFFA})
CONCATENABLE = DATA_FAMILY | {FpduType.DTF_END, FpduType.SYN}
_SYNC_KINDS = frozenset({FpduType.SYN, FpduType.ACK_SYN})
_SYNC_NUMBER = int(PI.SYNC_NUMBER)  # a plain int, as `decode_params` gives codes


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 6 bytes: total length, type, ID.DST and the sixth byte (ID.SRC or count)."""

    length: int
    kind: FpduType
    dst: int
    src: int


@dataclass(frozen=True, slots=True)
class Fpdu:
    """One FPDU. `src` is ID.SRC for connection FPDUs, 0 elsewhere; a DTF derives byte 6."""

    kind: FpduType
    dst: int = 0
    src: int = 0
    params: Params = field(default_factory=Params)
    data: tuple[bytes, ...] = ()


# -- writing ---------------------------------------------------------------------------------


def encode_fpdu(fpdu: Fpdu) -> bytes:
    """The FPDU with its header; raises `PesitLocalError` for anything PeSIT cannot carry."""
    return b"".join(encode_parts(fpdu))


def encode_parts(fpdu: Fpdu) -> list[bytes]:
    """`encode_fpdu` in pieces (header first), so that article data is never copied."""
    if fpdu.kind in DATA_FAMILY:
        sixth, body = _encode_data(fpdu)
    else:
        if fpdu.data:
            raise _refuse(f"{fpdu.kind.name} carries parameters, not data")
        sixth, body = fpdu.src, [encode_params(fpdu.params)]
    length = HEADER_SIZE + sum(map(len, body))
    if length > MAX_FPDU_SIZE:
        raise _refuse(f"{fpdu.kind.name} would be {length} bytes (max {MAX_FPDU_SIZE})")
    for name, byte in (("ID.DST", fpdu.dst), ("byte 6", sixth)):
        if not 0 <= byte <= 0xFF:
            raise _refuse(f"{name} {byte} is not a byte")
    phase, type_byte = fpdu.kind.value
    return [_HEADER.pack(length, phase, type_byte, fpdu.dst, sixth), *body]


def _encode_data(fpdu: Fpdu) -> tuple[int, list[bytes]]:
    if fpdu.params:
        raise _refuse(f"{fpdu.kind.name} carries data, not parameters")
    if fpdu.kind is not FpduType.DTF:
        if len(fpdu.data) != 1:
            raise _refuse(f"{fpdu.kind.name} carries exactly one article segment")
        return fpdu.src, [fpdu.data[0]]
    if fpdu.src:
        raise _refuse("a DTF's byte 6 is its article count, not an ID.SRC")
    count = len(fpdu.data)
    if count == 1:
        return 0, [fpdu.data[0]]
    if not 2 <= count <= 0xFF:
        raise _refuse(f"a DTF carries 1 to 255 articles, not {count}")
    parts: list[bytes] = []
    for article in fpdu.data:
        if len(article) > 0xFFFF:
            raise _refuse(f"article of {len(article)} bytes in a multi-article DTF")
        parts += (len(article).to_bytes(2, "big"), article)
    return count, parts


def _refuse(reason: str) -> PesitLocalError:
    return PesitLocalError(Diagnostic.PROTOCOL_ERROR, reason)


# -- reading ---------------------------------------------------------------------------------


def decode_header(data: bytes | memoryview) -> Header:
    """The header alone (the recordings keep only this much of a DTF)."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(Fault.TRUNCATED, f"FPDU header needs 6 bytes, got {len(data)}")
    length = int.from_bytes(data[:2], "big")
    kind = _BY_BYTES.get((data[2], data[3]))
    if kind is None:
        raise DecodeError(Fault.UNKNOWN_TYPE, f"phase {data[2]:#04x} type {data[3]:#04x}")
    return Header(length, kind, data[4], data[5])


def decode_fpdu(data: bytes | memoryview) -> Fpdu:
    """Exactly one FPDU: its length field must match `data` to the byte.

    `data` may be a view of a receive buffer: what the `Fpdu` keeps is copied out of it once.
    """
    header = decode_header(data)
    if header.length != len(data):
        raise DecodeError(
            Fault.LENGTH_MISMATCH, f"{header.kind.name} says {header.length}, got {len(data)}"
        )
    body = memoryview(data)[HEADER_SIZE:]
    if header.kind is FpduType.DTF:
        return Fpdu(header.kind, header.dst, 0, data=_decode_articles(header.src, body))
    if header.kind in DATA_FAMILY:
        return Fpdu(header.kind, header.dst, header.src, data=(bytes(body),))
    if header.kind in _SYNC_KINDS and _is_sync_number(body):  # one per entity: skip the parser
        params = Params(((_SYNC_NUMBER, int.from_bytes(body[2:], "big")),))
        return Fpdu(header.kind, header.dst, header.src, params)
    return Fpdu(header.kind, header.dst, header.src, decode_params(bytes(body)))


def _is_sync_number(body: memoryview) -> bool:
    """Exactly one PI 20 of 1 to 3 bytes: what `decode_params` would read as that number."""
    return 3 <= len(body) <= 5 and body[0] == _SYNC_NUMBER and body[1] == len(body) - 2


def _decode_articles(count: int, body: memoryview) -> tuple[bytes, ...]:
    """Byte 6 = 0: the body is one article; N: N articles, each `[len:2][bytes]`."""
    if count == 0:
        return (bytes(body),)
    articles, pos, total = [], 0, len(body)
    for _ in range(count):
        size = int.from_bytes(_take(body, pos, 2, "article length"), "big")
        articles.append(bytes(_take(body, pos + 2, size, "article")))
        pos += 2 + size
    if pos < total:
        raise DecodeError(
            Fault.LENGTH_MISMATCH, f"{total - pos} bytes after {count} articles of a DTF"
        )
    return tuple(articles)


def _take(view: memoryview, pos: int, count: int, what: str) -> memoryview:
    """`count` bytes of `view` at `pos`, or the truncation error a `Cursor` would raise."""
    left = len(view) - pos
    if count > left:
        raise DecodeError(Fault.TRUNCATED, f"{what}: {count} bytes needed, {left} left")
    return view[pos : pos + count]


def split_fpdus(unit: bytes | memoryview) -> list[Fpdu]:
    """The FPDUs of one NSDU; only the DTF/SYN family may share one (pesit.md §2)."""
    view = memoryview(unit)
    fpdus: list[Fpdu] = []
    pos = 0
    while pos < len(view) or not fpdus:
        length = int.from_bytes(_take(view, pos, 2, "FPDU length"), "big")
        if length < HEADER_SIZE:
            raise DecodeError(Fault.LENGTH_MISMATCH, f"FPDU length {length} below its header")
        _take(view, pos + 2, length - 2, "FPDU")
        fpdus.append(decode_fpdu(view[pos : pos + length]))
        pos += length
    if len(fpdus) > 1 and any(fpdu.kind not in CONCATENABLE for fpdu in fpdus):
        names = ", ".join(fpdu.kind.name for fpdu in fpdus)
        raise DecodeError(Fault.BAD_CONCATENATION, names)
    return fpdus
