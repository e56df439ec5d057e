"""AS2's HTTP-level headers: names (AS2-From/To), Message-ID, Date, and reading them back.

`read_envelope` is separate from `parse_message` so an endpoint can learn who sent what and
which receipt was asked for even when the body turns out to be unacceptable: that is what an
error MDN needs.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from protocols.as2.errors import As2BuildError, As2Error, Modifier
from protocols.as2.mdn_request import MdnRequest, read_mdn_request
from protocols.as2.mime import Headers

__all__ = [
    "AS2_VERSION",
    "Envelope",
    "check_parties",
    "format_as2_name",
    "http_date",
    "make_message_id",
    "parse_as2_name",
    "read_envelope",
]

AS2_VERSION = "1.2"
_AS2_TEXT = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,994}>")
_SINGLE = ("AS2-From", "AS2-To", "Message-ID", "Content-Type", "Disposition-Notification-To")


def format_as2_name(name: str) -> str:
    """Bare when RFC 4130 as2-text allows it, else a quoted-string."""
    if _AS2_TEXT.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_as2_name(value: str) -> str:
    """Unquote an AS2-From/AS2-To value; comparison stays case-sensitive (RFC 4130 §6.2)."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    if not 0 < len(text) <= 128 or not all(" " <= char <= "~" for char in text):
        raise As2Error(Modifier.UNKNOWN_TRADING_PARTNER, f"invalid AS2 name {value[:140]!r}")
    return text


def make_message_id(*, now: dt.datetime, domain: str) -> str:
    """`<timestamp.random@domain>`: unique without a clock call of our own."""
    return f"<{now:%Y%m%d%H%M%S}.{secrets.token_hex(12)}@{domain}>"


def http_date(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise As2BuildError("`now` must be timezone-aware")
    return email.utils.format_datetime(now.astimezone(dt.UTC), usegmt=True)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sent what, and the receipt they expect."""

    as2_from: str
    as2_to: str
    message_id: str
    subject: str | None
    mdn_request: MdnRequest | None


def as_headers(headers: Mapping[str, str] | Headers) -> Headers:
    return headers if isinstance(headers, Headers) else Headers.from_mapping(headers)


def read_envelope(
    headers: Mapping[str, str] | Headers,
    *,
    expected_from: str | None = None,
    expected_to: str | None = None,
) -> Envelope:
    """Read and check AS2-From, AS2-To and Message-ID; a mismatch is `unknown-trading-partner`."""
    fields = as_headers(headers)
    for name in _SINGLE:
        if fields.count(name) > 1:
            raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, f"{name} given twice")
    names = {}
    for header, expected in (("AS2-From", expected_from), ("AS2-To", expected_to)):
        raw = fields.get(header)
        if raw is None:
            raise As2Error(Modifier.UNKNOWN_TRADING_PARTNER, f"{header} missing")
        names[header] = parse_as2_name(raw)
        if expected is not None and names[header] != expected:
            raise _not_ours(header, names[header], expected)
    message_id = (fields.get("Message-ID") or "").strip()
    if not _MESSAGE_ID.fullmatch(message_id):
        raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "Message-ID missing or malformed")
    return Envelope(
        names["AS2-From"],
        names["AS2-To"],
        message_id,
        fields.get("Subject"),
        read_mdn_request(fields),
    )


def check_parties(envelope: Envelope, *, expected_from: str, expected_to: str) -> None:
    """What `read_envelope` checks when given the expected names, for an envelope read before
    the connection was known (the listener reads it once to pick the connection)."""
    if envelope.as2_from != expected_from:
        raise _not_ours("AS2-From", envelope.as2_from, expected_from)
    if envelope.as2_to != expected_to:
        raise _not_ours("AS2-To", envelope.as2_to, expected_to)


def _not_ours(header: str, found: str, expected: str) -> As2Error:
    return As2Error(
        Modifier.UNKNOWN_TRADING_PARTNER,
        f"{header} {found!r} is not this connection's {expected!r}",
    )
