"""What the CMS modules share: key holders, ContentInfo framing, signer/recipient matching.

Signing lives in cms_sign.py, verification in cms_verify.py, encryption in cms_envelope.py,
decryption in cms_decrypt.py and compression in cms_compress.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from protocols.as2 import der
from protocols.as2.der import CONTEXT, SEQUENCE, UNIVERSAL, Chunk, Tlv

__all__ = [
    "CertRef",
    "DecryptionIdentity",
    "PrivateKey",
    "SigningIdentity",
    "content_info",
    "content_type_of",
    "read_content_info",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """Our key and certificate for signing; `chain` is sent along (leaf excluded)."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class DecryptionIdentity:
    """One of our RSA keys able to open EnvelopedData (current and next, for rollover)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def read_content_info(data: Chunk) -> tuple[str, Tlv]:
    """ContentInfo's content type and the node inside its [0] EXPLICIT wrapper."""
    top = der.read_single(data, "ContentInfo").expect(UNIVERSAL, SEQUENCE, "ContentInfo")
    children = top.child_list("ContentInfo", minimum=2)
    oid = children[0].as_oid()
    wrapper = children[1].expect(CONTEXT, 0, "ContentInfo content")
    inner = wrapper.child_list("ContentInfo content", minimum=1)
    return oid, inner[0]


def content_type_of(data: Chunk) -> str | None:
    """Peek at a ContentInfo's type; None when `data` is not one."""
    try:
        oid, _ = read_content_info(data)
    except der.DerError:
        return None
    return oid


def content_info(oid: str, inner: list[Chunk]) -> list[Chunk]:
    """Frame `inner` (already encoded, unjoined) as ContentInfo."""
    return der.wrap(0x30, [der.encode_oid(oid), *der.wrap(0xA0, inner)])


def subject_key_identifier(cert: x509.Certificate) -> bytes:
    """The certificate's SKI extension, or the RFC 5280 method-1 value when it has none."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return ext.value.digest


@dataclass(frozen=True, slots=True)
class CertRef:
    """A certificate with the three things a CMS identifier may name it by."""

    certificate: x509.Certificate
    issuer: Any = field(repr=False)  # asn1crypto Name: compares with RFC 5280 normalisation
    serial: int
    ski: bytes

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertRef:
        issuer = asn1_x509.Name.load(cert.issuer.public_bytes())
        return cls(cert, issuer, cert.serial_number, subject_key_identifier(cert))

    def issuer_and_serial(self) -> asn1_cms.IssuerAndSerialNumber:
        return asn1_cms.IssuerAndSerialNumber({"issuer": self.issuer, "serial_number": self.serial})

    def matches(self, identifier: Any) -> bool:
        """True when a SignerIdentifier/RecipientIdentifier names this certificate."""
        if identifier.name == "issuer_and_serial_number":
            chosen = identifier.chosen
            return bool(
                chosen["serial_number"].native == self.serial and chosen["issuer"] == self.issuer
            )
        if identifier.name == "subject_key_identifier":
            return bool(identifier.chosen.native == self.ski)
        return False


def describe_identifier(identifier: Any) -> str:
    """Human text for error reasons: who the sender designated."""
    if identifier.name == "issuer_and_serial_number":
        chosen = identifier.chosen
        serial = chosen["serial_number"].native
        return f"issuer {chosen['issuer'].human_friendly!r} serial {serial:x}"
    if identifier.name == "subject_key_identifier":
        return f"subject key id {identifier.chosen.native.hex()}"
    return f"identifier of kind {identifier.name}"


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
