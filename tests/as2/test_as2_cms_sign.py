"""Detached CMS signatures: hostile signatures first, then OpenSSL in both directions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms

from protocols.as2.algorithms import DigestAlgorithm, SignatureScheme
from protocols.as2.cms_sign import sign_detached
from protocols.as2.cms_verify import verify_detached, verify_encapsulated
from protocols.as2.errors import As2BuildError, As2Error, Modifier
from tests.as2.as2_helpers import Pki, openssl, payload_entity

CONTENT = payload_entity(b"<Invoice>\n  LF only\n</Invoice>\n\x00\xff\r")


def _sign(pki: Pki, now: dt.datetime, **options: object) -> bytes:
    return sign_detached(CONTENT, identity=pki.aife.signing(), now=now, **options)  # type: ignore[arg-type]


# --- hostile --------------------------------------------------------------------------------


def test_tampered_content_fails_integrity(pki: Pki, now: dt.datetime) -> None:
    signature = _sign(pki, now)
    with pytest.raises(As2Error) as caught:
        verify_detached(signature, CONTENT[:-1] + b"X", trusted=[pki.aife.cert])
    assert caught.value.modifier is Modifier.INTEGRITY_CHECK_FAILED


def test_tampered_signature_value_fails_authentication(pki: Pki, now: dt.datetime) -> None:
    signature = bytearray(_sign(pki, now))
    signature[-5] ^= 0x01  # inside the RSA signature value, the last field
    with pytest.raises(As2Error, match="does not verify") as caught:
        verify_detached(bytes(signature), CONTENT, trusted=[pki.aife.cert])
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_signer_of_another_connection_fails_authentication(pki: Pki, now: dt.datetime) -> None:
    signature = sign_detached(CONTENT, identity=pki.other.signing(), now=now)
    with pytest.raises(As2Error, match="not among the expected") as caught:
        verify_detached(signature, CONTENT, trusted=[pki.aife.cert, pki.pa.cert])
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_expired_signer_is_reported_when_now_is_given(pki: Pki, now: dt.datetime) -> None:
    signature = sign_detached(CONTENT, identity=pki.expired.signing(), now=now)
    verified = verify_detached(signature, CONTENT, trusted=[pki.expired.cert])
    assert verified.certificate == pki.expired.cert  # the core reports who signed
    with pytest.raises(As2Error, match="expired on") as caught:
        verify_detached(signature, CONTENT, trusted=[pki.expired.cert], now=now)
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_signer_not_yet_valid_is_refused(pki: Pki, now: dt.datetime) -> None:
    signature = _sign(pki, now)
    with pytest.raises(As2Error, match="not valid before"):
        verify_detached(
            signature, CONTENT, trusted=[pki.aife.cert], now=now - dt.timedelta(days=30)
        )


def test_digest_refused_by_policy_is_insufficient_security(pki: Pki, now: dt.datetime) -> None:
    signature = _sign(pki, now, digest=DigestAlgorithm.SHA1)
    with pytest.raises(As2Error) as caught:
        verify_detached(
            signature,
            CONTENT,
            trusted=[pki.aife.cert],
            accepted_digests=frozenset({DigestAlgorithm.SHA256}),
        )
    assert caught.value.modifier is Modifier.INSUFFICIENT_MESSAGE_SECURITY


def test_truncated_signature_is_always_a_typed_error(pki: Pki, now: dt.datetime) -> None:
    signature = _sign(pki, now)
    for cut in range(0, len(signature), 7):
        with pytest.raises(As2Error):
            verify_detached(signature[:cut], CONTENT, trusted=[pki.aife.cert])


def test_no_signer_info_is_refused(pki: Pki, now: dt.datetime) -> None:
    info = asn1_cms.ContentInfo.load(_sign(pki, now))
    info["content"]["signer_infos"] = []
    with pytest.raises(As2Error, match="no SignerInfo"):
        verify_detached(info.dump(force=True), CONTENT, trusted=[pki.aife.cert])


def test_pss_parameters_not_matching_the_digest_are_refused(pki: Pki, now: dt.datetime) -> None:
    info = asn1_cms.ContentInfo.load(_sign(pki, now, scheme=SignatureScheme.RSA_PSS))
    params = info["content"]["signer_infos"][0]["signature_algorithm"]["parameters"]
    params["hash_algorithm"] = {"algorithm": "sha512"}
    with pytest.raises(As2Error, match="PSS parameters") as caught:
        verify_detached(info.dump(force=True), CONTENT, trusted=[pki.aife.cert])
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_duplicated_message_digest_attribute_is_refused(pki: Pki, now: dt.datetime) -> None:
    info = asn1_cms.ContentInfo.load(_sign(pki, now))
    attrs = info["content"]["signer_infos"][0]["signed_attrs"]
    digest = next(a for a in attrs if a["type"].native == "message_digest")
    attrs.append(asn1_cms.CMSAttribute.load(digest.dump()))
    with pytest.raises(As2Error, match="once"):
        verify_detached(info.dump(force=True), CONTENT, trusted=[pki.aife.cert])


def test_enveloped_data_is_not_a_signature(pki: Pki) -> None:
    enveloped = openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", pki.pa.cert_path, stdin=CONTENT
    )
    with pytest.raises(As2Error, match="expected SignedData"):
        verify_detached(enveloped, CONTENT, trusted=[pki.aife.cert])


def test_naive_signing_time_is_a_build_error(pki: Pki) -> None:
    with pytest.raises(As2BuildError):
        sign_detached(CONTENT, identity=pki.aife.signing(), now=dt.datetime(2026, 1, 1))


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("digest", list(DigestAlgorithm))
@pytest.mark.parametrize("scheme", list(SignatureScheme))
@pytest.mark.parametrize("use_ski", [False, True])
def test_sign_verify_round_trip(
    pki: Pki, now: dt.datetime, digest: DigestAlgorithm, scheme: SignatureScheme, use_ski: bool
) -> None:
    signature = _sign(pki, now, digest=digest, scheme=scheme, use_ski=use_ski)
    verified = verify_detached(signature, [CONTENT[:10], CONTENT[10:]], trusted=[pki.aife.cert])
    assert verified.digest is digest
    assert verified.signature_algorithm == scheme.value
    assert verified.signing_time == now


def test_ecdsa_signatures_round_trip(pki: Pki, now: dt.datetime) -> None:
    signature = sign_detached(CONTENT, identity=pki.ec.signing(), now=now)
    assert verify_detached(signature, CONTENT, trusted=[pki.ec.cert]).signature_algorithm == "ecdsa"


# --- interop with OpenSSL -------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("digest", list(DigestAlgorithm))
@pytest.mark.parametrize("scheme", list(SignatureScheme))
def test_openssl_verifies_our_signatures(
    pki: Pki, now: dt.datetime, tmp_path: Path, digest: DigestAlgorithm, scheme: SignatureScheme
) -> None:
    (tmp_path / "content").write_bytes(CONTENT)
    (tmp_path / "sig.der").write_bytes(_sign(pki, now, digest=digest, scheme=scheme))
    openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
        "-content", tmp_path / "content", "-CAfile", pki.root_path, "-purpose", "any",
        "-out", tmp_path / "out",
    )  # fmt: skip
    assert (tmp_path / "out").read_bytes() == CONTENT


@pytest.mark.interop
@pytest.mark.parametrize("md", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("pad", ["pkcs1", "pss"])
def test_we_verify_openssl_signatures(pki: Pki, tmp_path: Path, md: str, pad: str) -> None:
    (tmp_path / "content").write_bytes(CONTENT)
    signature = openssl(
        "cms", "-sign", "-binary", "-md", md, "-signer", pki.aife.cert_path,
        "-inkey", pki.aife.key_path, "-keyopt", f"rsa_padding_mode:{pad}",
        "-in", tmp_path / "content", "-outform", "DER",
    )  # fmt: skip
    verified = verify_detached(signature, CONTENT, trusted=[pki.aife.cert])
    assert verified.digest.asn1_name == md
    assert verified.signature_algorithm == ("rsa-pss" if pad == "pss" else "rsa-pkcs1v15")


@pytest.mark.interop
@pytest.mark.parametrize(
    "extra",
    [
        ["-keyid"],  # signer designated by subject key identifier
        ["-noattr"],  # no signed attributes: signature over the content digest
        ["-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:max"],
        ["-stream", "-indef"],  # BER indefinite lengths
    ],
    ids=["ski", "noattr", "pss-max-salt", "ber-stream"],
)
def test_we_verify_openssl_signature_variants(pki: Pki, tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "content").write_bytes(CONTENT)
    signature = openssl(
        "cms", "-sign", "-binary", "-signer", pki.aife.cert_path, "-inkey", pki.aife.key_path,
        *extra, "-in", tmp_path / "content", "-outform", "DER",
    )  # fmt: skip
    assert verify_detached(signature, CONTENT, trusted=[pki.aife.cert]).certificate == pki.aife.cert


@pytest.mark.interop
def test_we_verify_openssl_opaque_signed_data(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "content").write_bytes(CONTENT)
    signed = openssl(
        "cms", "-sign", "-binary", "-nodetach", "-stream", "-indef", "-signer",
        pki.aife.cert_path, "-inkey", pki.aife.key_path, "-in", tmp_path / "content",
        "-outform", "DER",
    )  # fmt: skip
    verified, content = verify_encapsulated(signed, trusted=[pki.aife.cert])
    assert bytes(content) == CONTENT
    assert verified.certificate == pki.aife.cert
    with pytest.raises(As2Error, match="no content"):
        verify_encapsulated(_openssl_detached(pki, tmp_path), trusted=[pki.aife.cert])


def _openssl_detached(pki: Pki, tmp_path: Path) -> bytes:
    return openssl(
        "cms", "-sign", "-binary", "-signer", pki.aife.cert_path, "-inkey", pki.aife.key_path,
        "-in", tmp_path / "content", "-outform", "DER",
    )  # fmt: skip
