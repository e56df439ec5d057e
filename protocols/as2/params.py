"""The small frozen parameter objects the AS2 core receives (never the whole config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509

from protocols.as2.algorithms import ContentCipher, DigestAlgorithm, KeyTransport, SignatureScheme
from protocols.as2.cms import CertRef, DecryptionIdentity, SigningIdentity
from protocols.as2.cms_compress import DEFAULT_LEVEL
from protocols.as2.errors import As2BuildError

__all__ = ["As2ReceiveParams", "As2SendParams", "MdnMode", "MdnParams", "check_as2_name"]

DEFAULT_DOMAIN = "raccord.invalid"


class MdnMode(StrEnum):
    """Whether a receipt is asked for, and on which channel it comes back."""

    NONE = "none"
    SYNC = "sync"  # in the HTTP response
    ASYNC = "async"  # POSTed later to the Receipt-Delivery-Option URL


def check_as2_name(name: str, what: str) -> None:
    """RFC 4130 §6.2: 1 to 128 printable ASCII characters (quoted on the wire if needed)."""
    if not 0 < len(name) <= 128 or not all(" " <= char <= "~" for char in name):
        raise As2BuildError(f"{what}: AS2 name must be 1-128 printable ASCII characters")


def _check_text(value: str | None, what: str) -> None:
    if value is not None and any(char in value for char in "\r\n\0"):
        raise As2BuildError(f"{what}: CR, LF or NUL refused (header injection)")


@dataclass(frozen=True, slots=True, kw_only=True)
class As2SendParams:
    """How one connection packages an outbound message (domain.md §7 defaults)."""

    as2_from: str
    as2_to: str
    signing: SigningIdentity | None = None
    encryption_certificate: x509.Certificate | None = None
    digest: DigestAlgorithm = DigestAlgorithm.SHA256
    signature_scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15
    cipher: ContentCipher = ContentCipher.AES256_CBC
    key_transport: KeyTransport = KeyTransport.RSA_PKCS1V15
    compress: bool = True
    compress_before_sign: bool = False
    compression_level: int = DEFAULT_LEVEL  # zlib 1 (fastest) .. 9 (smallest)
    mdn_mode: MdnMode = MdnMode.SYNC
    receipt_url: str | None = None
    signed_mdn: bool = True
    mdn_micalg: DigestAlgorithm | None = None  # None: same as `digest`
    file_name: str | None = None
    content_type: str = "application/octet-stream"
    subject: str | None = None
    message_id_domain: str = DEFAULT_DOMAIN
    use_ski: bool = False  # designate certificates by SKI instead of issuer+serial
    encryption_ref: CertRef | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_as2_name(self.as2_from, "as2_from")
        check_as2_name(self.as2_to, "as2_to")
        cert = self.encryption_certificate
        object.__setattr__(self, "encryption_ref", CertRef.of(cert) if cert else None)
        if self.cipher is ContentCipher.DES3_CBC:
            raise As2BuildError("3DES is accepted inbound only, never sent")
        if not 1 <= self.compression_level <= 9:
            raise As2BuildError("compression_level must be 1 (fastest) to 9 (smallest)")
        if self.mdn_mode is MdnMode.ASYNC and not self.receipt_url:
            raise As2BuildError("an asynchronous MDN needs a receipt URL")
        for value, what in (
            (self.receipt_url, "receipt_url"),
            (self.file_name, "file_name"),
            (self.content_type, "content_type"),
            (self.subject, "subject"),
            (self.message_id_domain, "message_id_domain"),
        ):
            _check_text(value, what)
        if not self.message_id_domain or any(c in self.message_id_domain for c in "<>@ "):
            raise As2BuildError("message_id_domain must be a bare domain")


@dataclass(frozen=True, slots=True, kw_only=True)
class As2ReceiveParams:
    """What one connection accepts inbound; caps bound memory whatever the partner sends."""

    as2_from: str  # the partner, expected in AS2-From
    as2_to: str  # us, expected in AS2-To
    partner_certificates: tuple[x509.Certificate, ...] = ()
    decryption: tuple[DecryptionIdentity, ...] = ()
    require_signature: bool = True
    require_encryption: bool = True
    accepted_digests: frozenset[DigestAlgorithm] = frozenset(DigestAlgorithm)
    allow_3des: bool = True
    max_body_size: int = 1536 * 1024 * 1024
    max_payload_size: int = 1024 * 1024 * 1024
    max_compression_ratio: int = 300
    partner_refs: tuple[CertRef, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_as2_name(self.as2_from, "as2_from")
        check_as2_name(self.as2_to, "as2_to")
        refs = tuple(CertRef.of(cert) for cert in self.partner_certificates)
        object.__setattr__(self, "partner_refs", refs)  # what verification compares, once
        if self.max_body_size <= 0 or self.max_payload_size <= 0:
            raise As2BuildError("size caps must be positive")
        if self.max_compression_ratio < 1:
            raise As2BuildError("max_compression_ratio must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class MdnParams:
    """How we sign and label the MDNs we send; `as2_from` is us, `as2_to` the partner."""

    as2_from: str
    as2_to: str
    signing: SigningIdentity | None = None
    signature_scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15
    reporting_ua: str = "Raccord AS2"
    message_id_domain: str = DEFAULT_DOMAIN

    def __post_init__(self) -> None:
        check_as2_name(self.as2_from, "as2_from")
        check_as2_name(self.as2_to, "as2_to")
        _check_text(self.reporting_ua, "reporting_ua")
        _check_text(self.message_id_domain, "message_id_domain")
