"""Message Disposition Notifications: build the receipts we send, read the ones we get.

An MDN is `multipart/report; report-type=disposition-notification` (RFC 8098) holding a
human-readable part and a `message/disposition-notification` part; AS2 adds
Received-Content-MIC (RFC 4130 §7.4). It is signed when the sender asked for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from protocols.as2.algorithms import DigestAlgorithm
from protocols.as2.cms import CertRef
from protocols.as2.cms_verify import ALL_DIGESTS, VerifiedSignature, verify_detached
from protocols.as2.der import Chunk
from protocols.as2.envelope import (
    AS2_VERSION,
    as_headers,
    format_as2_name,
    http_date,
    make_message_id,
)
from protocols.as2.errors import As2Error, FailureModifier, MimeError, Modifier
from protocols.as2.mdn_request import MdnRequest, parse_disposition_options
from protocols.as2.mic import Mic
from protocols.as2.mime import (
    Entity,
    Headers,
    check_header,
    decode_body,
    format_params,
    parse_entity,
    parse_field_block,
)
from protocols.as2.multipart import multipart_body, new_boundary, split_multipart
from protocols.as2.params import MdnMode, MdnParams
from protocols.as2.smime import Part, signed_part

__all__ = [
    "BuiltMdn",
    "Disposition",
    "DispositionType",
    "MdnRequest",
    "ReceivedMdn",
    "build_mdn",
    "parse_disposition_options",
    "parse_mdn",
]

ACTION_MODE = "automatic-action/MDN-sent-automatically"
_KINDS = frozenset({"error", "warning", "failure"})


class DispositionType(StrEnum):
    PROCESSED = "processed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Disposition:
    """`processed`, `processed/error: <modifier>`, `processed/warning: …` or `failed/failure: …`."""

    type: DispositionType = DispositionType.PROCESSED
    modifier_kind: str | None = None  # "error", "warning" or "failure"
    modifier_text: str | None = None
    action_mode: str = ACTION_MODE

    @classmethod
    def error(cls, modifier: Modifier) -> Disposition:
        return cls(DispositionType.PROCESSED, "error", modifier.value)

    @classmethod
    def warning(cls, text: str) -> Disposition:
        return cls(DispositionType.PROCESSED, "warning", text)

    @classmethod
    def failure(cls, modifier: FailureModifier | str) -> Disposition:
        return cls(DispositionType.FAILED, "failure", str(modifier))

    @property
    def ok(self) -> bool:
        """Processed, possibly with a warning: the partner accepted the message."""
        return self.type is DispositionType.PROCESSED and self.modifier_kind in (None, "warning")

    @property
    def error_modifier(self) -> Modifier | None:
        if self.modifier_kind != "error" or self.modifier_text is None:
            return None
        text = self.modifier_text.strip().lower()
        return next((m for m in Modifier if m.value == text), None)

    def header_value(self) -> str:
        value = f"{self.action_mode}; {self.type.value}"
        if self.modifier_kind:
            value += f"/{self.modifier_kind}: {self.modifier_text or ''}"
        return value

    @classmethod
    def parse(cls, value: str) -> Disposition:
        """Read a Disposition field; case and spacing as partners write them."""
        mode, semicolon, rest = value.partition(";")
        if not semicolon:
            raise MimeError(f"disposition lacks its action mode {value[:80]!r}")
        kind_text, slash, modifier = rest.partition("/")
        try:
            kind = DispositionType(kind_text.strip().lower())
        except ValueError:
            raise MimeError(f"unknown disposition {value[:80]!r}") from None
        if not slash:
            return cls(kind, None, None, mode.strip())
        name, colon, text = modifier.partition(":")
        name = name.strip().lower()
        if not colon or name not in _KINDS:  # unreadable modifier: never taken as success
            return cls(kind, "error", modifier.strip(), mode.strip())
        return cls(kind, name, text.strip(), mode.strip())


@dataclass(frozen=True, slots=True)
class BuiltMdn:
    """The MDN to return (sync: in the HTTP response; async: POSTed to `url`)."""

    headers: dict[str, str]
    body: bytes
    message_id: str
    mode: MdnMode
    url: str | None
    signed: bool


def build_mdn(
    *,
    original_message_id: str,
    disposition: Disposition,
    mic: Mic | None,
    request: MdnRequest | None,
    params: MdnParams,
    now: dt.datetime,
    text: str | None = None,
) -> BuiltMdn:
    """Answer `original_message_id`; signed when requested and we hold a signing key."""
    report = _report(original_message_id, disposition, mic, params, text)
    signed = bool(request and request.signed and params.signing is not None)
    if signed and params.signing is not None:
        digest = request.mic_algorithm(signed_with=None) if request else DigestAlgorithm.SHA256
        report = signed_part(
            report.chunks(),
            identity=params.signing,
            digest=digest,
            scheme=params.signature_scheme,
            now=now,
        )
    message_id = make_message_id(now=now, domain=params.message_id_domain)
    headers = {
        "AS2-Version": AS2_VERSION,
        "AS2-From": format_as2_name(params.as2_from),
        "AS2-To": format_as2_name(params.as2_to),
        "Message-ID": message_id,
        "Date": http_date(now),
        "Subject": "Message Disposition Notification",
        "MIME-Version": "1.0",
    }
    headers.update(report.headers)
    mode = request.mode if request else MdnMode.SYNC
    url = request.receipt_url if request else None
    return BuiltMdn(headers, b"".join(report.body), message_id, mode, url, signed)


def _report(
    original_message_id: str,
    disposition: Disposition,
    mic: Mic | None,
    params: MdnParams,
    text: str | None,
) -> Part:
    fields = [
        ("Reporting-UA", params.reporting_ua),
        ("Original-Recipient", f"rfc822; {params.as2_from}"),
        ("Final-Recipient", f"rfc822; {params.as2_from}"),
        ("Original-Message-ID", original_message_id),
        ("Disposition", disposition.header_value()),
    ]
    if mic is not None:
        fields.append(("Received-Content-MIC", mic.header_value()))
    for name, value in fields:
        check_header(name, value)
    notification = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("utf-8")
    human = (text or _default_text(original_message_id, disposition)).replace("\r\n", "\n")
    human_part = Part(
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")],
        [human.replace("\n", "\r\n").encode("utf-8")],
    )
    notification_part = Part(
        [
            ("Content-Type", "message/disposition-notification"),
            ("Content-Transfer-Encoding", "7bit"),
        ],
        [notification],
    )
    boundary = new_boundary()
    content_type = format_params(
        "multipart/report", [("report-type", "disposition-notification"), ("boundary", boundary)]
    )
    body = multipart_body([human_part.chunks(), notification_part.chunks()], boundary)
    return Part([("Content-Type", content_type)], body)


def _default_text(original_message_id: str, disposition: Disposition) -> str:
    if disposition.ok:
        return f"The AS2 message {original_message_id} was received and processed.\n"
    detail = disposition.modifier_text or disposition.type.value
    return f"The AS2 message {original_message_id} could not be processed: {detail}.\n"


@dataclass(frozen=True, slots=True)
class ReceivedMdn:
    """A partner's receipt for one of our messages."""

    message_id: str | None
    original_message_id: str
    disposition: Disposition
    mic: Mic | None
    mic_matches: bool | None  # None when no MIC was expected
    signature: VerifiedSignature | None
    reporting_ua: str | None
    text: str

    @property
    def signed(self) -> bool:
        return self.signature is not None

    @property
    def accepted(self) -> bool:
        """Processed (warnings allowed) and, when we expected a MIC, the right one."""
        return self.disposition.ok and self.mic_matches is not False


def parse_mdn(
    headers: Mapping[str, str] | Headers,
    body: Chunk,
    *,
    partner_certificates: Sequence[x509.Certificate | CertRef],
    require_signature: bool = True,
    expected_message_id: str | None = None,
    expected_mic: Mic | None = None,
    now: dt.datetime | None = None,
    accepted_digests: frozenset[DigestAlgorithm] = ALL_DIGESTS,
) -> ReceivedMdn:
    """Verify (signature by the partner) and read an MDN; compare its MIC with ours."""
    fields = as_headers(headers)
    content_type = fields.get("Content-Type")
    if content_type is None:
        raise MimeError("MDN without Content-Type")
    view = body if isinstance(body, memoryview) else memoryview(body)
    entity = Entity(Headers((("Content-Type", content_type),)), view, None)
    signature: VerifiedSignature | None = None
    if entity.content_type.mime_type == "multipart/signed":
        entity, signature = _verified(
            entity, trusted=partner_certificates, now=now, accepted=accepted_digests
        )
    elif require_signature:
        raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, "MDN is not signed")
    report = _read_report(entity)
    original = report.fields.get("Original-Message-ID")
    disposition_value = report.fields.get("Disposition")
    if not original or not disposition_value:
        raise MimeError("MDN lacks Original-Message-ID or Disposition")
    if expected_message_id is not None and original.strip() != expected_message_id:
        raise As2Error(
            Modifier.UNEXPECTED_PROCESSING_ERROR,
            f"MDN answers {original[:100]!r}, not {expected_message_id!r}",
        )
    mic_value = report.fields.get("Received-Content-MIC")
    mic = Mic.parse(mic_value) if mic_value else None
    matches = None if expected_mic is None else (mic is not None and mic.matches(expected_mic))
    return ReceivedMdn(
        message_id=fields.get("Message-ID"),
        original_message_id=original.strip(),
        disposition=Disposition.parse(disposition_value),
        mic=mic,
        mic_matches=matches,
        signature=signature,
        reporting_ua=report.fields.get("Reporting-UA"),
        text=report.text,
    )


def _verified(
    entity: Entity,
    *,
    trusted: Sequence[x509.Certificate | CertRef],
    now: dt.datetime | None,
    accepted: frozenset[DigestAlgorithm],
) -> tuple[Entity, VerifiedSignature]:
    """The signed report entity and who signed it (the partner, or an As2Error)."""
    parts = split_multipart(entity.body, entity.content_type.param("boundary") or "")
    if len(parts) != 2:
        raise MimeError(f"signed MDN has {len(parts)} parts, 2 expected")
    signature = verify_detached(
        decode_body(parse_entity(parts[1])),
        parts[0],
        trusted=trusted,
        now=now,
        accepted_digests=accepted,
    )
    return parse_entity(parts[0]), signature


@dataclass(frozen=True, slots=True)
class _Report:
    fields: Headers
    text: str


def _read_report(entity: Entity) -> _Report:
    content_type = entity.content_type
    if content_type.mime_type != "multipart/report":
        raise MimeError(f"MDN content is {content_type.mime_type}, not multipart/report")
    fields: Headers | None = None
    text = ""
    for raw in split_multipart(entity.body, content_type.param("boundary") or ""):
        part = parse_entity(raw)
        kind = part.content_type.mime_type
        if kind == "message/disposition-notification" and fields is None:
            fields = parse_field_block(decode_body(part))
        elif kind == "text/plain" and not text:
            text = bytes(decode_body(part)).decode("utf-8", errors="replace")
    if fields is None:
        raise MimeError("MDN has no message/disposition-notification part")
    return _Report(fields, text)
