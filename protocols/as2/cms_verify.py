"""Verification of CMS SignedData against the certificates a connection expects.

Trust is decided by the caller's certificate set, never by certificates embedded in the
message: a signer that is not in the set fails with `authentication-failed`. A content that
does not match the signed message-digest fails with `integrity-check-failed`.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from protocols.as2.algorithms import OID, DigestAlgorithm, digest_from_oid
from protocols.as2.cms import CertRef, cert_refs, describe_identifier, read_content_info
from protocols.as2.cms_signer import (
    SignerInfo,
    attributes,
    octets_of,
    read_signer_infos,
    signed_bytes,
    time_of,
)
from protocols.as2.der import CONTEXT, OCTET_STRING, SEQUENCE, SET, UNIVERSAL, Chunk, Tlv, chunks_of
from protocols.as2.errors import As2Error, Modifier, reported_as

__all__ = ["ALL_DIGESTS", "VerifiedSignature", "verify_detached", "verify_encapsulated"]

ALL_DIGESTS: Final = frozenset(DigestAlgorithm)
_AUTH = Modifier.AUTHENTICATION_FAILED
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Who signed, how, and when they said they did."""

    certificate: x509.Certificate
    digest: DigestAlgorithm
    signature_algorithm: str  # "rsa-pkcs1v15", "rsa-pss" or "ecdsa"
    signing_time: dt.datetime | None
    content_type: str
    content_digest: bytes = b""  # `digest` of the signed content: the MIC, when it asks the same


@dataclass(frozen=True, slots=True)
class _Parts:
    content_type: str
    content: list[memoryview] | None
    signer_infos: Tlv  # the SignerInfos SET, read one SignerInfo at a time


def verify_detached(
    signature: Chunk,
    content: Chunk | Sequence[Chunk],
    *,
    trusted: Sequence[x509.Certificate | CertRef],
    now: dt.datetime | None = None,
    accepted_digests: frozenset[DigestAlgorithm] = ALL_DIGESTS,
) -> VerifiedSignature:
    """Verify a detached SignedData over `content` (the exact bytes of the signed entity)."""
    with reported_as(_AUTH, "malformed SignedData"):
        parts = _parts(signature)
    chunks = chunks_of(content)
    return _verify(parts, chunks, trusted=trusted, now=now, accepted=accepted_digests)


def verify_encapsulated(
    data: Chunk,
    *,
    trusted: Sequence[x509.Certificate | CertRef],
    now: dt.datetime | None = None,
    accepted_digests: frozenset[DigestAlgorithm] = ALL_DIGESTS,
) -> tuple[VerifiedSignature, Chunk]:
    """Verify an opaque SignedData (smime-type=signed-data) and return its content."""
    with reported_as(_AUTH, "malformed SignedData"):
        parts = _parts(data)
    if parts.content is None:
        raise As2Error(_AUTH, "SignedData carries no content (detached signature alone)")
    verified = _verify(parts, parts.content, trusted=trusted, now=now, accepted=accepted_digests)
    chunks = parts.content
    return verified, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parts(data: Chunk) -> _Parts:
    oid, inner = read_content_info(data)
    if oid != OID.SIGNED_DATA:
        raise As2Error(_AUTH, f"expected SignedData, got content type {oid}")
    fields = inner.expect(UNIVERSAL, SEQUENCE, "SignedData").child_list("SignedData", minimum=4)
    encap = fields[2].expect(UNIVERSAL, SEQUENCE, "EncapsulatedContentInfo")
    encap_fields = encap.child_list("EncapsulatedContentInfo", minimum=1)
    content: list[memoryview] | None = None
    if len(encap_fields) > 1:
        wrapper = encap_fields[1].expect(CONTEXT, 0, "eContent")
        octets = wrapper.child_list("eContent", minimum=1)[0]
        content = list(octets.expect(UNIVERSAL, OCTET_STRING, "eContent").octets())
    signer_infos = fields[-1].expect(UNIVERSAL, SET, "SignerInfos")
    return _Parts(encap_fields[0].as_oid(), content, signer_infos)


def _verify(
    parts: _Parts,
    content: Sequence[Chunk],
    *,
    trusted: Sequence[x509.Certificate | CertRef],
    now: dt.datetime | None,
    accepted: frozenset[DigestAlgorithm],
) -> VerifiedSignature:
    digests: dict[DigestAlgorithm, bytes] = {}

    def digest_of(alg: DigestAlgorithm) -> bytes:
        if alg not in digests:
            hasher = hashes.Hash(alg.hash())
            for chunk in content:
                hasher.update(chunk)
            digests[alg] = hasher.finalize()
        return digests[alg]

    refs = cert_refs(trusted)
    seen: list[str] = []
    with reported_as(_AUTH, "malformed SignerInfo"):
        for signer_info in read_signer_infos(parts.signer_infos):
            for ref in refs:
                if ref.matches(signer_info.sid):
                    return _verify_signer(
                        signer_info, ref, parts, digest_of, now=now, accepted=accepted
                    )
            seen.append(describe_identifier(signer_info.sid))
    if not seen:
        raise As2Error(_AUTH, "SignedData has no SignerInfo")
    raise As2Error(_AUTH, f"signer not among the expected certificates: {'; '.join(seen)}")


def _verify_signer(
    signer_info: SignerInfo,
    ref: CertRef,
    parts: _Parts,
    digest_of: Callable[[DigestAlgorithm], bytes],
    *,
    now: dt.datetime | None,
    accepted: frozenset[DigestAlgorithm],
) -> VerifiedSignature:
    digest_oid = signer_info.digest_oid
    digest = digest_from_oid(digest_oid)
    if digest is None:
        raise As2Error(_AUTH, f"unsupported digest algorithm {digest_oid}")
    if digest not in accepted:
        raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, f"digest {digest} not accepted")
    signing_time: dt.datetime | None = None
    if signer_info.signed_attrs is not None:
        attrs = attributes(signer_info.signed_attrs)
        signing_time = _check_attributes(attrs, parts.content_type, digest_of(digest))
        signed = signed_bytes(signer_info.signed_attrs)
        prehashed = False
    else:
        signed, prehashed = digest_of(digest), True
    scheme = _check_signature(ref.certificate, signer_info, signed, digest, prehashed=prehashed)
    _check_validity(ref.certificate, now)
    return VerifiedSignature(ref.certificate, digest, scheme, signing_time, parts.content_type,
                             digest_of(digest))  # fmt: skip


def _single(attrs: dict[str, list[list[Tlv]]], oid: str) -> Tlv | None:
    found = attrs.get(oid, [])
    if len(found) > 1 or (found and len(found[0]) != 1):
        raise As2Error(_AUTH, f"signed attribute {oid} must appear once with one value")
    return found[0][0] if found else None


def _check_attributes(
    attrs: dict[str, list[list[Tlv]]], content_type: str, digest: bytes
) -> dt.datetime | None:
    declared_type = _single(attrs, _CONTENT_TYPE)
    declared_digest = _single(attrs, _MESSAGE_DIGEST)
    if declared_type is None or declared_digest is None:
        raise As2Error(_AUTH, "signed attributes lack content-type or message-digest")
    if declared_type.as_oid() != content_type:
        raise As2Error(_AUTH, "signed content-type attribute differs from the content's type")
    if not hmac.compare_digest(octets_of(declared_digest), digest):
        raise As2Error(
            Modifier.INTEGRITY_CHECK_FAILED, "content does not match the signed message digest"
        )
    when = _single(attrs, _SIGNING_TIME)
    return None if when is None else time_of(when)


def _check_signature(
    cert: x509.Certificate,
    signer_info: SignerInfo,
    signed: bytes,
    digest: DigestAlgorithm,
    *,
    prehashed: bool,
) -> str:
    oid = signer_info.signature_oid
    signature = signer_info.signature
    hash_alg = digest.hash()
    chosen: Any = Prehashed(hash_alg) if prehashed else hash_alg
    key = cert.public_key()
    try:
        if oid in (OID.RSA_ENCRYPTION, digest.rsa_signature_oid) and isinstance(
            key, rsa.RSAPublicKey
        ):
            key.verify(signature, signed, padding.PKCS1v15(), chosen)
            return "rsa-pkcs1v15"
        if oid == OID.RSASSA_PSS and isinstance(key, rsa.RSAPublicKey):
            pss = _pss_padding(signer_info.pss_parameters(), digest)
            key.verify(signature, signed, pss, chosen)
            return "rsa-pss"
        if oid == digest.ecdsa_signature_oid and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(chosen))
            return "ecdsa"
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError) as exc:
        subject = cert.subject.rfc4514_string()
        raise As2Error(_AUTH, f"signature does not verify with {subject}") from exc
    raise As2Error(_AUTH, f"signature algorithm {oid} unsupported or not matching the key")


def _pss_padding(params: Any, digest: DigestAlgorithm) -> padding.PSS:
    """RSASSA-PSS-params (RFC 4055): hash must equal the SignerInfo digest, trailer 1."""
    if params is None or params.native is None:
        raise As2Error(_AUTH, "RSASSA-PSS without parameters")
    hash_alg = digest_from_oid(params["hash_algorithm"]["algorithm"].dotted)
    mgf = params["mask_gen_algorithm"]
    mgf_hash = digest_from_oid(mgf["parameters"]["algorithm"].dotted)
    if hash_alg is not digest or mgf["algorithm"].dotted != OID.MGF1 or mgf_hash is None:
        raise As2Error(_AUTH, "RSASSA-PSS parameters do not match the digest algorithm")
    if params["trailer_field"].native not in ("trailer_field_bc", 1):
        raise As2Error(_AUTH, "RSASSA-PSS trailer field must be 1")
    salt = params["salt_length"].native
    if not 0 <= salt <= 512:
        raise As2Error(_AUTH, f"RSASSA-PSS salt length {salt} out of range")
    return padding.PSS(mgf=padding.MGF1(mgf_hash.hash()), salt_length=salt)


def _check_validity(cert: x509.Certificate, now: dt.datetime | None) -> None:
    if now is None:
        return
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        subject = cert.subject.rfc4514_string()
        raise As2Error(_AUTH, f"signer certificate {subject} not valid before {start:%Y-%m-%d}")
    if now > end:
        subject = cert.subject.rfc4514_string()
        raise As2Error(_AUTH, f"signer certificate {subject} expired on {end:%Y-%m-%d}")
