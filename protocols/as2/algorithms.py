"""Algorithm vocabulary shared by the CMS, MIC and MDN code: names, OIDs, primitives.

One table per family so the wire names (micalg tokens, OIDs) live in exactly one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives import hashes

__all__ = [
    "OID",
    "ContentCipher",
    "DigestAlgorithm",
    "KeyTransport",
    "SignatureScheme",
    "digest_from_micalg",
    "digest_from_oid",
]


class OID:
    """Object identifiers used by AS2's CMS profile (RFC 5652, 3274, 5083, 4055, 5084)."""

    DATA: Final = "1.2.840.113549.1.7.1"
    SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
    ENVELOPED_DATA: Final = "1.2.840.113549.1.7.3"
    AUTH_ENVELOPED_DATA: Final = "1.2.840.113549.1.9.16.1.23"
    COMPRESSED_DATA: Final = "1.2.840.113549.1.9.16.1.9"
    ZLIB: Final = "1.2.840.113549.1.9.16.3.8"
    RSA_ENCRYPTION: Final = "1.2.840.113549.1.1.1"
    RSAES_OAEP: Final = "1.2.840.113549.1.1.7"
    RSASSA_PSS: Final = "1.2.840.113549.1.1.10"
    MGF1: Final = "1.2.840.113549.1.1.8"


class DigestAlgorithm(StrEnum):
    """Hash for signatures and MICs; the value is the RFC 5751 `micalg` token."""

    SHA1 = "sha-1"
    SHA224 = "sha-224"
    SHA256 = "sha-256"
    SHA384 = "sha-384"
    SHA512 = "sha-512"

    @property
    def oid(self) -> str:
        return _DIGEST_OIDS[self]

    @property
    def asn1_name(self) -> str:
        """asn1crypto's name for the algorithm (`sha256`)."""
        return self.value.replace("-", "")

    def hash(self) -> hashes.HashAlgorithm:
        return _DIGEST_HASHES[self]()

    @property
    def rsa_signature_oid(self) -> str:
        return _RSA_WITH[self]

    @property
    def ecdsa_signature_oid(self) -> str:
        return _ECDSA_WITH[self]


_DIGEST_OIDS: Final = MappingProxyType(
    {
        DigestAlgorithm.SHA1: "1.3.14.3.2.26",
        DigestAlgorithm.SHA224: "2.16.840.1.101.3.4.2.4",
        DigestAlgorithm.SHA256: "2.16.840.1.101.3.4.2.1",
        DigestAlgorithm.SHA384: "2.16.840.1.101.3.4.2.2",
        DigestAlgorithm.SHA512: "2.16.840.1.101.3.4.2.3",
    }
)
_HashFactory = Callable[[], hashes.HashAlgorithm]
_DIGEST_HASHES: Final[Mapping[DigestAlgorithm, _HashFactory]] = MappingProxyType(
    {
        DigestAlgorithm.SHA1: hashes.SHA1,
        DigestAlgorithm.SHA224: hashes.SHA224,
        DigestAlgorithm.SHA256: hashes.SHA256,
        DigestAlgorithm.SHA384: hashes.SHA384,
        DigestAlgorithm.SHA512: hashes.SHA512,
    }
)
_RSA_WITH: Final = MappingProxyType(
    {
        DigestAlgorithm.SHA1: "1.2.840.113549.1.1.5",
        DigestAlgorithm.SHA224: "1.2.840.113549.1.1.14",
        DigestAlgorithm.SHA256: "1.2.840.113549.1.1.11",
        DigestAlgorithm.SHA384: "1.2.840.113549.1.1.12",
        DigestAlgorithm.SHA512: "1.2.840.113549.1.1.13",
    }
)
_ECDSA_WITH: Final = MappingProxyType(
    {
        DigestAlgorithm.SHA1: "1.2.840.10045.4.1",
        DigestAlgorithm.SHA224: "1.2.840.10045.4.3.1",
        DigestAlgorithm.SHA256: "1.2.840.10045.4.3.2",
        DigestAlgorithm.SHA384: "1.2.840.10045.4.3.3",
        DigestAlgorithm.SHA512: "1.2.840.10045.4.3.4",
    }
)
_BY_OID: Final = MappingProxyType({oid: alg for alg, oid in _DIGEST_OIDS.items()})


def digest_from_oid(dotted: str) -> DigestAlgorithm | None:
    """The digest for an OID, or None when unsupported (MD5, SHA-3...)."""
    return _BY_OID.get(dotted)


def digest_from_micalg(token: str) -> DigestAlgorithm | None:
    """Accept RFC 5751 (`sha-256`) and RFC 3851/4130 (`sha256`, `sha1`) spellings."""
    compact = token.strip().strip('"').lower().replace("-", "").replace("_", "")
    for alg in DigestAlgorithm:
        if alg.asn1_name == compact:
            return alg
    return None


class SignatureScheme(StrEnum):
    """RSA padding for signatures; EC keys always sign with ECDSA."""

    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_PSS = "rsa-pss"


class KeyTransport(StrEnum):
    """How the content-encryption key is wrapped for an RSA recipient (RFC 3560)."""

    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_OAEP_SHA1 = "rsa-oaep-sha1"
    RSA_OAEP_SHA256 = "rsa-oaep-sha256"


@dataclass(frozen=True, slots=True)
class _CipherInfo:
    oid: str
    key_size: int
    block_size: int
    aead: bool


class ContentCipher(StrEnum):
    """Content-encryption algorithms; 3DES is accepted inbound only."""

    AES128_CBC = "aes128-cbc"
    AES192_CBC = "aes192-cbc"
    AES256_CBC = "aes256-cbc"
    AES128_GCM = "aes128-gcm"
    AES192_GCM = "aes192-gcm"
    AES256_GCM = "aes256-gcm"
    DES3_CBC = "des-ede3-cbc"

    @property
    def oid(self) -> str:
        return _CIPHERS[self].oid

    @property
    def key_size(self) -> int:
        return _CIPHERS[self].key_size

    @property
    def block_size(self) -> int:
        return _CIPHERS[self].block_size

    @property
    def aead(self) -> bool:
        """True for AES-GCM, carried in AuthEnvelopedData (RFC 5083/5084)."""
        return _CIPHERS[self].aead

    @classmethod
    def from_oid(cls, dotted: str) -> ContentCipher | None:
        for cipher, info in _CIPHERS.items():
            if info.oid == dotted:
                return cipher
        return None


_CIPHERS: Final = MappingProxyType(
    {
        ContentCipher.AES128_CBC: _CipherInfo("2.16.840.1.101.3.4.1.2", 16, 16, False),
        ContentCipher.AES192_CBC: _CipherInfo("2.16.840.1.101.3.4.1.22", 24, 16, False),
        ContentCipher.AES256_CBC: _CipherInfo("2.16.840.1.101.3.4.1.42", 32, 16, False),
        ContentCipher.AES128_GCM: _CipherInfo("2.16.840.1.101.3.4.1.6", 16, 16, True),
        ContentCipher.AES192_GCM: _CipherInfo("2.16.840.1.101.3.4.1.26", 24, 16, True),
        ContentCipher.AES256_GCM: _CipherInfo("2.16.840.1.101.3.4.1.46", 32, 16, True),
        ContentCipher.DES3_CBC: _CipherInfo("1.2.840.113549.3.7", 24, 8, False),
    }
)
