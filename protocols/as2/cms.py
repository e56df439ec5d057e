"""What the CMS modules share: key holders, ContentInfo framing, signer/recipient matching.

Signing lives in cms_sign.py, verification in cms_verify.py, encryption in cms_envelope.py,
decryption in cms_decrypt.py and compression in cms_compress.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

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
    "Identifier",
    "PrivateKey",
    "SigningIdentity",
    "cert_refs",
    "content_info",
    "content_type_of",
    "read_content_info",
    "read_identifier",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """Our key and certificate for signing; `chain` is sent along (leaf excluded).

    What every signature repeats about the certificates (how a SignerInfo names ours, the DER
    of the SignedData `certificates` field) is worked out once, here.
    """

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    ref: CertRef = field(init=False, repr=False, compare=False)
    certificates_der: bytes = field(init=False, repr=False, compare=False)  # DER SET OF order

    def __post_init__(self) -> None:
        every = sorted(certificate_der(cert) for cert in (self.certificate, *self.chain))
        object.__setattr__(self, "ref", CertRef.of(self.certificate))
        object.__setattr__(self, "certificates_der", b"".join(every))


@dataclass(frozen=True, slots=True)
class DecryptionIdentity:
    """One of our RSA keys able to open EnvelopedData (current and next, for rollover)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    ref: CertRef = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", CertRef.of(self.certificate))


def cert_refs(certificates: Sequence[x509.Certificate | CertRef]) -> list[CertRef]:
    """Certificates as references; those prepared in advance (parameters) are reused."""
    return [c if isinstance(c, CertRef) else CertRef.of(c) for c in certificates]


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
class Identifier:
    """A SignerIdentifier or RecipientIdentifier (RFC 5652 §5.3, §6.2.1), read with der.py.

    `name` is the kind, spelled as asn1crypto spells it; the other fields belong to that kind.
    """

    name: Literal["issuer_and_serial_number", "subject_key_identifier"]
    issuer_der: bytes = b""
    serial: int = 0
    ski: bytes = b""


class IdentifierKind(Protocol):
    """Anything naming its kind: identifiers of other kinds (originator keys...) match nothing."""

    @property
    def name(self) -> str: ...


def read_identifier(node: Tlv) -> Identifier:
    """IssuerAndSerialNumber (a SEQUENCE) or [0] IMPLICIT SubjectKeyIdentifier."""
    if node.is_(UNIVERSAL, SEQUENCE):
        fields = node.child_list("IssuerAndSerialNumber", minimum=2)
        if len(fields) != 2:
            raise der.DerError("IssuerAndSerialNumber: 2 elements expected")
        issuer = fields[0].expect(UNIVERSAL, SEQUENCE, "issuer Name")
        return Identifier("issuer_and_serial_number", bytes(issuer.raw), fields[1].as_int())
    if node.is_(CONTEXT, 0):
        return Identifier("subject_key_identifier", ski=b"".join(node.octets()))
    raise der.DerError(f"identifier: unexpected tag [{node.tag_class}:{node.number}]")


@dataclass(frozen=True, slots=True)
class CertRef:
    """A certificate with the three things a CMS identifier may name it by.

    Issuer and serial are compared on the DER bytes first (what every sender copies from the
    certificate); only when the serial matches and the bytes differ is the RFC 5280 name
    comparison (asn1crypto, RFC 4518 string preparation, costly) asked for a verdict.
    """

    certificate: x509.Certificate
    issuer_der: bytes = field(repr=False)
    serial: int
    ski: bytes

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertRef:
        return cls(
            cert, cert.issuer.public_bytes(), cert.serial_number, subject_key_identifier(cert)
        )

    @property
    def issuer(self) -> asn1_x509.Name:
        """The issuer as asn1crypto reads it (RFC 5280 normalising comparison)."""
        return asn1_x509.Name.load(self.issuer_der)

    def issuer_and_serial(self) -> asn1_cms.IssuerAndSerialNumber:
        return asn1_cms.IssuerAndSerialNumber({"issuer": self.issuer, "serial_number": self.serial})

    def issuer_and_serial_der(self) -> bytes:
        """IssuerAndSerialNumber, DER: SEQUENCE { issuer Name, serialNumber INTEGER }."""
        return der.encode(0x30, self.issuer_der, der.encode_integer(self.serial))

    def matches(self, identifier: Identifier | IdentifierKind) -> bool:
        """True when a SignerIdentifier/RecipientIdentifier names this certificate."""
        if not isinstance(identifier, Identifier):
            return False
        if identifier.name == "subject_key_identifier":
            return identifier.ski == self.ski
        if identifier.serial != self.serial:
            return False
        if identifier.issuer_der == self.issuer_der:
            return True
        return bool(asn1_x509.Name.load(identifier.issuer_der) == self.issuer)


def describe_identifier(identifier: Identifier | IdentifierKind) -> str:
    """Human text for error reasons: who the sender designated."""
    if not isinstance(identifier, Identifier):
        return f"identifier of kind {identifier.name}"
    if identifier.name == "subject_key_identifier":
        return f"subject key id {identifier.ski.hex()}"
    issuer = asn1_x509.Name.load(identifier.issuer_der).human_friendly
    return f"issuer {issuer!r} serial {identifier.serial:x}"


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
