"""Build an outbound AS2 message and unwrap an inbound one (RFC 4130, RFC 5402).

Outbound: payload entity -> [compress] -> [sign] -> [compress] -> [encrypt], the outermost
entity's headers joining the AS2 HTTP headers. Inbound layers are removed in whatever order
they come (decrypt -> [decompress] -> verify -> [decompress]); each kind at most once and
encryption only outermost. Entities stay lists of buffers until one final join, and inbound
bodies are memoryview slices, so a payload is held about three times at worst.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from protocols.as2.algorithms import DigestAlgorithm
from protocols.as2.cms_compress import compress
from protocols.as2.cms_envelope import encrypt
from protocols.as2.cms_verify import VerifiedSignature
from protocols.as2.der import Chunk
from protocols.as2.envelope import (
    AS2_VERSION,
    as_headers,
    format_as2_name,
    http_date,
    make_message_id,
    read_envelope,
)
from protocols.as2.errors import As2LimitError, MimeError, Modifier
from protocols.as2.mdn_request import MdnRequest, format_disposition_options
from protocols.as2.mic import Mic, compute_mic
from protocols.as2.mime import Entity, Headers, decode_body, format_params, parse_disposition
from protocols.as2.params import As2ReceiveParams, As2SendParams, MdnMode
from protocols.as2.smime import Part, pkcs7_part, signed_part
from protocols.as2.unwrap import Unwrapped, unwrap

__all__ = ["BuiltMessage", "ReceivedMessage", "build_message", "parse_message"]

_CONTENT_HEADERS = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """HTTP headers and body to POST; `mic` is what the partner's MDN must return."""

    headers: dict[str, str]
    body: bytes
    message_id: str
    mic: Mic
    mdn_mode: MdnMode


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """An inbound payload, byte-exact, with what protected it and the receipt asked for."""

    payload: bytes
    file_name: str | None
    content_type: str
    message_id: str
    as2_from: str
    as2_to: str
    subject: str | None
    mic: Mic
    signed: bool
    encrypted: bool
    compressed: bool
    signature: VerifiedSignature | None
    mdn_request: MdnRequest | None


def build_message(payload: Chunk, *, params: As2SendParams, now: dt.datetime) -> BuiltMessage:
    """Package `payload` for one connection; `now` dates the message and the signature."""
    entity = Part(_payload_headers(params), [payload])
    mic_algorithm = params.mdn_micalg or params.digest
    signed_over: list[Chunk] | None = None
    if params.compress and (params.compress_before_sign or params.signing is None):
        entity = pkcs7_part(compress(entity.chunks()), "compressed-data", "smime.p7z")
    if params.signing is not None:
        signed_over = entity.chunks()
        entity = signed_part(
            signed_over,
            identity=params.signing,
            digest=params.digest,
            scheme=params.signature_scheme,
            now=now,
            use_ski=params.use_ski,
        )
        if params.compress and not params.compress_before_sign:
            entity = pkcs7_part(compress(entity.chunks()), "compressed-data", "smime.p7z")
    if params.encryption_certificate is not None:
        envelope = encrypt(
            entity.chunks(),
            recipients=[params.encryption_certificate],
            cipher=params.cipher,
            key_transport=params.key_transport,
            use_ski=params.use_ski,
        )
        kind = "authEnveloped-data" if params.cipher.aead else "enveloped-data"
        entity = pkcs7_part(envelope, kind, "smime.p7m")
    mic = _outbound_mic(payload, params, signed_over, mic_algorithm)
    message_id = make_message_id(now=now, domain=params.message_id_domain)
    headers = _http_headers(params, message_id, now, mic_algorithm)
    headers.update(entity.headers)
    return BuiltMessage(headers, b"".join(entity.body), message_id, mic, params.mdn_mode)


def _payload_headers(params: As2SendParams) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", params.content_type),
        ("Content-Transfer-Encoding", "binary"),
    ]
    if params.file_name:
        disposition = format_params("attachment", [("filename", params.file_name)])
        headers.append(("Content-Disposition", disposition))
    return headers


def _outbound_mic(
    payload: Chunk,
    params: As2SendParams,
    signed_over: list[Chunk] | None,
    algorithm: DigestAlgorithm,
) -> Mic:
    """RFC 4130 §7.3.1 / RFC 5402: the same bytes the receiver will digest (see mic.py)."""
    if signed_over is not None:
        return compute_mic(signed_over, algorithm)
    if params.encryption_certificate is not None or params.compress:
        return compute_mic(Part(_payload_headers(params), [payload]).chunks(), algorithm)
    return compute_mic(payload, algorithm)


def _http_headers(
    params: As2SendParams, message_id: str, now: dt.datetime, mic_algorithm: DigestAlgorithm
) -> dict[str, str]:
    headers = {
        "AS2-Version": AS2_VERSION,
        "AS2-From": format_as2_name(params.as2_from),
        "AS2-To": format_as2_name(params.as2_to),
        "Message-ID": message_id,
        "Date": http_date(now),
        "Subject": params.subject or params.file_name or "AS2 message",
        "MIME-Version": "1.0",
    }
    if params.mdn_mode is not MdnMode.NONE:
        headers["Disposition-Notification-To"] = params.receipt_url or format_as2_name(
            params.as2_from
        )
        headers["Disposition-Notification-Options"] = format_disposition_options(
            signed=params.signed_mdn, micalg=mic_algorithm
        )
    if params.mdn_mode is MdnMode.ASYNC and params.receipt_url:
        headers["Receipt-Delivery-Option"] = params.receipt_url
    return headers


def parse_message(
    headers: Mapping[str, str] | Headers,
    body: Chunk,
    *,
    params: As2ReceiveParams,
    now: dt.datetime | None = None,
) -> ReceivedMessage:
    """Unwrap, verify and check an inbound message; `now` enables signer validity checks."""
    fields = as_headers(headers)
    envelope = read_envelope(fields, expected_from=params.as2_from, expected_to=params.as2_to)
    if len(body) > params.max_body_size:
        raise As2LimitError(
            Modifier.UNEXPECTED_PROCESSING_ERROR, f"body over {params.max_body_size} bytes"
        )
    outer = Headers(tuple((k, v) for k, v in fields if k.lower() in _CONTENT_HEADERS))
    if outer.get("Content-Type") is None:
        raise MimeError("Content-Type missing")
    view = body if isinstance(body, memoryview) else memoryview(body)
    done = unwrap(Entity(outer, view, None), params=params, now=now)
    request = envelope.mdn_request
    mic = _inbound_mic(done, request)
    payload = decode_body(done.entity)
    if len(payload) > params.max_payload_size:
        raise As2LimitError(Modifier.UNEXPECTED_PROCESSING_ERROR, "payload over the size cap")
    return ReceivedMessage(
        payload=payload if isinstance(payload, bytes) else bytes(payload),
        file_name=_file_name(done.entity),
        content_type=done.entity.content_type.mime_type,
        message_id=envelope.message_id,
        as2_from=envelope.as2_from,
        as2_to=envelope.as2_to,
        subject=envelope.subject,
        mic=mic,
        signed=done.signature is not None,
        encrypted=done.encrypted,
        compressed=done.compressed,
        signature=done.signature,
        mdn_request=request,
    )


def _inbound_mic(done: Unwrapped, request: MdnRequest | None) -> Mic:
    signed_with = done.signature.digest if done.signature else None
    algorithm = (
        request.mic_algorithm(signed_with=signed_with)
        if request
        else (signed_with or DigestAlgorithm.SHA256)
    )
    if done.signed_content is not None:
        return compute_mic(done.signed_content, algorithm)
    if (done.encrypted or done.compressed) and done.entity.raw is not None:
        return compute_mic(done.entity.raw, algorithm)
    return compute_mic(done.entity.body, algorithm)


def _file_name(entity: Entity) -> str | None:
    value = entity.headers.get("Content-Disposition")
    if not value:
        return None
    _, disposition_params = parse_disposition(value)
    return disposition_params.get("filename")
