"""Detached CMS signatures (RFC 5652 SignedData) for multipart/signed.

Built with asn1crypto + cryptography primitives rather than the pkcs7 builder so that the
signing time comes from the caller's `now` and RSASSA-PSS carries explicit RSASSA-PSS-params
(RFC 4056) that OpenSSL accepts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from protocols.as2.algorithms import OID, DigestAlgorithm, SignatureScheme
from protocols.as2.cms import CertRef, SigningIdentity, certificate_der
from protocols.as2.der import Chunk, chunks_of
from protocols.as2.errors import As2BuildError

__all__ = ["sign_detached"]


def sign_detached(
    content: Chunk | Sequence[Chunk],
    *,
    identity: SigningIdentity,
    now: dt.datetime,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
    scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15,
    use_ski: bool = False,
) -> bytes:
    """DER ContentInfo(SignedData) over `content`, which is not embedded (detached)."""
    if now.tzinfo is None:
        raise As2BuildError("signing time must be timezone-aware")
    hasher = hashes.Hash(digest.hash())
    for chunk in chunks_of(content):
        hasher.update(chunk)
    attrs = _signed_attributes(hasher.finalize(), now)
    algorithm, signature = _sign(identity.key, attrs.dump(), digest=digest, scheme=scheme)
    version = "v3" if use_ski else "v1"  # RFC 5652 §5.3: v3 when the sid is an SKI
    signer = asn1_cms.SignerInfo(
        {
            "version": version,
            "sid": _signer_identifier(CertRef.of(identity.certificate), use_ski=use_ski),
            "digest_algorithm": {"algorithm": digest.asn1_name},
            "signed_attrs": attrs,
            "signature_algorithm": algorithm,
            "signature": signature,
        }
    )
    return _signed_data(signer, identity, digest, version)


def _signer_identifier(ref: CertRef, *, use_ski: bool) -> asn1_cms.SignerIdentifier:
    if use_ski:
        return asn1_cms.SignerIdentifier(name="subject_key_identifier", value=ref.ski)
    return asn1_cms.SignerIdentifier(name="issuer_and_serial_number", value=ref.issuer_and_serial())


def _signed_data(
    signer: asn1_cms.SignerInfo, identity: SigningIdentity, digest: DigestAlgorithm, version: str
) -> bytes:
    """SignedData without eContent (detached), carrying our certificate and its chain."""
    certificates = [
        asn1_cms.CertificateChoices(
            name="certificate", value=asn1_x509.Certificate.load(certificate_der(cert))
        )
        for cert in (identity.certificate, *identity.chain)
    ]
    signed_data = asn1_cms.SignedData(
        {
            "version": version,
            "digest_algorithms": [{"algorithm": digest.asn1_name}],
            "encap_content_info": {"content_type": "data"},
            "certificates": certificates,
            "signer_infos": [signer],
        }
    )
    info = asn1_cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    encoded: bytes = info.dump()
    return encoded


def _signed_attributes(message_digest: bytes, now: dt.datetime) -> asn1_cms.CMSAttributes:
    """content-type, signing-time and message-digest; asn1crypto DER-sorts the SET."""
    when = now.astimezone(dt.UTC)
    kind = "utc_time" if 1950 <= when.year < 2050 else "generalized_time"
    return asn1_cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "signing_time", "values": [asn1_cms.Time(name=kind, value=when)]},
            {"type": "message_digest", "values": [message_digest]},
        ]
    )


def _sign(
    key: Any, data: bytes, *, digest: DigestAlgorithm, scheme: SignatureScheme
) -> tuple[dict[str, Any], bytes]:
    """Signature over the DER SET OF signed attributes, with its AlgorithmIdentifier."""
    hash_alg = digest.hash()
    if isinstance(key, rsa.RSAPrivateKey):
        if scheme is SignatureScheme.RSA_PSS:
            salt = hash_alg.digest_size
            pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=salt)
            return _pss_identifier(digest, salt), key.sign(data, pss, hash_alg)
        return {"algorithm": OID.RSA_ENCRYPTION}, key.sign(data, padding.PKCS1v15(), hash_alg)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"algorithm": digest.ecdsa_signature_oid}, key.sign(data, ec.ECDSA(hash_alg))
    raise As2BuildError(f"unsupported signing key type {type(key).__name__}")


def _pss_identifier(digest: DigestAlgorithm, salt: int) -> dict[str, Any]:
    """id-RSASSA-PSS with explicit parameters (defaults are omitted by DER rules)."""
    params = asn1_algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": digest.asn1_name},
            "mask_gen_algorithm": {
                "algorithm": "mgf1",
                "parameters": {"algorithm": digest.asn1_name},
            },
            "salt_length": salt,
            "trailer_field": "trailer_field_bc",
        }
    )
    return {"algorithm": OID.RSASSA_PSS, "parameters": params}
