"""Pure certificate policy: may this certificate and key serve this connection, in this role?

Every refusal is a `CertificateError(connection, reason)`; every soft finding (no RGS/QWAC
marker, ends before the connection's validity period, chain accepted by the fallback) is a
warning string carried by the result. `now` is always passed in; nothing here reads a clock.

Chain verification lives in `gateway.certchain`, the RGS / eIDAS assurance levels in
`gateway.certassurance`; their public names are re-exported here for existing callers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.certassurance import POLICY_TABLE, AssuranceLevel, PolicyRule, assurance_of
from gateway.certchain import (
    MAX_DEPTH,
    VerifiedChain,
    cert_name,
    check_validity,
    check_well_formed,
    find_extension,
    fingerprint,
    key_description,
    public_key_of,
    require_aware,
    strength_problem,
    verify_chain,
)
from gateway.certload import load_certificates
from gateway.certrequest import CertRole, PrivateKey, PublicKey, key_family, role_profile
from gateway.certrevocation import Revocations
from gateway.errors import CertificateError

__all__ = [
    "MAX_DEPTH",
    "POLICY_TABLE",
    "AssuranceLevel",
    "CertRole",
    "CertificateReport",
    "PolicyRule",
    "VerifiedChain",
    "assurance_of",
    "check_certificate",
    "check_key_matches",
    "check_key_strength",
    "check_period",
    "check_usage",
    "check_validity",
    "days_until_expiry",
    "expires_soon",
    "find_shared_material",
    "fingerprint",
    "inspect_file",
    "key_description",
    "report",
    "verify_chain",
]


def _spki(key: x509.Certificate | PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if not isinstance(key, PublicKey) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- single-certificate checks ---------------------------------------------------------------


def check_period(cert: x509.Certificate, *, valid_until: dt.datetime | dt.date) -> str | None:
    """A warning when the certificate ends before the connection's validity period does."""
    if not isinstance(valid_until, dt.datetime):  # a sheet's end date covers that whole day
        valid_until = dt.datetime.combine(valid_until + dt.timedelta(days=1), dt.time(), dt.UTC)
    if cert.not_valid_after_utc >= require_aware(valid_until):
        return None
    return (
        f"certificate ends on {cert.not_valid_after_utc.date().isoformat()}, before the "
        f"connection's validity period ends on {valid_until.date().isoformat()}"
    )


def check_key_strength(
    key: x509.Certificate | PublicKey | PrivateKey,
    *,
    role: CertRole,
    connection: str | None = None,
) -> None:
    """RSA >= 2048 bits, EC >= P-256 on a known curve, Ed25519/Ed448 for signing only."""
    if isinstance(key, x509.Certificate):
        public = public_key_of(key, connection)
    else:
        public = key if isinstance(key, PublicKey) else key.public_key()
    if problem := strength_problem(public, role):
        raise CertificateError(connection, problem)


def check_usage(cert: x509.Certificate, *, role: CertRole, connection: str | None = None) -> None:
    """KeyUsage and EKU fit the role; an absent extension restricts nothing (RFC 5280)."""
    name = cert_name(cert)
    constraints = find_extension(cert, x509.BasicConstraints, connection)
    if constraints is not None and constraints.ca:
        raise CertificateError(connection, f"{name} is a CA certificate, not an end entity")
    profile = role_profile(role)
    family = key_family(public_key_of(cert, connection))
    accepted = profile.accepts(family)
    if accepted is None:
        raise CertificateError(connection, f"{name}: its key type cannot serve the {role} role")
    usage = find_extension(cert, x509.KeyUsage, connection)
    if usage is not None and not any(getattr(usage, flag) for flag in accepted):
        raise CertificateError(
            connection,
            f"{name}: key usage {', '.join(_key_usages(usage)) or 'empty'} does not allow "
            f"{role} (needs one of {', '.join(sorted(_KU_LABELS[f] for f in accepted))})",
        )
    ekus = find_extension(cert, x509.ExtendedKeyUsage, connection)
    wanted = profile.eku
    if ekus is None or wanted is None:
        return
    if wanted not in ekus and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus:
        raise CertificateError(
            connection,
            f"{name}: extended key usage {', '.join(_eku_names(ekus))} lacks "
            f"{_EKU_NAMES.get(wanted, wanted.dotted_string)} needed for {role}",
        )


def check_key_matches(
    cert: x509.Certificate, key: PrivateKey, *, connection: str | None = None
) -> None:
    """The private key is the one certified (compared by SubjectPublicKeyInfo)."""
    if _spki(public_key_of(cert, connection)) != _spki(key):
        raise CertificateError(
            connection, f"private key does not match the certificate {cert_name(cert)}"
        )


_EKU_NAMES = MappingProxyType(
    {
        ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
        ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
        ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
        ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
        ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    }
)
_KU_FLAGS = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


_KU_LABELS = MappingProxyType(dict(_KU_FLAGS))


def _eku_names(ekus: x509.ExtendedKeyUsage) -> tuple[str, ...]:
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in ekus)


def _key_usages(usage: x509.KeyUsage) -> tuple[str, ...]:
    return tuple(label for flag, label in _KU_FLAGS if getattr(usage, flag))


# --- one certificate, one connection ---------------------------------------------------------

Material = x509.Certificate | PrivateKey | PublicKey


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca


def _colon_sha256(data: bytes) -> str:
    return hashlib.sha256(data).digest().hex(":").upper()


def _material_ids(item: Material, connection: str) -> tuple[str | None, bytes]:
    """(certificate fingerprint, or None for a bare key; SubjectPublicKeyInfo DER)."""
    if isinstance(item, x509.Certificate):
        check_well_formed([item], connection)
        return fingerprint(item), _spki(public_key_of(item, connection))
    return None, _spki(item)


def find_shared_material(material: Mapping[str, Sequence[Material]]) -> list[CertificateError]:
    """Certificates (by SHA-256) or keys (by SPKI) that two connections share (domain.md §4).

    Each error belongs to the later connection and names the earlier one. CA certificates
    are skipped (a chain is shared by design); a shared certificate is reported once, not
    again for its key.
    """
    cert_owner: dict[str, str] = {}
    key_owner: dict[bytes, str] = {}
    errors: list[CertificateError] = []
    for connection, items in material.items():
        ordered: list[Material] = [
            i for i in items if isinstance(i, x509.Certificate) and not _is_ca(i)
        ]
        ordered += [i for i in items if not isinstance(i, x509.Certificate)]
        seen: set[bytes] = set()
        for item in ordered:
            try:
                fp, spki = _material_ids(item, connection)
            except CertificateError as exc:
                errors.append(exc)
                continue
            if spki in seen:
                continue
            seen.add(spki)
            if fp is not None and (other := cert_owner.setdefault(fp, connection)) != connection:
                reason = f"certificate sha256 {fp} is also used by connection {other}"
            elif (other := key_owner.setdefault(spki, connection)) != connection:
                reason = (
                    f"key (public key sha256 {_colon_sha256(spki)}) is also used by "
                    f"connection {other}"
                )
            else:
                continue
            errors.append(CertificateError(connection, reason))
    return errors


# --- reports, expiry and the whole check ------------------------------------------------------


@dataclass(frozen=True)
class CertificateReport:
    """What `raccord certs inspect` prints for one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str
    key: str
    key_usages: tuple[str, ...]
    extended_key_usages: tuple[str, ...]
    assurance: AssuranceLevel
    warnings: tuple[str, ...] = ()


def days_until_expiry(cert: x509.Certificate, now: dt.datetime) -> int:
    """Whole days left before notAfter; negative once expired."""
    return (cert.not_valid_after_utc - require_aware(now)) // dt.timedelta(days=1)


def expires_soon(cert: x509.Certificate, now: dt.datetime, *, days: int = 30) -> bool:
    """True within `days` of notAfter (and after it): the trigger of the expiry warning."""
    return cert.not_valid_after_utc - require_aware(now) <= dt.timedelta(days=days)


def _time_warnings(cert: x509.Certificate, now: dt.datetime, days: int) -> list[str]:
    try:
        check_validity(cert, now)
    except CertificateError as exc:
        return [exc.reason]
    if expires_soon(cert, now, days=days):
        return [f"expires in {days_until_expiry(cert, now)} days"]
    return []


def report(
    cert: x509.Certificate,
    *,
    now: dt.datetime | None = None,
    extra_policies: Mapping[str, AssuranceLevel] | None = None,
    warn_days: int = 30,
    notes: Sequence[str] = (),
) -> CertificateReport:
    """Describe one certificate; its problems become warnings (malformed: CertificateError)."""
    check_well_formed([cert], None)
    warnings = list(notes)
    try:
        public: PublicKey | None = public_key_of(cert, None)
    except CertificateError as exc:
        public, warnings = None, [*warnings, exc.reason]
    if public is not None and (problem := strength_problem(public, None)):
        warnings.append(problem)
    level, assurance_notes = assurance_of(cert, extra_policies=extra_policies)
    if not _is_ca(cert):
        warnings.extend(assurance_notes)
    if now is not None:
        warnings.extend(_time_warnings(cert, now, warn_days))
    usage = find_extension(cert, x509.KeyUsage, None)
    ekus = find_extension(cert, x509.ExtendedKeyUsage, None)
    serial = cert.serial_number
    return CertificateReport(
        subject=cert_name(cert),
        issuer=cert_name(cert, issuer=True),
        serial=("-" if serial < 0 else "") + f"{abs(serial):X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=fingerprint(cert),
        key=key_description(public) if public is not None else "unknown",
        key_usages=_key_usages(usage) if usage is not None else (),
        extended_key_usages=_eku_names(ekus) if ekus is not None else (),
        assurance=level,
        warnings=tuple(warnings),
    )


def inspect_file(
    path: Path | str,
    *,
    now: dt.datetime | None = None,
    passphrase: bytes | None = None,
    extra_policies: Mapping[str, AssuranceLevel] | None = None,
) -> list[CertificateReport]:
    """One report per certificate in a .pem/.crt/.cer/.p7b/.p12 file, in file order."""
    certs = load_certificates(path, passphrase=passphrase)
    return [report(c, now=now, extra_policies=extra_policies) for c in certs]


def check_certificate(
    connection: str,
    *,
    chain: Sequence[x509.Certificate],
    role: CertRole,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    key: PrivateKey | None = None,
    valid_until: dt.datetime | dt.date | None = None,
    extra_policies: Mapping[str, AssuranceLevel] | None = None,
    warn_days: int = 30,
    revocations: Revocations | None = None,
) -> CertificateReport:
    """Every rule for one connection's certificate (leaf first in `chain`), hard then soft.

    Raises the first `CertificateError` (`CertificateRevoked` when a CRL lists a certificate
    of its path); returns the leaf's report with every warning.
    """
    if not chain:
        raise CertificateError(connection, "no certificate configured")
    check_well_formed(chain, connection)
    leaf, *intermediates = chain
    check_validity(leaf, now, connection=connection)
    check_key_strength(leaf, role=role, connection=connection)
    check_usage(leaf, role=role, connection=connection)
    if key is not None:
        check_key_matches(leaf, key, connection=connection)
    verified = verify_chain(
        leaf, intermediates=intermediates, anchors=anchors, now=now, connection=connection
    )
    notes = list(verified.warnings)
    if revocations is not None:
        notes += revocations.check(verified.path, now=now, connection=connection)
    if valid_until is not None and (late := check_period(leaf, valid_until=valid_until)):
        notes.append(late)
    return report(leaf, now=now, extra_policies=extra_policies, warn_days=warn_days, notes=notes)
