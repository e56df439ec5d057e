"""PeSIT diagnostics (PI 2) and the errors that carry them.

Every PeSIT error names the diagnostic to put on the wire, so the connection never has to
guess what to answer: a peer's fault becomes an ABORT (or a negative ACK) with that code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocols.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DecodeError",
    "Diagnostic",
    "DiagnosticCode",
    "Fault",
    "PesitError",
    "PesitLocalError",
]


@dataclass(frozen=True, slots=True)
class DiagnosticCode:
    """A PI 2 value as it travels: a type byte and the 16-bit whole number (2/205 = 02 00 CD).

    Kept apart from `Diagnostic` because peers send codes this module does not name.
    """

    type: int
    code: int

    @classmethod
    def from_bytes(cls, value: bytes) -> DiagnosticCode:
        if len(value) != 3:
            raise DecodeError(Fault.BAD_VALUE, f"PI 2 must be 3 bytes, got {len(value)}")
        return cls(value[0], int.from_bytes(value[1:], "big"))

    def to_bytes(self) -> bytes:
        if not (0 <= self.type <= 0xFF and 0 <= self.code <= 0xFFFF):
            raise PesitLocalError(Diagnostic.PARAMETER_ERROR, f"diagnostic {self} out of range")
        return bytes([self.type]) + self.code.to_bytes(2, "big")

    @property
    def ok(self) -> bool:
        """Success is all zeros; anything else makes an ACK negative."""
        return self.type == 0 and self.code == 0

    @property
    def known(self) -> Diagnostic | None:
        return _BY_CODE.get(self)

    def __str__(self) -> str:
        return f"{self.type}/{self.code:03d}"


class Diagnostic(Enum):
    """The diagnostics of pesit.md §9; the value is the whole number, the type its hundreds."""

    SUCCESS = 0
    CHARACTERISTICS_INSUFFICIENT = 200
    RESOURCES_SHORT_201 = 201
    RESOURCES_SHORT_202 = 202
    FILE_EXISTS = 204
    FILE_NOT_FOUND = 205
    QUOTA_EXCEEDED = 206
    FILE_BUSY = 207
    MESSAGE_TYPE_REFUSED = 209
    CANNOT_OPEN = 211
    CANNOT_CLOSE = 212
    IO_ERROR = 213
    RESTART_NEGOTIATION_FAILED = 214
    SYSTEM_ERROR = 215
    VOLUNTARY_STOP = 216
    TOO_MANY_UNACKNOWLEDGED_SYNC = 217
    SPACE_EXHAUSTED = 219
    ARTICLE_TOO_LONG = 220
    END_TIMER = 221
    TOO_MUCH_DATA_WITHOUT_SYNC = 222
    ABNORMAL_END = 223
    LARGER_THAN_ANNOUNCED = 224
    APPLICATION_CONGESTED = 225
    TRANSFER_REFUSED = 226
    FILE_OTHER = 299
    ID_UNKNOWN = 301
    REMOTE_CONGESTION = 303
    NOT_AUTHORISED = 304
    SELECT_NEGOTIATION_FAILED = 305
    RESYNC_NEGOTIATION_FAILED = 306
    SYNC_NEGOTIATION_FAILED = 307
    VERSION_NOT_SUPPORTED = 308
    TOO_MANY_CONNECTIONS = 309
    PROTOCOL_ERROR = 311
    RELEASE_REQUESTED = 312
    IDLE_TIMEOUT = 313
    NEGOTIATION_FAILURE = 315
    CUT_BY_ADMINISTRATION = 316
    TIMER_EXPIRED = 317
    PARAMETER_ERROR = 318
    WRONG_COUNTS = 319
    CONNECTION_OTHER = 399

    @property
    def code(self) -> DiagnosticCode:
        return DiagnosticCode(self.value // 100, self.value)

    @property
    def wire(self) -> bytes:
        """The 3-byte PI 2 value."""
        return self.code.to_bytes()

    def __str__(self) -> str:
        return f"{self.code} {self.name.lower()}"


_BY_CODE = {member.code: member for member in Diagnostic}


class PesitError(RemoteProtocolError):
    """The peer broke the protocol; `diagnostic` is what we answer (ABORT or negative ACK)."""

    def __init__(self, diagnostic: Diagnostic, reason: str) -> None:
        super().__init__(f"{diagnostic}: {reason}")
        self.diagnostic = diagnostic
        self.reason = reason


class PesitLocalError(LocalProtocolError):
    """We were asked to do what PeSIT forbids here; nothing was sent, state is unchanged."""

    def __init__(self, diagnostic: Diagnostic, reason: str) -> None:
        super().__init__(f"{diagnostic}: {reason}")
        self.diagnostic = diagnostic
        self.reason = reason


class Fault(Enum):
    """What exactly was wrong with bytes that do not decode; each maps to one diagnostic."""

    TRUNCATED = "truncated"
    LENGTH_MISMATCH = "length mismatch"
    UNKNOWN_TYPE = "unknown phase/type"
    BAD_FRAMING = "unrecognised framing"
    BAD_CONCATENATION = "FPDU not allowed in a concatenated NSDU"
    ZERO_LENGTH = "LI = 0"
    BAD_VALUE = "illegal parameter value"
    DUPLICATE = "parameter repeated"
    MISSING = "mandatory parameter missing"

    @property
    def diagnostic(self) -> Diagnostic:
        """Structure faults are protocol errors (3/311); parameter faults are 3/318."""
        if self in _PARAMETER_FAULTS:
            return Diagnostic.PARAMETER_ERROR
        return Diagnostic.PROTOCOL_ERROR


_PARAMETER_FAULTS = frozenset(
    {Fault.ZERO_LENGTH, Fault.BAD_VALUE, Fault.DUPLICATE, Fault.MISSING},
)


class DecodeError(PesitError):
    """Bytes from the peer that are not a well-formed PeSIT unit; `fault` says which rule."""

    def __init__(self, fault: Fault, reason: str) -> None:
        super().__init__(fault.diagnostic, f"{fault.value}: {reason}")
        self.fault = fault
