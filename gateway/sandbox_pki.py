"""Sandbox certificates for `make run`: a local CA and one certificate per connection and role.

Generated on first run under certs/sandbox/ (git ignores them); existing files are never
overwritten. Production material comes from an RGS/eIDAS provider, never from here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import Config

VALIDITY = dt.timedelta(days=825)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Raccord sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _load_or_create_ca(
    cert_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key_path = cert_path.with_suffix(".key")
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = _name("Raccord Sandbox CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + 2 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert, key


def _issue(
    ca: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    common_name: str,
    now: dt.datetime,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName(common_name),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _wanted(config: Config) -> Iterator[tuple[Path, Path]]:
    """(certificate, key) paths the sandbox must provide: our pairs and the partners'."""
    for conn in config.connections:
        for pair in conn.certificates.own().values():
            yield pair.certificate, pair.key
        for partner in conn.certificates.partner:
            yield partner, partner.with_suffix(".key")


def ensure_sandbox_certificates(config: Config, *, now: dt.datetime) -> list[Path]:
    """Create every missing sandbox certificate named by `config`; returns what was written."""
    if not config.gateway.trust_anchors:
        raise ValueError("gateway.trust_anchors must name the sandbox CA file")
    ca, ca_key = _load_or_create_ca(config.gateway.trust_anchors[0], now)
    written: list[Path] = []
    for cert_path, key_path in _wanted(config):
        if cert_path.exists():
            continue
        if key_path.exists():
            raise ValueError(f"{key_path} exists without its certificate {cert_path}")
        cert, key = _issue(ca, ca_key, cert_path.stem, now)
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        written.append(cert_path)
    written.extend(_sftp_pins(config))
    return written


def _sftp_pins(config: Config) -> list[Path]:
    """The known_hosts pins of the simulator's SFTP servers (their keys are the AIFE keys)."""
    from gateway.model import Protocol
    from gateway.simulator.sftpside import known_hosts_path, prepare_known_hosts

    return [
        prepare_known_hosts(conn)
        for conn in config.connections
        if conn.protocol is Protocol.SFTP
        and conn.certificates.partner
        and not known_hosts_path(conn).exists()
    ]
