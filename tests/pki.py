"""A tiny test PKI made with `cryptography`: CAs, leaf certificates and keys written to disk.

Tests use it to build real chains (valid, expired, wrong usage, weak key, another connection's)
so every certificate path is exercised with real X.509, never a stub.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
UTC = dt.UTC


def now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def crl(
    issuer: x509.Certificate,
    key: PrivateKey,
    revoked: Sequence[x509.Certificate] = (),
    *,
    next_update: dt.timedelta = dt.timedelta(days=7),
) -> x509.CertificateRevocationList:
    """A CRL `issuer` signs with `key`, listing `revoked` (key compromise, an hour ago)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now() - dt.timedelta(days=2))
        .next_update(now() + next_update)
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now() - dt.timedelta(hours=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Raccord Tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Issued:
    """A certificate with its key and the chain above it (leaf first, root excluded)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    def cert_pem(self, *, with_chain: bool = True) -> bytes:
        certs = [self.cert, *(self.chain if with_chain else [])]
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        algorithm: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
        )

    def write(
        self, directory: Path, stem: str, passphrase: bytes | None = None
    ) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(self.key_pem(passphrase))
        key_path.chmod(0o600)
        return cert_path, key_path


class TestCA:
    """A root CA (optionally with an intermediate) that issues leaf certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "Raccord Test Root CA", *, intermediate: bool = False) -> None:
        self.root_key = rsa_key(2048)
        start = now() - dt.timedelta(days=1)
        self.root = self._ca_cert(_name(name), self.root_key, _name(name), self.root_key, start)
        self.issuer_key: PrivateKey = self.root_key
        self.issuer = self.root
        self.chain: list[x509.Certificate] = []
        if intermediate:
            key = rsa_key(2048)
            cert = self._ca_cert(
                _name(f"{name} Intermediate"), key, self.root.subject, self.root_key, start
            )
            self.issuer_key, self.issuer, self.chain = key, cert, [cert]

    @staticmethod
    def _ca_cert(
        subject: x509.Name,
        key: PrivateKey,
        issuer: x509.Name,
        issuer_key: PrivateKey,
        start: dt.datetime,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(issuer_key, hashes.SHA256())
        )

    def issue(
        self,
        common_name: str,
        *,
        key: PrivateKey | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        digital_signature: bool = True,
        key_encipherment: bool = True,
        dns_names: list[str] | None = None,
        policies: list[str] | None = None,
        qc_statements: bool = False,
    ) -> Issued:
        """Issue a leaf; defaults: valid now for a year, TLS client+server EKU, SAN = name."""
        leaf_key = key if key is not None else rsa_key(2048)
        start = not_before or now() - dt.timedelta(hours=1)
        end = not_after or now() + dt.timedelta(days=365)
        usages = (
            eku
            if eku is not None
            else [
                ExtendedKeyUsageOID.SERVER_AUTH,
                ExtendedKeyUsageOID.CLIENT_AUTH,
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.issuer.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=digital_signature,
                    content_commitment=False,
                    key_encipherment=key_encipherment,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in (dns_names or [common_name, "localhost"])]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuer_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if policies:
            builder = builder.add_extension(
                x509.CertificatePolicies(
                    [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]
                ),
                critical=False,
            )
        if qc_statements:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3"), qc_statements_der()
                ),
                critical=False,
            )
        cert = builder.sign(self.issuer_key, hashes.SHA256())
        return Issued(cert=cert, key=leaf_key, chain=list(self.chain))

    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    def write_root(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.root_pem())
        return path


def _der_sequence(*parts: bytes) -> bytes:
    body = b"".join(parts)
    assert len(body) < 128
    return b"\x30" + bytes([len(body)]) + body


def _der_oid(dotted: str) -> bytes:
    from asn1crypto import core

    encoded: bytes = core.ObjectIdentifier(dotted).dump()
    return encoded


def qc_statements_der() -> bytes:
    """DER of QCStatements: QcCompliance, and QcType = web (what an eIDAS QWAC carries)."""
    compliance = _der_sequence(_der_oid("0.4.0.1862.1.1"))
    qc_type = _der_sequence(_der_oid("0.4.0.1862.1.6"), _der_sequence(_der_oid("0.4.0.1862.1.6.3")))
    return _der_sequence(compliance, qc_type)
