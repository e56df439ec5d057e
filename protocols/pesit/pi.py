"""PeSIT parameter units (PI) and groups (PGI): `[code:1][LI][value]`, pesit.md §5.

Writing is strict (ascending codes, each once, minimal integers, ASCII text within its limit);
reading is lenient (any order, fixed-width integers, unknown codes kept as raw bytes, empty
groups as vendors send them) but never lets malformed bytes through untyped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import TypeVar, overload

from protocols.pesit.diagnostics import (
    DecodeError,
    Diagnostic,
    DiagnosticCode,
    Fault,
    PesitLocalError,
)

__all__ = ["PI", "Cursor", "Kind", "Params", "Spec", "SyncPoints", "Value", "spec_of"]


class PI(IntEnum):
    """Parameter codes of pesit.md §5 (groups are PGIs: 9, 30, 40, 50)."""

    CRC = 1
    DIAGNOSTIC = 2
    REQUESTER_ID = 3
    SERVER_ID = 4
    ACCESS_CONTROL = 5
    VERSION = 6
    SYNC_POINTS = 7
    FILE_ID = 9
    FILE_TYPE = 11
    FILE_NAME = 12
    TRANSFER_ID = 13
    ATTRIBUTES_ASKED = 14
    RESTART = 15
    DATA_CODE = 16
    PRIORITY = 17
    RESTART_POINT = 18
    END_CODE = 19
    SYNC_NUMBER = 20
    COMPRESSION = 21
    ACCESS_TYPE = 22
    RESYNC = 23
    MAX_ENTITY_SIZE = 25
    BYTE_COUNT = 27
    ARTICLE_COUNT = 28
    DIAGNOSTIC_TEXT = 29
    LOGICAL_ATTRIBUTES = 30
    ARTICLE_FORMAT = 31
    ARTICLE_LENGTH = 32
    ORGANISATION = 33
    LABEL = 37
    PHYSICAL_ATTRIBUTES = 40
    ALLOCATION_UNIT = 41
    MAX_SIZE = 42
    HISTORICAL_ATTRIBUTES = 50
    CREATION_DATE = 51
    EXTRACTION_DATE = 52
    INITIAL_SENDER = 61
    FINAL_RECEIVER = 62
    FREE_MESSAGE = 99


class Kind(Enum):
    """How a value is written: C text, N unsigned, fixed blobs, D dates, PGI groups."""

    TEXT = "C"
    NUMBER = "N"
    DIAGNOSTIC = "diagnostic"
    SYNC = "sync"
    BYTES = "bytes"
    DATE = "D"
    GROUP = "PGI"


@dataclass(frozen=True, slots=True)
class Spec:
    """`size`: max characters (TEXT), width in bytes (NUMBER), exact bytes (BYTES, DATE)."""

    kind: Kind
    size: int = 0


def _n(width: int) -> Spec:
    return Spec(Kind.NUMBER, width)


def _c(limit: int) -> Spec:
    return Spec(Kind.TEXT, limit)


_GROUP = Spec(Kind.GROUP)
_DATE = Spec(Kind.DATE, 12)
_SPECS: MappingProxyType[int, Spec] = MappingProxyType(
    {
        PI.CRC: _n(1),
        PI.DIAGNOSTIC: Spec(Kind.DIAGNOSTIC, 3),
        PI.REQUESTER_ID: _c(24),
        PI.SERVER_ID: _c(24),
        PI.ACCESS_CONTROL: _c(16),
        PI.VERSION: _n(1),
        PI.SYNC_POINTS: Spec(Kind.SYNC, 3),
        PI.FILE_ID: _GROUP,
        PI.FILE_TYPE: _n(2),
        PI.FILE_NAME: _c(76),
        PI.TRANSFER_ID: _n(3),
        PI.ATTRIBUTES_ASKED: _n(1),
        PI.RESTART: _n(1),
        PI.DATA_CODE: _n(1),
        PI.PRIORITY: _n(1),
        PI.RESTART_POINT: _n(3),
        PI.END_CODE: _n(1),
        PI.SYNC_NUMBER: _n(3),
        PI.COMPRESSION: Spec(Kind.BYTES, 2),
        PI.ACCESS_TYPE: _n(1),
        PI.RESYNC: _n(1),
        PI.MAX_ENTITY_SIZE: _n(2),
        PI.BYTE_COUNT: _n(8),
        PI.ARTICLE_COUNT: _n(4),
        PI.DIAGNOSTIC_TEXT: _c(254),
        PI.LOGICAL_ATTRIBUTES: _GROUP,
        PI.ARTICLE_FORMAT: _n(1),
        PI.ARTICLE_LENGTH: _n(2),
        PI.ORGANISATION: _n(1),
        PI.LABEL: _c(254),
        PI.PHYSICAL_ATTRIBUTES: _GROUP,
        PI.ALLOCATION_UNIT: _n(1),
        PI.MAX_SIZE: _n(4),
        PI.HISTORICAL_ATTRIBUTES: _GROUP,
        PI.CREATION_DATE: _DATE,
        PI.EXTRACTION_DATE: _DATE,
        PI.INITIAL_SENDER: _c(24),
        PI.FINAL_RECEIVER: _c(24),
        PI.FREE_MESSAGE: _c(254),
    },
)
_RAW = Spec(Kind.BYTES, 0)  # unknown code: opaque bytes, any non-zero length


def spec_of(code: int) -> Spec | None:
    """The encoding rule of a known code; None for codes this module keeps as raw bytes."""
    return _SPECS.get(code)


@dataclass(frozen=True, slots=True)
class SyncPoints:
    """PI 7: the sync interval in KB (0 = no sync points) and the acknowledgement window."""

    interval_kb: int
    window: int


class Cursor:
    """Reads a byte string front to back; every overrun is a typed `DecodeError`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise DecodeError(
                Fault.TRUNCATED, f"{what}: {count} bytes needed, {self.remaining} left"
            )
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def uint16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")


@dataclass(frozen=True, slots=True)
class Params:
    """The parameter units of one FPDU (or one PGI), in the order they were given or read."""

    units: tuple[tuple[int, Value], ...] = ()

    @classmethod
    def of(cls, *pairs: tuple[int, Value | None]) -> Params:
        """Build from (code, value) pairs, skipping None so optional PIs read naturally."""
        return cls(tuple((int(code), value) for code, value in pairs if value is not None))

    def __contains__(self, code: object) -> bool:
        return any(unit_code == code for unit_code, _ in self.units)

    def __bool__(self) -> bool:
        return bool(self.units)

    def get(self, code: int) -> Value | None:
        for unit_code, value in self.units:
            if unit_code == code:
                return value
        return None

    @overload
    def number(self, code: int) -> int | None: ...
    @overload
    def number(self, code: int, default: int) -> int: ...
    def number(self, code: int, default: int | None = None) -> int | None:
        return _typed(self.get(code), int, code, default)

    @overload
    def text(self, code: int) -> str | None: ...
    @overload
    def text(self, code: int, default: str) -> str: ...
    def text(self, code: int, default: str | None = None) -> str | None:
        return _typed(self.get(code), str, code, default)

    def group(self, code: int) -> Params:
        """A PGI's content; an absent group reads as empty (vendors send empty ones too)."""
        return _typed(self.get(code), Params, code, Params())

    def diagnostic(self) -> DiagnosticCode:
        """PI 2; absent reads as success (lenient: some vendors omit it on plain ACKs)."""
        return _typed(self.get(PI.DIAGNOSTIC), DiagnosticCode, PI.DIAGNOSTIC, _SUCCESS)

    def sync_points(self) -> SyncPoints | None:
        return _typed(self.get(PI.SYNC_POINTS), SyncPoints, PI.SYNC_POINTS, None)

    def require_number(self, code: int) -> int:
        value = self.number(code)
        if value is None:
            raise DecodeError(Fault.MISSING, f"PI {code} is mandatory here")
        return value


Value = int | str | bytes | DiagnosticCode | SyncPoints | Params
_SUCCESS = Diagnostic.SUCCESS.code
_T = TypeVar("_T")


def _typed(value: Value | None, kind: type[_T], code: int, default: _T) -> _T:
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DecodeError(Fault.BAD_VALUE, f"PI {code} holds {type(value).__name__}")
    return value


# -- writing ---------------------------------------------------------------------------------


def encode_params(params: Params, *, nested: bool = False) -> bytes:
    """Units in ascending code order, each at most once (the strict half of the rule)."""
    if len(params.units) == 1:  # SYN, ACK(SYN), most ACKs: nothing to order or compare
        code, value = params.units[0]
        return _encode_unit(code, value, nested=nested)
    codes = [code for code, _ in params.units]
    if len(set(codes)) != len(codes):
        raise _refuse(f"repeated PI in {sorted(codes)}")
    ordered = sorted(params.units, key=lambda unit: unit[0])
    return b"".join(_encode_unit(code, value, nested=nested) for code, value in ordered)


def _encode_unit(code: int, value: Value, *, nested: bool) -> bytes:
    if not 0 <= code <= 0xFF:
        raise _refuse(f"PI code {code} is not a byte")
    spec = _SPECS.get(code, _RAW)
    if spec.kind is Kind.GROUP and nested:
        raise _refuse(f"PGI {code} inside a PGI")
    body = _encode_value(code, spec, value)
    if not body and spec.kind is not Kind.GROUP:
        raise _refuse(f"PI {code} would have LI = 0")
    return bytes([code]) + _encode_li(code, len(body)) + body


def _encode_li(code: int, length: int) -> bytes:
    if length < 0xFF:
        return bytes([length])
    if length > 0xFFFF:
        raise _refuse(f"PI {code} longer than 65535")
    return b"\xff" + length.to_bytes(2, "big")


def _encode_value(code: int, spec: Spec, value: Value) -> bytes:  # noqa: PLR0911
    kind = spec.kind
    if kind is Kind.GROUP:
        return encode_params(_expect(value, Params, code), nested=True)
    if kind is Kind.TEXT:
        return _encode_text(code, _expect(value, str, code), spec.size)
    if kind is Kind.DATE:
        date = _expect(value, str, code)
        if len(date) != 12 or not date.isascii() or not date.isdigit():
            raise _refuse(f"PI {code}: {date!r} not YYMMDDhhmmss")
        return date.encode("ascii")
    if kind is Kind.NUMBER:
        return _encode_number(code, _expect(value, int, code), spec.size)
    if kind is Kind.DIAGNOSTIC:
        return _expect(value, DiagnosticCode, code).to_bytes()
    if kind is Kind.SYNC:
        sync = _expect(value, SyncPoints, code)
        if not (0 <= sync.interval_kb <= 0xFFFF and 0 <= sync.window <= 0xFF):
            raise _refuse(f"PI 7 out of range: {sync}")
        return sync.interval_kb.to_bytes(2, "big") + bytes([sync.window])
    raw = _expect(value, bytes, code)
    if spec.size and len(raw) != spec.size:
        raise _refuse(f"PI {code} must be {spec.size} bytes")
    return raw


def _encode_text(code: int, text: str, limit: int) -> bytes:
    if not text.isascii():
        raise _refuse(f"PI {code}: text must be ASCII")
    if len(text) > limit:
        raise _refuse(f"PI {code}: over {limit} characters")
    return text.encode("ascii")


def _encode_number(code: int, number: int, width: int) -> bytes:
    if not 0 <= number < 1 << (8 * width):
        raise _refuse(f"PI {code}: {number} exceeds N{width}")
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def _expect(value: Value, kind: type[_T], code: int) -> _T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _refuse(f"PI {code} takes {kind.__name__}, not {type(value).__name__}")
    return value


def _refuse(reason: str) -> PesitLocalError:
    return PesitLocalError(Diagnostic.PARAMETER_ERROR, reason)


# -- reading ---------------------------------------------------------------------------------


def decode_params(data: bytes, *, nested: bool = False) -> Params:
    """Read units to the end of `data`; unknown codes stay raw, in the order met."""
    cursor = Cursor(data)
    units: list[tuple[int, Value]] = []
    seen: set[int] = set()
    while cursor.remaining:
        code = cursor.byte("PI code")
        if code in seen:
            raise DecodeError(Fault.DUPLICATE, f"PI {code} appears twice")
        seen.add(code)
        spec = _SPECS.get(code, _RAW)
        length = _read_li(cursor, code)
        if length == 0 and spec.kind is not Kind.GROUP:
            raise DecodeError(Fault.ZERO_LENGTH, f"PI {code} has LI = 0")
        body = cursor.take(length, f"PI {code} value")
        units.append((code, _decode_value(code, spec, body, nested=nested)))
    return Params(tuple(units))


def _read_li(cursor: Cursor, code: int) -> int:
    first = cursor.byte(f"PI {code} LI")
    return cursor.uint16(f"PI {code} long LI") if first == 0xFF else first


def _decode_value(code: int, spec: Spec, body: bytes, *, nested: bool) -> Value:
    kind = spec.kind
    if kind is Kind.GROUP:
        if nested:
            raise DecodeError(Fault.BAD_VALUE, f"PGI {code} nested in a PGI")
        return decode_params(body, nested=True)
    if kind in {Kind.TEXT, Kind.DATE}:
        return body.decode("latin-1")
    if kind is Kind.NUMBER:
        number = int.from_bytes(body, "big")
        if number >= 1 << (8 * spec.size):
            raise DecodeError(Fault.BAD_VALUE, f"PI {code}: {number} exceeds N{spec.size}")
        return number
    if kind is Kind.DIAGNOSTIC:
        return DiagnosticCode.from_bytes(body)
    if kind is Kind.SYNC:
        if len(body) != 3:
            raise DecodeError(Fault.BAD_VALUE, f"PI 7 must be 3 bytes, got {len(body)}")
        return SyncPoints(int.from_bytes(body[:2], "big"), body[2])
    if spec.size and len(body) != spec.size:
        raise DecodeError(Fault.BAD_VALUE, f"PI {code} must be {spec.size} bytes")
    return body
