"""Outbound encryption: EnvelopedData (AES-CBC) and AuthEnvelopedData (AES-GCM, RFC 5083/5084).

The key is wrapped for each recipient with RSA PKCS#1 v1.5 or RSA-OAEP carrying explicit
RSAES-OAEP-params (RFC 3560). The ciphertext is produced once and joined once with its headers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocols.as2 import der
from protocols.as2.algorithms import OID, ContentCipher, DigestAlgorithm, KeyTransport
from protocols.as2.cms import CertRef, content_info
from protocols.as2.der import Chunk, chunks_of
from protocols.as2.errors import As2BuildError

__all__ = ["encrypt", "oaep_padding"]

GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
_NULL = b"\x05\x00"


def encrypt(
    content: Chunk | Sequence[Chunk],
    *,
    recipients: Sequence[x509.Certificate | CertRef],
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
    infos = [_recipient_info(cert, key, key_transport, use_ski=use_ski) for cert in recipients]
    encoded = der.encode(0x31, *sorted(infos))  # SET OF in DER order
    chunks = chunks_of(content)
    if cipher.aead:
        return b"".join(_auth_enveloped(chunks, key, cipher, encoded))
    return b"".join(_enveloped(chunks, key, cipher, encoded, use_ski=use_ski))


def oaep_padding(transport: KeyTransport) -> padding.AsymmetricPadding:
    """The cryptography padding object for a key-transport choice."""
    if transport is KeyTransport.RSA_PKCS1V15:
        return padding.PKCS1v15()
    hash_alg: hashes.HashAlgorithm = (
        hashes.SHA256() if transport is KeyTransport.RSA_OAEP_SHA256 else hashes.SHA1()  # noqa: S303 - RFC 3560 OAEP default, asked by partners
    )
    return padding.OAEP(mgf=padding.MGF1(hash_alg), algorithm=hash_alg, label=None)


def _key_encryption_algorithm(transport: KeyTransport) -> bytes:
    """rsaEncryption (NULL parameters) or id-RSAES-OAEP with explicit RSAES-OAEP-params; each
    field equal to its default (SHA-1, MGF1 with SHA-1) is omitted by DER, so all-default SHA-1
    parameters are an empty SEQUENCE, present as RFC 4055 requires."""
    if transport is KeyTransport.RSA_PKCS1V15:
        return der.encode(0x30, der.encode_oid(OID.RSA_ENCRYPTION), _NULL)
    fields = []
    if transport is KeyTransport.RSA_OAEP_SHA256:
        sha256 = der.encode(0x30, der.encode_oid(DigestAlgorithm.SHA256.oid), _NULL)
        mgf = der.encode(0x30, der.encode_oid(OID.MGF1), sha256)
        fields = [der.encode(0xA0, sha256), der.encode(0xA1, mgf)]
    return der.encode(0x30, der.encode_oid(OID.RSAES_OAEP), der.encode(0x30, *fields))


def _recipient_info(
    cert: x509.Certificate | CertRef, key: bytes, transport: KeyTransport, *, use_ski: bool
) -> bytes:
    """RecipientInfo of the ktri kind: KeyTransRecipientInfo, DER."""
    ref = cert if isinstance(cert, CertRef) else CertRef.of(cert)
    public_key = ref.certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise As2BuildError("recipient certificate does not hold an RSA key")
    rid = der.encode(0x80, ref.ski) if use_ski else ref.issuer_and_serial_der()
    return der.encode(
        0x30,
        der.encode_integer(2 if use_ski else 0),
        rid,
        _key_encryption_algorithm(transport),
        der.encode(0x04, public_key.encrypt(key, oaep_padding(transport))),
    )


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
