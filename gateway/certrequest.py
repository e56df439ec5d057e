"""New keys and their certificate signing requests, the roles they serve, and writing the key.

Its own module because creating material is a different job from loading it (`certload`).
It also holds what both jobs and `certpolicy` share and that must sit below them all to
avoid import cycles: the accepted key types, `CertRole` and the per-role usage profiles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import CertificateError

__all__ = [
    "KEY_TYPES",
    "CertRole",
    "PrivateKey",
    "PublicKey",
    "RoleProfile",
    "key_family",
    "new_key_and_csr",
    "role_profile",
    "write_private_key",
]

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


# --- roles, and new keys with their certificate signing requests ------------------------


class CertRole(StrEnum):
    """What a certificate is used for on a connection (domain.md §4)."""

    TLS_SERVER = "tls-server"
    TLS_CLIENT = "tls-client"
    SIGNING = "signing"  # AS2: CMS signature of payloads and MDNs
    ENCRYPTION = "encryption"  # AS2: CMS enveloped data (key transport / agreement)


@dataclass(frozen=True)
class RoleProfile:
    """The key usages a role accepts (any one of), the ones a CSR asks for, and the EKU."""

    eku: x509.ObjectIdentifier | None
    accepted: tuple[tuple[str, frozenset[str]], ...]  # key family -> KeyUsage attribute names
    requested: tuple[tuple[str, frozenset[str]], ...]

    def accepts(self, family: str) -> frozenset[str] | None:
        """Acceptable KeyUsage flags for a key family; None when the family is refused."""
        return dict(self.accepted).get(family)

    def requests(self, family: str) -> frozenset[str]:
        return dict(self.requested).get(family, frozenset())


_DS, _CC, _KE, _KA = "digital_signature", "content_commitment", "key_encipherment", "key_agreement"


_Usages = tuple[tuple[str, frozenset[str]], ...]


def role_profile(role: CertRole) -> RoleProfile:
    """Usage rules per role. RFC 5280: an absent KeyUsage or EKU extension restricts nothing."""
    accepted: _Usages
    requested: _Usages
    match role:
        case CertRole.TLS_SERVER:  # RSA may still do TLS 1.2 key transport
            accepted = (("rsa", frozenset({_DS, _KE})), ("ec", frozenset({_DS, _KA})))
            requested = (("rsa", frozenset({_DS, _KE})), ("ec", frozenset({_DS})))
            return RoleProfile(ExtendedKeyUsageOID.SERVER_AUTH, accepted, requested)
        case CertRole.TLS_CLIENT:
            accepted = (("rsa", frozenset({_DS})), ("ec", frozenset({_DS})))
            return RoleProfile(ExtendedKeyUsageOID.CLIENT_AUTH, accepted, accepted)
        case CertRole.SIGNING:
            signing = frozenset({_DS, _CC})
            accepted = (("rsa", signing), ("ec", signing), ("ed", signing))
            requested = tuple((family, frozenset({_DS})) for family in ("rsa", "ec", "ed"))
            return RoleProfile(None, accepted, requested)
        case CertRole.ENCRYPTION:
            accepted = (("rsa", frozenset({_KE})), ("ec", frozenset({_KA})))
            return RoleProfile(None, accepted, accepted)


KEY_TYPES = MappingProxyType(
    {  # what `new_key_and_csr` generates, and each one's family
        "rsa2048": "rsa",
        "rsa3072": "rsa",
        "rsa4096": "rsa",
        "ec-p256": "ec",
        "ec-p384": "ec",
        "ed25519": "ed",
    }
)


def _new_key(key_type: str) -> PrivateKey:
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def key_family(key: PrivateKey | PublicKey) -> str:
    """`rsa`, `ec` or `ed`: the families the role profiles speak of."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ec"
    return "ed"


def _key_usage(flags: frozenset[str]) -> x509.KeyUsage:
    names = (_DS, _CC, _KE, "data_encipherment", _KA, "key_cert_sign", "crl_sign")
    values = {name: name in flags for name in names}
    return x509.KeyUsage(**values, encipher_only=False, decipher_only=False)


def _csr_builder(
    profile: RoleProfile,
    family: str,
    subject: Sequence[tuple[x509.ObjectIdentifier, str]],
    dns_names: Sequence[str],
) -> x509.CertificateSigningRequestBuilder:
    try:
        name = x509.Name([x509.NameAttribute(oid, value) for oid, value in subject])
        names = [x509.DNSName(n) for n in dns_names]
    except ValueError as exc:  # bad country code, empty or oversized attribute
        raise CertificateError(None, f"cannot build the CSR: {exc}") from None
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    builder = builder.add_extension(_key_usage(profile.requests(family)), critical=True)
    if profile.eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([profile.eku]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder


def new_key_and_csr(
    *,
    common_name: str,
    role: CertRole,
    organization: str,
    country: str = "FR",
    key_type: str = "rsa3072",
    dns_names: Sequence[str] = (),
    passphrase: bytes | None = None,
) -> tuple[bytes, bytes]:
    """A fresh key (PKCS#8 PEM, encrypted when a passphrase is given) and a PEM CSR for it.

    The CSR asks for the KeyUsage and EKU the role needs, so the CA's answer passes our checks.
    Everything is validated before the (slow) key generation.
    """
    family = KEY_TYPES.get(key_type)
    if family is None:
        raise CertificateError(
            None, f"unknown key type {key_type!r}; one of {', '.join(KEY_TYPES)}"
        )
    profile = role_profile(role)
    if profile.accepts(family) is None:
        raise CertificateError(None, f"a {key_type} key cannot serve the {role} role")
    subject = [
        (NameOID.COUNTRY_NAME, country),
        (NameOID.ORGANIZATION_NAME, organization),
        (NameOID.COMMON_NAME, common_name),
    ]
    builder = _csr_builder(profile, family, subject, dns_names)
    key = _new_key(key_type)
    csr = builder.sign(key, None if family == "ed" else hashes.SHA256())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


# --- writing the new key ------------------------------------------------------------------


def write_private_key(path: Path | str, pem: bytes) -> None:
    """Create `path` with mode 0600 from the first byte; never overwrite an existing file."""
    if b"PRIVATE KEY-----" not in pem:
        raise CertificateError(None, f"{path}: refusing to write something that is not a PEM key")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise CertificateError(None, f"{path}: already exists; refusing to overwrite") from None
    except OSError as exc:
        raise CertificateError(None, f"{path}: cannot create: {exc.strerror}") from None
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:  # never leave half a key behind
        os.close(fd)
        Path(path).unlink(missing_ok=True)
        raise CertificateError(None, f"{path}: cannot write: {exc.strerror}") from None
    os.close(fd)
