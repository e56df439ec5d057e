"""AS2 errors: each remote error carries the MDN disposition modifier that answers it.

The endpoint never decides what to tell the partner: the modifier travels with the error
(architecture.md rule 3), so `processed/error: <modifier>` is built from `As2Error.modifier`.
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm

from protocols.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "As2BuildError",
    "As2Error",
    "As2LimitError",
    "FailureModifier",
    "MimeError",
    "Modifier",
    "reported_as",
]


class Modifier(StrEnum):
    """`processed/error:` modifiers (RFC 4130 §7.4.3, RFC 5402 for decompression)."""

    AUTHENTICATION_FAILED = "authentication-failed"
    DECRYPTION_FAILED = "decryption-failed"
    DECOMPRESSION_FAILED = "decompression-failed"
    INTEGRITY_CHECK_FAILED = "integrity-check-failed"
    INSUFFICIENT_MESSAGE_SECURITY = "insufficient-message-security"
    UNKNOWN_TRADING_PARTNER = "unknown-trading-partner"
    UNEXPECTED_PROCESSING_ERROR = "unexpected-processing-error"


class FailureModifier(StrEnum):
    """`failed/failure:` modifiers: the request itself cannot be honoured (RFC 4130 §7.5.3)."""

    UNSUPPORTED_FORMAT = "unsupported format"
    UNSUPPORTED_MIC_ALGORITHMS = "unsupported MIC-algorithms"
    SENDER_EQUALS_RECEIVER = "sender-equals-receiver"


class As2Error(RemoteProtocolError):
    """The partner's message is unacceptable; `modifier` is the MDN answer, `reason` the why."""

    def __init__(self, modifier: Modifier, reason: str) -> None:
        super().__init__(f"{modifier.value}: {reason}")
        self.modifier = modifier
        self.reason = reason


class As2LimitError(As2Error):
    """A size or ratio cap was hit (oversize body, zip bomb): refuse before holding more."""


class MimeError(As2Error):
    """Malformed MIME structure (headers, multipart framing, transfer encoding)."""

    def __init__(
        self, reason: str, modifier: Modifier = Modifier.UNEXPECTED_PROCESSING_ERROR
    ) -> None:
        super().__init__(modifier, reason)


class As2BuildError(LocalProtocolError):
    """We were asked to build something AS2 forbids (header injection, outbound 3DES...)."""


# Exceptions third-party parsers raise on hostile input; translated at this edge only.
_FOREIGN = (
    ValueError,  # asn1crypto, int parsing, binascii.Error, UnicodeDecodeError
    TypeError,  # asn1crypto on wrong ASN.1 shapes
    KeyError,
    IndexError,
    OverflowError,
    zlib.error,
    InvalidSignature,
    InvalidTag,
    UnsupportedAlgorithm,
    binascii.Error,
)


@contextmanager
def reported_as(modifier: Modifier, what: str) -> Iterator[None]:
    """Turn a parser's bare exception into an `As2Error` with the modifier of this step."""
    try:
        yield
    except As2Error:
        raise
    except _FOREIGN as exc:
        detail = str(exc)[:200] or type(exc).__name__
        raise As2Error(modifier, f"{what}: {detail}") from exc
