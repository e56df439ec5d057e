"""Our DER encoders against asn1crypto's, byte for byte (asn1crypto is the reference here).

SignedData is encoded by hand for speed; these tests rebuild the same structure with asn1crypto
(the implementation we used before) around the signature value we produced, and demand the
exact same bytes for every digest, scheme, key type, identifier kind and signing-time era.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.as2 import der
from protocols.as2.algorithms import (
    OID,
    ContentCipher,
    DigestAlgorithm,
    KeyTransport,
    SignatureScheme,
)
from protocols.as2.cms import CertRef, Identifier, SigningIdentity, read_identifier
from protocols.as2.cms_decrypt import decrypt
from protocols.as2.cms_envelope import encrypt
from protocols.as2.cms_sign import sign_detached
from protocols.as2.cms_signer import time_of
from protocols.as2.cms_verify import verify_detached
from tests.as2.as2_helpers import Pki

CONTENT = b"Content-Type: application/xml\r\n\r\n<Invoice/>\n"


def _attributes(digest: DigestAlgorithm, now: dt.datetime) -> asn1_cms.CMSAttributes:
    hasher = hashes.Hash(digest.hash())
    hasher.update(CONTENT)
    when = now.astimezone(dt.UTC)
    kind = "utc_time" if 1950 <= when.year < 2050 else "generalized_time"
    return asn1_cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "signing_time", "values": [asn1_cms.Time(name=kind, value=when)]},
            {"type": "message_digest", "values": [hasher.finalize()]},
        ]
    )


def _reference(
    ours: bytes,
    identity: SigningIdentity,
    *,
    now: dt.datetime,
    digest: DigestAlgorithm,
    use_ski: bool,
) -> bytes:
    """The SignedData asn1crypto builds from the same inputs and our signature value."""
    theirs = asn1_cms.ContentInfo.load(ours)["content"]["signer_infos"][0]
    attrs = _attributes(digest, now)
    ref = CertRef.of(identity.certificate)
    sid = (
        asn1_cms.SignerIdentifier(name="subject_key_identifier", value=ref.ski)
        if use_ski
        else asn1_cms.SignerIdentifier(
            name="issuer_and_serial_number", value=ref.issuer_and_serial()
        )
    )
    version = "v3" if use_ski else "v1"
    signer = asn1_cms.SignerInfo(
        {
            "version": version,
            "sid": sid,
            "digest_algorithm": {"algorithm": digest.asn1_name},
            "signed_attrs": attrs,
            "signature_algorithm": _reference_algorithm(theirs["signature_algorithm"]),
            "signature": theirs["signature"].native,
        }
    )
    certificates = [
        asn1_cms.CertificateChoices(
            name="certificate",
            value=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
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


def _reference_algorithm(found: Any) -> dict[str, Any]:
    """The AlgorithmIdentifier as asn1crypto writes it from a name (and PSS parameters)."""
    oid = found["algorithm"].dotted
    if oid != OID.RSASSA_PSS:
        return {"algorithm": oid}
    params = found["parameters"]
    digest = params["hash_algorithm"]["algorithm"].native
    pss = asn1_algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
            "salt_length": params["salt_length"].native,
            "trailer_field": "trailer_field_bc",
        }
    )
    return {"algorithm": OID.RSASSA_PSS, "parameters": pss}


@pytest.mark.parametrize("digest", list(DigestAlgorithm))
@pytest.mark.parametrize("scheme", list(SignatureScheme))
@pytest.mark.parametrize("use_ski", [False, True])
def test_signed_data_is_what_asn1crypto_encodes(
    pki: Pki, now: dt.datetime, digest: DigestAlgorithm, scheme: SignatureScheme, use_ski: bool
) -> None:
    identity = SigningIdentity(pki.aife.issued.key, pki.aife.cert, (pki.pa.cert,))
    ours = sign_detached(
        CONTENT, identity=identity, now=now, digest=digest, scheme=scheme, use_ski=use_ski
    )
    assert ours == _reference(ours, identity, now=now, digest=digest, use_ski=use_ski)
    assert verify_detached(ours, CONTENT, trusted=[pki.aife.cert]).digest is digest


_MICRO = dt.datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
_FRACTION = dt.datetime(2050, 6, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
_OFFSET = dt.datetime(1949, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-2)))


@pytest.mark.parametrize(
    ("when", "read_back"),
    [
        (dt.datetime(1950, 1, 1, tzinfo=dt.UTC), dt.datetime(1950, 1, 1, tzinfo=dt.UTC)),
        (_MICRO, _MICRO.replace(microsecond=0)),  # UTCTime has whole seconds
        (dt.datetime(2050, 1, 1, tzinfo=dt.UTC), dt.datetime(2050, 1, 1, tzinfo=dt.UTC)),
        (_FRACTION, _FRACTION),  # GeneralizedTime keeps the fraction
        (_OFFSET, dt.datetime(1950, 1, 1, 1, 0, tzinfo=dt.UTC)),  # UTC decides the era
    ],
    ids=["1950", "2049-micro", "2050", "2050-fraction", "1949-offset"],
)
def test_signing_time_encodings_are_what_asn1crypto_encodes(
    pki: Pki, when: dt.datetime, read_back: dt.datetime
) -> None:
    identity = pki.ec.signing()
    ours = sign_detached(CONTENT, identity=identity, now=when)
    assert ours == _reference(
        ours, identity, now=when, digest=DigestAlgorithm.SHA256, use_ski=False
    )
    assert verify_detached(ours, CONTENT, trusted=[pki.ec.cert]).signing_time == read_back


def test_certificate_reference_matches_an_equivalent_issuer_spelled_otherwise(pki: Pki) -> None:
    """Byte comparison is the fast path only: an issuer re-encoded with another string type
    (same name under RFC 5280 rules) still designates the certificate."""
    ref = CertRef.of(pki.pa.cert)
    name = asn1_x509.Name.build(
        {k: v.upper() if isinstance(v, str) else v for k, v in ref.issuer.native.items()},
        use_printable=True,
    )
    assert name.dump() != ref.issuer_der
    sid = asn1_cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value=asn1_cms.IssuerAndSerialNumber({"issuer": name, "serial_number": ref.serial}),
    )
    read = read_identifier(der.read_single(sid.dump(), "sid"))
    assert read == Identifier("issuer_and_serial_number", name.dump(), ref.serial)
    assert ref.matches(read)
    assert not ref.matches(Identifier("issuer_and_serial_number", name.dump(), ref.serial + 1))
    assert not ref.matches(Identifier("issuer_and_serial_number", ref.issuer_der, ref.serial - 1))
    assert ref.matches(Identifier("subject_key_identifier", ski=ref.ski))
    assert not ref.matches(Identifier("subject_key_identifier", ski=ref.ski[:-1]))


def test_identifiers_read_from_der_are_what_asn1crypto_reads(pki: Pki) -> None:
    ref = CertRef.of(pki.aife.cert)
    by_ski = asn1_cms.SignerIdentifier(name="subject_key_identifier", value=ref.ski)
    assert read_identifier(der.read_single(by_ski.dump(), "sid")) == Identifier(
        "subject_key_identifier", ski=ref.ski
    )
    by_name = asn1_cms.SignerIdentifier(
        name="issuer_and_serial_number", value=ref.issuer_and_serial()
    )
    assert read_identifier(der.read_single(by_name.dump(), "sid")) == Identifier(
        "issuer_and_serial_number", ref.issuer_der, ref.serial
    )
    with pytest.raises(der.DerError, match="unexpected tag"):
        read_identifier(der.read_single(b"\x81\x01\x00", "sid"))


def _reference_recipient(cert: Any, encrypted_key: bytes, transport: KeyTransport, *,
                         use_ski: bool) -> bytes:  # fmt: skip
    ref = CertRef.of(cert)
    rid = (
        asn1_cms.RecipientIdentifier(name="subject_key_identifier", value=ref.ski)
        if use_ski
        else asn1_cms.RecipientIdentifier(
            name="issuer_and_serial_number", value=ref.issuer_and_serial()
        )
    )
    algorithm: dict[str, Any] = {"algorithm": "rsaes_pkcs1v15"}
    if transport is not KeyTransport.RSA_PKCS1V15:
        name = "sha256" if transport is KeyTransport.RSA_OAEP_SHA256 else "sha1"
        params = asn1_algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": name},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": name}},
            }
        )
        algorithm = {"algorithm": "rsaes_oaep", "parameters": params}
    ktri = asn1_cms.KeyTransRecipientInfo(
        {
            "version": "v2" if use_ski else "v0",
            "rid": rid,
            "key_encryption_algorithm": algorithm,
            "encrypted_key": encrypted_key,
        }
    )
    encoded: bytes = asn1_cms.RecipientInfo(name="ktri", value=ktri).dump()
    return encoded


@pytest.mark.parametrize("transport", list(KeyTransport))
@pytest.mark.parametrize("cipher", [ContentCipher.AES256_CBC, ContentCipher.AES128_GCM])
@pytest.mark.parametrize("use_ski", [False, True])
def test_recipient_infos_are_what_asn1crypto_encodes(
    pki: Pki, transport: KeyTransport, cipher: ContentCipher, use_ski: bool
) -> None:
    recipients = [pki.pa.cert, pki.pa_next.cert]
    ours = encrypt(CONTENT, recipients=recipients, cipher=cipher, key_transport=transport,
                   use_ski=use_ski)  # fmt: skip
    infos = asn1_cms.ContentInfo.load(ours)["content"]["recipient_infos"]
    rid = "subject_key_identifier" if use_ski else "issuer_and_serial_number"
    by_rid = {info.chosen["rid"].dump(): info for info in infos}
    assert all(info.chosen["rid"].name == rid for info in infos)
    rebuilt = []
    for cert in recipients:
        ref = CertRef.of(cert)
        found = by_rid[der.encode(0x80, ref.ski) if use_ski else ref.issuer_and_serial_der()]
        encrypted_key = found.chosen["encrypted_key"].native
        rebuilt.append(_reference_recipient(cert, encrypted_key, transport, use_ski=use_ski))
    reference = asn1_cms.RecipientInfos([asn1_cms.RecipientInfo.load(r) for r in rebuilt])
    assert infos.dump() == reference.dump(force=True)  # asn1crypto sorts the SET OF
    for identity in (pki.pa.decryption(), pki.pa_next.decryption()):
        assert bytes(decrypt(ours, identities=[identity]).content) == CONTENT


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2049, 12, 31)))
def test_signing_times_read_as_asn1crypto_reads_them(when: dt.datetime) -> None:
    encoded = asn1_core.UTCTime(when.replace(tzinfo=dt.UTC)).dump()
    assert time_of(der.read_single(encoded, "time")) == asn1_core.UTCTime.load(encoded).native


@pytest.mark.parametrize(
    "raw",
    [b"2601011200Z", b"260101120000+0200", b"20260101120000Z", b"20260101120000.5Z"],
    ids=["no-seconds", "offset", "generalized", "generalized-fraction"],
)
def test_other_time_forms_are_read_by_asn1crypto(raw: bytes) -> None:
    kind = (
        asn1_core.GeneralizedTime
        if len(raw.split(b".")[0].rstrip(b"Z")) == 14
        else (asn1_core.UTCTime)
    )
    encoded = kind(raw.decode()).dump()
    assert time_of(der.read_single(encoded, "time")) == kind.load(encoded).native


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"\x17\x0d261301120000Z", "month must be in"), (b"\x04\x01\x00", "unexpected tag")],
)
def test_impossible_or_mistyped_times_are_errors(raw: bytes, reason: str) -> None:
    """Both are ValueErrors: verification reports them as a malformed SignerInfo."""
    with pytest.raises(ValueError, match=reason):
        time_of(der.read_single(raw, "time"))
