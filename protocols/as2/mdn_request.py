"""What receipt the sender asked for: Disposition-Notification-To/-Options, Receipt-Delivery-Option.

Options are `name=importance, value[, value...]` separated by `;`, in any order (RFC 8098
§2.2, RFC 4130 §7.3). An option marked `required` that we cannot honour turns the MDN into
`failed/failure: ...`; an `optional` one falls back to our defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from protocols.as2.algorithms import DigestAlgorithm, digest_from_micalg
from protocols.as2.errors import FailureModifier, MimeError
from protocols.as2.mic import choose_mic_algorithm
from protocols.as2.mime import Headers, split_unquoted
from protocols.as2.params import MdnMode

__all__ = [
    "DispositionOption",
    "Importance",
    "MdnRequest",
    "format_disposition_options",
    "parse_disposition_options",
    "read_mdn_request",
]

PROTOCOL = "signed-receipt-protocol"
MICALG = "signed-receipt-micalg"
PKCS7 = "pkcs7-signature"
_KNOWN = frozenset({PROTOCOL, MICALG})
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


class Importance(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class DispositionOption:
    importance: Importance | None
    values: tuple[str, ...]


def parse_disposition_options(value: str) -> dict[str, DispositionOption]:
    """Parse the header in whatever order the parameters come; names and values lowercased."""
    options: dict[str, DispositionOption] = {}
    for segment in split_unquoted(value, ";"):
        if not segment.strip():
            continue
        name, equals, rest = segment.partition("=")
        name = name.strip().lower()
        if not equals or not _NAME.fullmatch(name):
            raise MimeError(f"malformed Disposition-Notification-Options {segment[:60]!r}")
        items = [item.strip().strip('"').strip().lower() for item in split_unquoted(rest, ",")]
        importance: Importance | None = None
        if items and items[0] in (Importance.REQUIRED, Importance.OPTIONAL):
            importance = Importance(items.pop(0))
        if name in options:
            raise MimeError(f"Disposition-Notification-Options repeats {name!r}")
        options[name] = DispositionOption(importance, tuple(i for i in items if i))
    return options


@dataclass(frozen=True, slots=True)
class MdnRequest:
    """A receipt request as the partner expressed it."""

    receipt_to: str
    receipt_url: str | None = None
    options: Mapping[str, DispositionOption] = field(default_factory=dict)

    @property
    def mode(self) -> MdnMode:
        return MdnMode.ASYNC if self.receipt_url else MdnMode.SYNC

    @property
    def signed(self) -> bool:
        option = self.options.get(PROTOCOL)
        return option is not None and PKCS7 in option.values

    @property
    def micalgs(self) -> tuple[str, ...]:
        option = self.options.get(MICALG)
        return option.values if option else ()

    def mic_algorithm(self, *, signed_with: DigestAlgorithm | None) -> DigestAlgorithm:
        return choose_mic_algorithm(self.micalgs, signed_with=signed_with)

    @property
    def failure(self) -> FailureModifier | None:
        """Why a `required` option cannot be honoured, if one cannot."""
        protocol = self.options.get(PROTOCOL)
        if protocol and protocol.importance is Importance.REQUIRED and PKCS7 not in protocol.values:
            return FailureModifier.UNSUPPORTED_FORMAT
        micalg = self.options.get(MICALG)
        if (
            micalg
            and micalg.importance is Importance.REQUIRED
            and not any(digest_from_micalg(v) for v in micalg.values)
        ):
            return FailureModifier.UNSUPPORTED_MIC_ALGORITHMS
        for name, option in self.options.items():
            if name not in _KNOWN and option.importance is Importance.REQUIRED:
                return FailureModifier.UNSUPPORTED_FORMAT
        return None


def read_mdn_request(headers: Headers) -> MdnRequest | None:
    """None when no receipt was asked for (no Disposition-Notification-To)."""
    receipt_to = headers.get("Disposition-Notification-To")
    if receipt_to is None:
        return None
    options_value = headers.get("Disposition-Notification-Options")
    options = parse_disposition_options(options_value) if options_value else {}
    receipt_url = (headers.get("Receipt-Delivery-Option") or "").strip() or None
    return MdnRequest(receipt_to.strip(), receipt_url, options)


def format_disposition_options(*, signed: bool, micalg: DigestAlgorithm) -> str:
    """The request we send: protocol then micalg, both `optional` for interoperability."""
    parts = [f"{PROTOCOL}=optional, {PKCS7}"] if signed else []
    parts.append(f"{MICALG}=optional, {micalg.value}")
    return "; ".join(parts)
