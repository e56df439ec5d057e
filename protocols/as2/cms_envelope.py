"""Outbound encryption: EnvelopedData (AES-CBC) and AuthEnvelopedData (AES-GCM, RFC 5083/5084).

The key is wrapped for each recipient with RSA PKCS#1 v1.5 or RSA-OAEP carrying explicit
RSAES-OAEP-params (RFC 3560). The ciphertext is produced once and joined once with its headers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocols.as2 import der
from protocols.as2.algorithms import OID, ContentCipher, KeyTransport
from protocols.as2.cms import CertRef, content_info
from protocols.as2.der import Chunk, chunks_of
from protocols.as2.errors import As2BuildError

__all__ = ["encrypt", "oaep_padding"]

GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16


def encrypt(
    content: Chunk | Sequence[Chunk],
    *,
    recipients: Sequence[x509.Certificate],
    cipher: ContentCipher = ContentCipher.AES256_CBC,
    key_transport: KeyTransport = KeyTransport.RSA_PKCS1V15,
    use_ski: bool = False,
) -> bytes:
    """DER ContentInfo: EnvelopedData for CBC ciphers, AuthEnvelopedData for GCM."""
    if cipher is ContentCipher.DES3_CBC:
        raise As2BuildError("3DES is accepted inbound only, never sent")
    if not recipients:
        raise As2BuildError("encryption needs at least one recipient certificate")
    key = os.urandom(cipher.key_size)
    infos = asn1_cms.RecipientInfos(
        [_recipient_info(cert, key, key_transport, use_ski=use_ski) for cert in recipients]
    )
    chunks = chunks_of(content)
    if cipher.aead:
        return b"".join(_auth_enveloped(chunks, key, cipher, infos.dump()))
    return b"".join(_enveloped(chunks, key, cipher, infos.dump(), use_ski=use_ski))


def oaep_padding(transport: KeyTransport) -> padding.AsymmetricPadding:
    """The cryptography padding object for a key-transport choice."""
    if transport is KeyTransport.RSA_PKCS1V15:
        return padding.PKCS1v15()
    hash_alg: hashes.HashAlgorithm = (
        hashes.SHA256() if transport is KeyTransport.RSA_OAEP_SHA256 else hashes.SHA1()  # noqa: S303 - RFC 3560 OAEP default, asked by partners
    )
    return padding.OAEP(mgf=padding.MGF1(hash_alg), algorithm=hash_alg, label=None)


def _key_encryption_algorithm(transport: KeyTransport) -> dict[str, Any]:
    if transport is KeyTransport.RSA_PKCS1V15:
        return {"algorithm": "rsaes_pkcs1v15"}
    name = "sha256" if transport is KeyTransport.RSA_OAEP_SHA256 else "sha1"
    params = asn1_algos.RSAESOAEPParams(
        {
            "hash_algorithm": {"algorithm": name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": name}},
        }
    )  # all-default SHA-1 params encode as an empty SEQUENCE, present as RFC 4055 requires
    return {"algorithm": "rsaes_oaep", "parameters": params}


def _recipient_info(
    cert: x509.Certificate, key: bytes, transport: KeyTransport, *, use_ski: bool
) -> asn1_cms.RecipientInfo:
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise As2BuildError("recipient certificate does not hold an RSA key")
    ref = CertRef.of(cert)
    rid = (
        asn1_cms.RecipientIdentifier(name="subject_key_identifier", value=ref.ski)
        if use_ski
        else asn1_cms.RecipientIdentifier(
            name="issuer_and_serial_number", value=ref.issuer_and_serial()
        )
    )
    ktri = asn1_cms.KeyTransRecipientInfo(
        {
            "version": "v2" if use_ski else "v0",
            "rid": rid,
            "key_encryption_algorithm": _key_encryption_algorithm(transport),
            "encrypted_key": public_key.encrypt(key, oaep_padding(transport)),
        }
    )
    return asn1_cms.RecipientInfo(name="ktri", value=ktri)


def _enveloped(
    content: Sequence[Chunk], key: bytes, cipher: ContentCipher, infos: bytes, *, use_ski: bool
) -> list[Chunk]:
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body: list[Chunk] = [encryptor.update(chunk) for chunk in content]
    pad = 16 - sum(len(chunk) for chunk in content) % 16  # PKCS#7 padding, always present
    body.append(encryptor.update(bytes([pad]) * pad) + encryptor.finalize())
    algorithm = der.encode(0x30, der.encode_oid(cipher.oid), der.encode(0x04, iv))
    encrypted_info = der.wrap(0x30, [der.encode_oid(OID.DATA), algorithm, *der.wrap(0x80, body)])
    version = der.encode_integer(2 if use_ski else 0)
    return content_info(OID.ENVELOPED_DATA, der.wrap(0x30, [version, infos, *encrypted_info]))


def _auth_enveloped(
    content: Sequence[Chunk], key: bytes, cipher: ContentCipher, infos: bytes
) -> list[Chunk]:
    nonce = os.urandom(GCM_NONCE_SIZE)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    body: list[Chunk] = [encryptor.update(chunk) for chunk in content]
    body.append(encryptor.finalize())
    params = der.encode(0x30, der.encode(0x04, nonce), der.encode_integer(GCM_TAG_SIZE))
    algorithm = der.encode(0x30, der.encode_oid(cipher.oid), params)
    encrypted_info = der.wrap(0x30, [der.encode_oid(OID.DATA), algorithm, *der.wrap(0x80, body)])
    mac = der.encode(0x04, encryptor.tag)
    fields = [der.encode_integer(0), infos, *encrypted_info, mac]
    return content_info(OID.AUTH_ENVELOPED_DATA, der.wrap(0x30, fields))
