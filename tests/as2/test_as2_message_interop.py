"""AS2 messages against OpenSSL, the implementation nobody here wrote.

Inbound: OpenSSL signs (S/MIME multipart/signed, LF or CRLF) and encrypts what AIFE would
send; our core must return the payload byte for byte with the right MIC. Outbound: OpenSSL
decrypts and verifies what we build. CompressedData is assembled with asn1crypto (no zlib in
this OpenSSL) and checked with `openssl asn1parse` + Python zlib.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms

from protocols.as2.algorithms import ContentCipher, DigestAlgorithm, KeyTransport, SignatureScheme
from protocols.as2.errors import As2Error, Modifier
from protocols.as2.message import build_message, parse_message
from protocols.as2.smime import signed_part
from tests.as2.as2_helpers import (
    Pki,
    as2_headers,
    der_octets,
    openssl,
    payload_entity,
    receive_params,
    send,
    split_smime,
)
from tests.pki import now as clock

pytestmark = pytest.mark.interop

PAYLOAD = b'<?xml version="1.0"?>\n<Invoice>\n  <Note>LF only, no CR</Note>\n</Invoice>\n'
ENTITY = payload_entity(PAYLOAD)
SIGN = [(md, pad) for md in ("sha1", "sha256", "sha384", "sha512") for pad in ("pkcs1", "pss")]
ENCRYPT = [
    ["-aes-128-cbc"],
    ["-aes-192-cbc"],
    ["-aes-256-cbc"],
    ["-aes-128-gcm"],
    ["-aes-256-gcm"],
    ["-des-ede3-cbc"],
    ["-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"],
    ["-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
]


def _openssl_sign(pki: Pki, content: bytes, *options: str, signer: Any = None) -> bytes:
    party = signer or pki.aife
    return openssl(
        "cms", "-sign", "-binary", "-signer", party.cert_path, "-inkey", party.key_path,
        *options, stdin=content,
    )  # fmt: skip


def _openssl_encrypt(pki: Pki, content: bytes, *options: str) -> bytes:
    return openssl(
        "cms", "-encrypt", "-binary", "-recip", pki.pa.cert_path, *options, "-outform", "DER",
        stdin=content,
    )  # fmt: skip


def _enveloped_headers() -> dict[str, str]:
    return {
        **as2_headers(),
        "Content-Type": "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
    }


def _compressed_entity(content: bytes) -> bytes:
    """A compressed-data S/MIME entity built without our encoder."""
    info = asn1_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": {
                "version": "v0",
                "compression_algorithm": {"algorithm": "zlib"},
                "encap_content_info": {"content_type": "data", "content": zlib.compress(content)},
            },
        }
    )
    der: bytes = info.dump()
    head = b"Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\n"
    return head + b"Content-Transfer-Encoding: binary\r\n\r\n" + der


def _mic(data: bytes, name: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(name, data).digest()).decode()


# --- inbound: OpenSSL builds, we parse ------------------------------------------------------


@pytest.mark.parametrize(("md", "pad"), SIGN)
@pytest.mark.parametrize("encryption", ENCRYPT, ids=lambda o: "+".join(o).replace("-", ""))
def test_openssl_signed_and_encrypted_messages(
    pki: Pki, md: str, pad: str, encryption: list[str]
) -> None:
    signed = _openssl_sign(pki, ENTITY, "-md", md, "-keyopt", f"rsa_padding_mode:{pad}")
    body = _openssl_encrypt(pki, signed, *encryption)
    received = parse_message(_enveloped_headers(), body, params=receive_params(pki))
    assert received.payload == PAYLOAD
    assert (received.signed, received.encrypted, received.compressed) == (True, True, False)
    assert received.file_name == "FSO1100A_42.xml"
    assert received.mic.header_value() == f"{_mic(ENTITY)}, sha-256"  # requested micalg


@pytest.mark.parametrize("eol", [[], ["-crlfeol"]], ids=["lf", "crlf"])
def test_openssl_smime_output_with_base64_envelope(pki: Pki, eol: list[str]) -> None:
    signed = _openssl_sign(pki, ENTITY, *eol)
    smime = openssl(
        "cms", "-encrypt", "-binary", "-aes-256-cbc", *eol, "-recip", pki.pa.cert_path,
        stdin=signed,
    )  # fmt: skip
    headers, body = split_smime(smime)
    assert headers["Content-Transfer-Encoding"] == "base64"
    received = parse_message({**as2_headers(), **headers}, body, params=receive_params(pki))
    assert received.payload == PAYLOAD


def test_openssl_signed_only_message_with_lf_delimiters(pki: Pki) -> None:
    headers, body = split_smime(_openssl_sign(pki, ENTITY))
    params = receive_params(pki, require_encryption=False)
    received = parse_message({**as2_headers(), **headers}, body, params=params)
    assert received.payload == PAYLOAD
    assert received.mic.header_value().startswith(_mic(ENTITY))


def test_openssl_opaque_signed_data_inside_encryption(pki: Pki) -> None:
    opaque = _openssl_sign(pki, ENTITY, "-nodetach")
    received = parse_message(
        _enveloped_headers(), _openssl_encrypt(pki, opaque), params=receive_params(pki)
    )
    assert received.payload == PAYLOAD
    assert received.signed


@pytest.mark.parametrize("before_sign", [True, False], ids=["compress-sign", "sign-compress"])
def test_compressed_inbound_in_either_order(pki: Pki, before_sign: bool) -> None:
    if before_sign:
        signed_entity = _compressed_entity(ENTITY)
        content = _openssl_sign(pki, signed_entity)
    else:
        signed_entity = ENTITY
        content = _compressed_entity(_openssl_sign(pki, ENTITY))
    received = parse_message(
        _enveloped_headers(), _openssl_encrypt(pki, content), params=receive_params(pki)
    )
    assert received.payload == PAYLOAD
    assert received.compressed
    assert received.mic.header_value().startswith(_mic(signed_entity))


def test_signature_around_an_opaque_signature_is_signed_twice(pki: Pki) -> None:
    opaque = _openssl_sign(pki, ENTITY, "-nodetach", "-crlfeol")
    outer = signed_part(
        [opaque],
        identity=pki.aife.signing(),
        digest=DigestAlgorithm.SHA256,
        scheme=SignatureScheme.RSA_PKCS1V15,
        now=clock(),
    )
    headers = {**as2_headers(), **dict(outer.headers)}
    with pytest.raises(As2Error, match="signed twice"):
        parse_message(
            headers, b"".join(outer.body), params=receive_params(pki, require_encryption=False)
        )


def test_openssl_message_signed_by_another_connection(pki: Pki) -> None:
    signed = _openssl_sign(pki, ENTITY, signer=pki.other)
    with pytest.raises(As2Error) as caught:
        parse_message(
            _enveloped_headers(), _openssl_encrypt(pki, signed), params=receive_params(pki)
        )
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_openssl_message_for_an_unknown_recipient(pki: Pki) -> None:
    body = openssl(
        "cms", "-encrypt", "-binary", "-recip", pki.other.cert_path, "-outform", "DER",
        stdin=_openssl_sign(pki, ENTITY),
    )  # fmt: skip
    with pytest.raises(As2Error, match="no RecipientInfo") as caught:
        parse_message(_enveloped_headers(), body, params=receive_params(pki))
    assert caught.value.modifier is Modifier.DECRYPTION_FAILED


def test_rollover_openssl_message_for_our_next_certificate(pki: Pki) -> None:
    body = openssl(
        "cms", "-encrypt", "-binary", "-keyid", "-recip", pki.pa_next.cert_path,
        "-outform", "DER", stdin=_openssl_sign(pki, ENTITY),
    )  # fmt: skip
    params = receive_params(pki, decryption=(pki.pa.decryption(), pki.pa_next.decryption()))
    assert parse_message(_enveloped_headers(), body, params=params).payload == PAYLOAD


# --- outbound: we build, OpenSSL opens ------------------------------------------------------


def _inflate(entity: bytes, tmp_path: Path) -> bytes:
    """Open a compressed-data entity with `openssl asn1parse` + Python zlib."""
    _, der = split_smime(entity)
    (tmp_path / "z.der").write_bytes(der)
    listing = openssl("asn1parse", "-inform", "DER", "-in", tmp_path / "z.der").decode()
    assert "id-smime-ct-compressedData" in listing
    return zlib.decompress(der_octets(listing, der))


def _openssl_verify(pki: Pki, entity: bytes, tmp_path: Path) -> bytes:
    """Verify a multipart/signed entity with `openssl cms -verify` on its detached parts.

    OpenSSL's own S/MIME reader rewrites line endings of the signed part (LF with -binary,
    CRLF without), so a payload mixing both cannot go through it; the parts are cut here
    with plain byte operations and handed to OpenSSL as content + DER signature.
    """
    headers, body = split_smime(entity)
    boundary = re.search(r'boundary="?([^";]+)"?', headers["Content-Type"])
    assert boundary is not None
    delimiter = b"\r\n--" + boundary.group(1).encode()
    first, second = (b"\r\n" + body).split(delimiter)[1:3]
    content = first.split(b"\r\n", 1)[1]
    _, signature = split_smime(second.split(b"\r\n", 1)[1])
    (tmp_path / "content").write_bytes(content)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signature))
    return openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
        "-content", tmp_path / "content", "-CAfile", pki.root_path, "-purpose", "any",
    )  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"compress": False, "cipher": ContentCipher.AES128_CBC},
        {"compress_before_sign": True, "cipher": ContentCipher.AES256_GCM},
        {"key_transport": KeyTransport.RSA_OAEP_SHA256, "digest": DigestAlgorithm.SHA512},
        {"key_transport": KeyTransport.RSA_OAEP_SHA1, "use_ski": True},
        {"signature_scheme": SignatureScheme.RSA_PSS, "digest": DigestAlgorithm.SHA384},
        {"signature_scheme": SignatureScheme.RSA_PSS, "cipher": ContentCipher.AES192_GCM},
    ],
    ids=["defaults", "aes128", "gcm-compress-first", "oaep256", "oaep1-ski", "pss384", "pss-gcm"],
)
def test_openssl_decrypts_and_verifies_our_messages(
    pki: Pki, tmp_path: Path, options: dict[str, Any]
) -> None:
    params = send(pki, **options)
    built = build_message(PAYLOAD, params=params, now=clock())
    (tmp_path / "body.der").write_bytes(built.body)
    entity = openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "body.der",
        "-inkey", pki.aife.key_path, "-recip", pki.aife.cert_path,
    )  # fmt: skip
    if params.compress and not params.compress_before_sign:
        entity = _inflate(entity, tmp_path)
    signed_content = _openssl_verify(pki, entity, tmp_path)
    algorithm = params.digest.asn1_name
    assert built.mic.header_value() == f"{_mic(signed_content, algorithm)}, {params.digest}"
    if params.compress_before_sign:
        signed_content = _inflate(signed_content, tmp_path)
    headers, payload = split_smime(signed_content)
    assert payload == PAYLOAD
    assert headers["Content-Disposition"] == "attachment; filename=FSO1100A_42.xml"


def test_openssl_verifies_our_signed_only_message(pki: Pki, tmp_path: Path) -> None:
    built = build_message(
        PAYLOAD, params=send(pki, encryption_certificate=None, compress=False), now=clock()
    )
    head = "".join(f"{k}: {v}\r\n" for k, v in built.headers.items()).encode()
    _, payload = split_smime(_openssl_verify(pki, head + b"\r\n" + built.body, tmp_path))
    assert payload == PAYLOAD
