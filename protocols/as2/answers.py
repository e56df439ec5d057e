"""What a refused AS2 message is answered with: the MDN disposition, an HTTP status, labels.

One table per question so that an endpoint never improvises: an `As2Error` already carries its
modifier; a refusal of the inbox port (`TransferRefused`) is mapped here; the HTTP status is the
answer when no MDN can carry it (none asked for, or the partner is not known). Our own failure
(`unavailable`) is never an MDN: a negative MDN is final for the sender, a 503 asks it to retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from protocols.as2.errors import As2Error, As2LimitError, FailureModifier, Modifier
from protocols.as2.mdn import Disposition, DispositionType
from protocols.ports import RefusalKind, TransferRefused

__all__ = [
    "HTTP_STATUS",
    "REFUSAL_MODIFIERS",
    "Refusal",
    "disposition_labels",
    "refusal_of",
    "refusal_of_request",
    "refusal_of_transfer",
]

M = Modifier
HTTP_STATUS: Mapping[Modifier, int] = MappingProxyType(
    {
        M.AUTHENTICATION_FAILED: 403,
        M.INSUFFICIENT_MESSAGE_SECURITY: 403,
        M.UNKNOWN_TRADING_PARTNER: 403,
        M.DECRYPTION_FAILED: 400,
        M.DECOMPRESSION_FAILED: 400,
        M.INTEGRITY_CHECK_FAILED: 400,
        M.UNEXPECTED_PROCESSING_ERROR: 400,
    }
)
REFUSAL_MODIFIERS: Mapping[RefusalKind, Modifier] = MappingProxyType(
    {
        RefusalKind.UNKNOWN_CODE: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.NOT_SUBSCRIBED: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.CONNECTION_CLOSED: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.TOO_LARGE: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.TRUNCATED: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.WRONG_FORMAT: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.INVALID: M.UNEXPECTED_PROCESSING_ERROR,
        RefusalKind.UNAVAILABLE: M.UNEXPECTED_PROCESSING_ERROR,
    }
)
_REFUSAL_STATUS: Mapping[RefusalKind, int] = MappingProxyType(
    {
        RefusalKind.UNKNOWN_CODE: 422,
        RefusalKind.NOT_SUBSCRIBED: 422,
        RefusalKind.CONNECTION_CLOSED: 403,
        RefusalKind.TOO_LARGE: 413,
        RefusalKind.TRUNCATED: 400,
        RefusalKind.WRONG_FORMAT: 415,
        RefusalKind.INVALID: 400,
        RefusalKind.UNAVAILABLE: 503,
    }
)
_FAILURE_LABELS = frozenset(f.value.lower() for f in FailureModifier)
_MODIFIER_LABELS = frozenset(m.value for m in Modifier)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is refused, and how each channel says it."""

    disposition: Disposition
    reason: str
    status: int  # HTTP status when no MDN carries the answer
    kind: str  # bounded label: the modifier, or the inbox refusal kind
    retry: bool = False  # our failure: answer 503 without an MDN so the partner sends again

    @property
    def modifier(self) -> str:
        return self.disposition.modifier_text or ""


def refusal_of(exc: As2Error) -> Refusal:
    """A core error: its modifier is the answer; a size cap is also HTTP 413."""
    status = 413 if isinstance(exc, As2LimitError) else HTTP_STATUS[exc.modifier]
    return Refusal(Disposition.error(exc.modifier), exc.reason, status, exc.modifier.value)


def refusal_of_transfer(exc: TransferRefused) -> Refusal:
    """A refusal of the inbox port (routing, traffic, size, storage)."""
    modifier = REFUSAL_MODIFIERS[exc.kind]
    return Refusal(
        Disposition.error(modifier),
        f"{exc.kind.value}: {exc.reason}",
        _REFUSAL_STATUS[exc.kind],
        exc.kind.value,
        retry=exc.kind is RefusalKind.UNAVAILABLE,
    )


def refusal_of_request(failure: FailureModifier) -> Refusal:
    """A `required` receipt option we cannot honour: `failed/failure`, nothing processed."""
    reason = f"the receipt request cannot be honoured: {failure.value}"
    return Refusal(Disposition.failure(failure), reason, 400, failure.value)


def disposition_labels(disposition: Disposition) -> tuple[str, str]:
    """(`processed`|`processed/warning`|`processed/error`|`failed/failure`, modifier) labels.

    Modifiers are peer-supplied text on received MDNs: anything outside the RFC vocabulary is
    folded into `other` so the metric's label set stays bounded.
    """
    kind = disposition.modifier_kind
    if disposition.type is DispositionType.FAILED:
        label = "failed/failure"
    else:
        label = "processed" if kind is None else f"processed/{kind}"
    if kind is None:
        return label, "none"
    if label not in ("processed/error", "failed/failure", "processed/warning"):
        return "processed/error", "other"
    text = (disposition.modifier_text or "").strip().lower()
    if kind == "warning":
        return label, "warning"
    known = _FAILURE_LABELS if label == "failed/failure" else _MODIFIER_LABELS
    return label, text if text in known else "other"
