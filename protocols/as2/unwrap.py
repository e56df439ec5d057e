"""Remove an inbound message's protection layers one at a time, in whatever order they come.

Each kind of layer may appear once; encryption only as the outermost one. When the connection
requires encryption, anything else found first is refused before any work is spent on it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from types import MappingProxyType

from protocols.as2.algorithms import OID
from protocols.as2.cms import content_type_of
from protocols.as2.cms_compress import decompress
from protocols.as2.cms_decrypt import decrypt
from protocols.as2.cms_verify import VerifiedSignature, verify_detached, verify_encapsulated
from protocols.as2.der import Chunk
from protocols.as2.errors import As2Error, MimeError, Modifier
from protocols.as2.mime import Entity, decode_body, parse_entity
from protocols.as2.multipart import split_multipart
from protocols.as2.params import As2ReceiveParams

__all__ = ["Unwrapped", "unwrap"]

PKCS7_MIME = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
PKCS7_SIGNATURE = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
HEADER_SLACK = 64 * 1024  # decompressed entity = payload + its MIME headers
_ENVELOPED = frozenset({OID.ENVELOPED_DATA, OID.AUTH_ENVELOPED_DATA})
_MODIFIER_BY_SMIME_TYPE = MappingProxyType(
    {
        "enveloped-data": Modifier.DECRYPTION_FAILED,
        "authenveloped-data": Modifier.DECRYPTION_FAILED,
        "compressed-data": Modifier.DECOMPRESSION_FAILED,
        "signed-data": Modifier.AUTHENTICATION_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """Where unwrapping stands: the current entity and what was removed to reach it."""

    entity: Entity
    signature: VerifiedSignature | None = None
    signed_content: Chunk | None = None  # the exact bytes the signature covers (the MIC input)
    encrypted: bool = False
    compressed: bool = False


def unwrap(entity: Entity, *, params: As2ReceiveParams, now: dt.datetime | None) -> Unwrapped:
    """Peel layers until the payload entity; enforce the connection's security floor."""
    state = Unwrapped(entity)
    while True:  # ends: each layer kind is removed at most once, or refused
        mime_type = state.entity.content_type.mime_type
        if mime_type == "multipart/signed":
            _check_floor(state, params, None)
            state = _verify_multipart(state, params, now)
        elif mime_type in PKCS7_MIME:
            data = decode_body(state.entity)
            kind = _cms_kind(state.entity, data)
            _check_floor(state, params, kind)
            state = _cms_layer(state, data, kind, params, now)
        else:
            break
    if params.require_encryption and not state.encrypted:
        raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, "connection requires encryption")
    if params.require_signature and state.signature is None:
        raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, "connection requires a signature")
    return state


def _cms_kind(entity: Entity, data: Chunk) -> str:
    """The ContentInfo type; an unreadable one fails with the modifier its smime-type implies."""
    kind = content_type_of(data)
    if kind is not None:
        return kind
    smime_type = (entity.content_type.param("smime-type") or "").lower()
    modifier = _MODIFIER_BY_SMIME_TYPE.get(smime_type, Modifier.UNEXPECTED_PROCESSING_ERROR)
    label = smime_type or "no smime-type"
    raise As2Error(modifier, f"body is not a readable CMS structure ({label})")


def _check_floor(state: Unwrapped, params: As2ReceiveParams, kind: str | None) -> None:
    """Refuse an unencrypted layer before spending work on it when encryption is required."""
    if params.require_encryption and not state.encrypted and kind not in _ENVELOPED:
        raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, "connection requires encryption")


def _verify_multipart(
    state: Unwrapped, params: As2ReceiveParams, now: dt.datetime | None
) -> Unwrapped:
    if state.signature is not None:
        raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "message signed twice")
    content_type = state.entity.content_type
    parts = split_multipart(state.entity.body, content_type.param("boundary") or "")
    if len(parts) != 2:
        raise MimeError(f"multipart/signed has {len(parts)} parts, 2 expected")
    signature_part = parse_entity(parts[1])
    if signature_part.content_type.mime_type not in PKCS7_SIGNATURE:
        raise As2Error(Modifier.AUTHENTICATION_FAILED, "second part is not a pkcs7-signature")
    verified = verify_detached(
        decode_body(signature_part),
        parts[0],
        trusted=params.partner_refs,
        now=now,
        accepted_digests=params.accepted_digests,
    )
    return replace(
        state, entity=parse_entity(parts[0]), signature=verified, signed_content=parts[0]
    )


def _cms_layer(
    state: Unwrapped,
    data: Chunk,
    kind: str,
    params: As2ReceiveParams,
    now: dt.datetime | None,
) -> Unwrapped:
    if kind in _ENVELOPED:
        if state.encrypted or state.signature is not None or state.compressed:
            raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "encryption must be outermost")
        plain = decrypt(data, identities=params.decryption, allow_3des=params.allow_3des)
        return replace(state, entity=parse_entity(plain.content), encrypted=True)
    if kind == OID.COMPRESSED_DATA:
        if state.compressed:
            raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "message compressed twice")
        inflated = decompress(
            data,
            max_size=params.max_payload_size + HEADER_SLACK,
            max_ratio=params.max_compression_ratio,
        )
        return replace(state, entity=parse_entity(inflated), compressed=True)
    if kind == OID.SIGNED_DATA:
        if state.signature is not None:
            raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "message signed twice")
        verified, content = verify_encapsulated(
            data,
            trusted=params.partner_refs,
            now=now,
            accepted_digests=params.accepted_digests,
        )
        return replace(
            state, entity=parse_entity(content), signature=verified, signed_content=content
        )
    raise As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, f"unsupported CMS content {kind}")
