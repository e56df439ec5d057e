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
from protocols.as2.cms import SigningIdentity
from protocols.as2.cms_compress import compress
from protocols.as2.cms_envelope import encrypt
from protocols.as2.cms_verify import VerifiedSignature
from protocols.as2.der import Chunk
from protocols.as2.envelope import (
    AS2_VERSION,
    Envelope,
    as_headers,
    check_parties,
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
    """An inbound payload, byte-exact, with what protected it and the receipt asked for.

    `payload` is a view into the buffer decryption or decompression produced (no copy: a
    1 GB payload is not held twice); `bytes(received.payload)` when an owned copy is wanted.
    """

    payload: bytes | memoryview
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
    mic: Mic | None = None
    if params.compress and (params.compress_before_sign or params.signing is None):
        entity = _compressed(entity, params)
    if params.signing is not None:
        entity, mic = _signed(entity, params.signing, params, now, mic_algorithm)
        if params.compress and not params.compress_before_sign:
            entity = _compressed(entity, params)
    if params.encryption_ref is not None:
        envelope = encrypt(
            entity.chunks(),
            recipients=[params.encryption_ref],
            cipher=params.cipher,
            key_transport=params.key_transport,
            use_ski=params.use_ski,
        )
        kind = "authEnveloped-data" if params.cipher.aead else "enveloped-data"
        entity = pkcs7_part(envelope, kind, "smime.p7m")
    if mic is None:
        mic = _outbound_mic(payload, params, mic_algorithm)
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


def _compressed(entity: Part, params: As2SendParams) -> Part:
    compressed = compress(entity.chunks(), level=params.compression_level)
    return pkcs7_part(compressed, "compressed-data", "smime.p7z")


def _signed(
    entity: Part,
    identity: SigningIdentity,
    params: As2SendParams,
    now: dt.datetime,
    mic_algorithm: DigestAlgorithm,
) -> tuple[Part, Mic]:
    """multipart/signed over the entity, and the MIC: RFC 4130 §7.3.1, the signed entity's
    exact bytes (hashed once when the MIC and the signature use the same digest)."""
    signed_over = entity.chunks()
    mic = compute_mic(signed_over, mic_algorithm)
    signed = signed_part(
        signed_over,
        identity=identity,
        digest=params.digest,
        scheme=params.signature_scheme,
        now=now,
        use_ski=params.use_ski,
        content_digest=mic.digest if mic_algorithm is params.digest else None,
    )
    return signed, mic


def _outbound_mic(payload: Chunk, params: As2SendParams, algorithm: DigestAlgorithm) -> Mic:
    """RFC 4130 §7.3.1 / RFC 5402 when unsigned: the bytes the receiver will digest."""
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
    envelope: Envelope | None = None,
) -> ReceivedMessage:
    """Unwrap, verify and check an inbound message; `now` enables signer validity checks.

    `envelope` is these very headers' envelope when the caller read it already (a listener
    does, to pick the connection): its names are checked here all the same.
    """
    fields = as_headers(headers)
    if envelope is None:
        envelope = read_envelope(fields, expected_from=params.as2_from, expected_to=params.as2_to)
    else:
        check_parties(envelope, expected_from=params.as2_from, expected_to=params.as2_to)
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
        payload=memoryview(payload) if isinstance(payload, bytearray) else payload,
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
        if done.signature is not None and done.signature.digest is algorithm:
            return Mic(done.signature.content_digest, algorithm)  # same bytes, hashed once
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
