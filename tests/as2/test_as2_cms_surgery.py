"""Hostile CMS built by surgery on valid structures: every refusal names its reason.

Each test takes a valid envelope or signature, changes one field with asn1crypto (an
implementation independent of ours), and checks the typed error and its modifier.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from protocols.as2 import der
from protocols.as2.algorithms import OID, ContentCipher, KeyTransport, SignatureScheme
from protocols.as2.cms import (
    CertRef,
    DecryptionIdentity,
    SigningIdentity,
    content_info,
    describe_identifier,
    read_content_info,
    subject_key_identifier,
)
from protocols.as2.cms_decrypt import decrypt
from protocols.as2.cms_envelope import encrypt
from protocols.as2.cms_sign import sign_detached
from protocols.as2.cms_verify import verify_detached
from protocols.as2.errors import As2BuildError, As2Error, Modifier
from tests.as2.as2_helpers import Pki

CONTENT = b"Content-Type: application/xml\r\n\r\n<Invoice/>\n"


def _envelope(pki: Pki, edit: Callable[[Any], None], **options: Any) -> bytes:
    info = asn1_cms.ContentInfo.load(encrypt(CONTENT, recipients=[pki.pa.cert], **options))
    edit(info["content"])
    return bytes(info.dump(force=True))


def _decrypt_error(pki: Pki, data: bytes) -> As2Error:
    with pytest.raises(As2Error) as caught:
        decrypt(data, identities=[pki.pa.decryption()])
    return caught.value


def _algorithm(content: Any) -> Any:
    key = "auth_encrypted_content_info" if "mac" in content else "encrypted_content_info"
    return content[key]["content_encryption_algorithm"]


# --- EnvelopedData / AuthEnvelopedData ------------------------------------------------------


def _set_oid(oid: str) -> Callable[[Any], None]:
    def edit(content: Any) -> None:
        _algorithm(content)["algorithm"] = oid

    return edit


def _set_params(value: Any) -> Callable[[Any], None]:
    def edit(content: Any) -> None:
        _algorithm(content)["parameters"] = value

    return edit


def _without_params(content: Any) -> None:
    bare = asn1_algos.EncryptionAlgorithm({"algorithm": "aes256_cbc"})
    content["encrypted_content_info"]["content_encryption_algorithm"] = bare


def _key_algorithm(value: dict[str, Any]) -> Callable[[Any], None]:
    def edit(content: Any) -> None:
        ktri = content["recipient_infos"][0].chosen
        ktri["key_encryption_algorithm"] = value

    return edit


@pytest.mark.parametrize(
    ("cipher", "edit", "reason"),
    [
        (ContentCipher.AES256_CBC, _set_oid("2.16.840.1.101.3.4.1.43"), "unsupported content"),
        (ContentCipher.AES256_CBC, _set_oid("2.16.840.1.101.3.4.1.46"), "does not fit"),
        (ContentCipher.AES256_CBC, _without_params, "lacks parameters"),
        (ContentCipher.AES256_CBC, _set_params(core.OctetString(b"short")), "IV length"),
        (
            ContentCipher.AES256_GCM,
            _set_params(core.Sequence(contents=core.OctetString(b"x" * 4).dump())),
            "nonce length",
        ),
        (
            ContentCipher.AES256_GCM,
            _set_params(
                core.Sequence(
                    contents=core.OctetString(os.urandom(12)).dump() + core.Integer(8).dump()
                )
            ),
            "tag length",
        ),
        (ContentCipher.AES256_CBC, _key_algorithm({"algorithm": "aes256_wrap"}), "key transport"),
        (
            ContentCipher.AES256_CBC,
            _key_algorithm(
                {
                    "algorithm": "rsaes_oaep",
                    "parameters": {
                        "hash_algorithm": {"algorithm": "sha384"},
                        "mask_gen_algorithm": {
                            "algorithm": "mgf1",
                            "parameters": {"algorithm": "sha384"},
                        },
                    },
                }
            ),
            "hash",
        ),
        (
            ContentCipher.AES256_CBC,
            _key_algorithm(
                {
                    "algorithm": "rsaes_oaep",
                    "parameters": {
                        "p_source_algorithm": {"algorithm": "p_specified", "parameters": b"label"}
                    },
                }
            ),
            "hash/MGF/label",
        ),
    ],
    ids=[
        "unknown-cipher",
        "gcm-in-enveloped",
        "no-iv",
        "short-iv",
        "short-nonce",
        "short-tag",
        "key-wrap",
        "oaep-sha384",
        "oaep-label",
    ],
)
def test_surgery_on_envelopes_fails_decryption(
    pki: Pki, cipher: ContentCipher, edit: Callable[[Any], None], reason: str
) -> None:
    error = _decrypt_error(pki, _envelope(pki, edit, cipher=cipher))
    assert error.modifier is Modifier.DECRYPTION_FAILED
    assert reason in error.reason


def test_ciphertext_not_a_whole_number_of_blocks(pki: Pki) -> None:
    def edit(content: Any) -> None:
        info = content["encrypted_content_info"]
        info["encrypted_content"] = info["encrypted_content"].native[:-3]

    assert "whole number of blocks" in _decrypt_error(pki, _envelope(pki, edit)).reason


def _rebuilt(oid: str, fields: list[bytes]) -> bytes:
    """A ContentInfo around a SEQUENCE of already-encoded fields (our DER writer)."""
    return b"".join(content_info(oid, der.wrap(0x30, fields)))


def test_auth_enveloped_data_without_mac(pki: Pki) -> None:
    data = encrypt(CONTENT, recipients=[pki.pa.cert], cipher=ContentCipher.AES128_GCM)
    _, inner = read_content_info(data)
    fields = [bytes(field.raw) for field in inner.children()][:-1]  # drop the MAC
    error = _decrypt_error(pki, _rebuilt(OID.AUTH_ENVELOPED_DATA, fields))
    assert "lacks its MAC" in error.reason


def test_enveloped_data_with_only_a_version(pki: Pki) -> None:
    error = _decrypt_error(pki, _rebuilt(OID.ENVELOPED_DATA, [der.encode_integer(0)]))
    assert "lacks recipients" in error.reason


def test_unsupported_recipient_kinds_are_skipped(pki: Pki) -> None:
    kekri = asn1_cms.RecipientInfo(
        name="kekri",
        value={
            "version": "v4",
            "kekid": {"key_identifier": b"k"},
            "key_encryption_algorithm": {"algorithm": "aes128_wrap"},
            "encrypted_key": b"\x00" * 24,
        },
    )

    def only_kekri(content: Any) -> None:
        content["recipient_infos"] = [kekri]

    def kekri_first(content: Any) -> None:
        content["recipient_infos"] = [kekri, content["recipient_infos"][0]]

    error = _decrypt_error(pki, _envelope(pki, only_kekri))
    assert "unsupported recipient kind kekri" in error.reason
    plain = decrypt(_envelope(pki, kekri_first), identities=[pki.pa.decryption()])
    assert bytes(plain.content) == CONTENT


def test_auth_enveloped_data_with_authenticated_attributes(pki: Pki) -> None:
    """authAttrs are the GCM additional data (RFC 5083 §2.1): built here independently."""
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    attrs = asn1_cms.CMSAttributes([{"type": "content_type", "values": ["data"]}])
    sealed = AESGCM(key).encrypt(nonce, CONTENT, attrs.dump())
    ref = CertRef.of(pki.pa.cert)
    info = asn1_cms.ContentInfo(
        {
            "content_type": "authenticated_enveloped_data",
            "content": asn1_cms.AuthEnvelopedData(
                {
                    "version": "v0",
                    "recipient_infos": [
                        asn1_cms.RecipientInfo(
                            name="ktri",
                            value={
                                "version": "v0",
                                "rid": asn1_cms.RecipientIdentifier(
                                    name="issuer_and_serial_number", value=ref.issuer_and_serial()
                                ),
                                "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
                                "encrypted_key": pki.pa.cert.public_key().encrypt(  # type: ignore[union-attr]
                                    key, padding.PKCS1v15()
                                ),
                            },
                        )
                    ],
                    "auth_encrypted_content_info": {
                        "content_type": "data",
                        "content_encryption_algorithm": {
                            "algorithm": "aes256_gcm",
                            "parameters": core.Sequence(
                                contents=core.OctetString(nonce).dump() + core.Integer(16).dump()
                            ),
                        },
                        "encrypted_content": sealed[:-16],
                    },
                    "auth_attrs": attrs,
                    "mac": sealed[-16:],
                }
            ),
        }
    )
    found = decrypt(info.dump(), identities=[pki.pa.decryption()])
    assert bytes(found.content) == CONTENT
    assert found.cipher is ContentCipher.AES256_GCM


# --- SignedData -----------------------------------------------------------------------------


def _signature(pki: Pki, edit: Callable[[Any], None], **options: Any) -> bytes:
    signed = sign_detached(CONTENT, identity=pki.aife.signing(), now=_NOW, **options)
    info = asn1_cms.ContentInfo.load(signed)
    edit(info["content"]["signer_infos"][0])
    return bytes(info.dump(force=True))


_NOW = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def _pss_params(**changes: Any) -> Callable[[Any], None]:
    def edit(signer: Any) -> None:
        params = signer["signature_algorithm"]["parameters"]
        for name, value in changes.items():
            params[name] = value

    return edit


def _set_signer(name: str, value: Any) -> Callable[[Any], None]:
    def edit(signer: Any) -> None:
        signer[name] = value

    return edit


def _content_type_attribute(signer: Any) -> None:
    attrs = signer["signed_attrs"]
    for attr in attrs:
        if attr["type"].native == "content_type":
            attr["values"] = ["enveloped_data"]


def _drop_message_digest(signer: Any) -> None:
    attrs = signer["signed_attrs"]
    signer["signed_attrs"] = [a for a in attrs if a["type"].native != "message_digest"]


@pytest.mark.parametrize(
    ("edit", "options", "reason"),
    [
        (_set_signer("digest_algorithm", {"algorithm": "md5"}), {}, "unsupported digest"),
        (_content_type_attribute, {}, "content-type attribute"),
        (_drop_message_digest, {}, "lack content-type or message-digest"),
        (_set_signer("signature_algorithm", {"algorithm": "sha256_dsa"}), {}, "unsupported or"),
        (
            _set_signer("signature_algorithm", {"algorithm": "rsassa_pss"}),
            {"scheme": SignatureScheme.RSA_PSS},
            "without parameters",
        ),
        (_pss_params(trailer_field=2), {"scheme": SignatureScheme.RSA_PSS}, "trailer field"),
        (_pss_params(salt_length=4096), {"scheme": SignatureScheme.RSA_PSS}, "salt length"),
    ],
    ids=["md5", "content-type", "no-digest", "dsa", "pss-no-params", "pss-trailer", "pss-salt"],
)
def test_surgery_on_signatures_fails_authentication(
    pki: Pki, edit: Callable[[Any], None], options: dict[str, Any], reason: str
) -> None:
    with pytest.raises(As2Error) as caught:
        verify_detached(_signature(pki, edit, **options), CONTENT, trusted=[pki.aife.cert])
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED
    assert reason in caught.value.reason


def test_unsupported_signing_key_is_a_build_error(pki: Pki) -> None:
    identity = SigningIdentity(ed25519.Ed25519PrivateKey.generate(), pki.aife.cert)  # type: ignore[arg-type]
    with pytest.raises(As2BuildError, match="unsupported signing key"):
        sign_detached(CONTENT, identity=identity, now=_NOW)


# --- certificate references -----------------------------------------------------------------


def test_certificate_without_ski_extension_uses_the_rfc5280_method(pki: Pki) -> None:
    key = pki.other.rsa_key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no-ski")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert subject_key_identifier(cert) == expected
    envelope = encrypt(
        CONTENT, recipients=[cert], use_ski=True, key_transport=KeyTransport.RSA_OAEP_SHA256
    )
    assert bytes(decrypt(envelope, identities=[DecryptionIdentity(key, cert)]).content) == CONTENT


def test_unknown_identifier_kinds_match_nothing(pki: Pki) -> None:
    class Other:
        name = "originator_key"

    assert not CertRef.of(pki.pa.cert).matches(Other())
    assert describe_identifier(Other()) == "identifier of kind originator_key"


def test_pss_identifier_uses_explicit_parameters(pki: Pki) -> None:
    signed = asn1_cms.ContentInfo.load(
        sign_detached(
            CONTENT, identity=pki.aife.signing(), now=_NOW, scheme=SignatureScheme.RSA_PSS
        )
    )
    params = signed["content"]["signer_infos"][0]["signature_algorithm"]["parameters"]
    assert isinstance(params, asn1_algos.RSASSAPSSParams)
    assert params["hash_algorithm"]["algorithm"].native == "sha256"
    assert params["salt_length"].native == 32
