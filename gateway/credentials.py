"""Load and check each connection's certificates and keys: the gateway's `CertificateSource`.

Every rule of domain.md §4 is applied here through `certpolicy`, and each problem becomes a
ConfigError naming the field. One exception on purpose: an *expired* (or not yet valid)
certificate, and one a CRL of `gateway.crls` lists as revoked, does not stop the gateway; it
stops its own connection's traffic, with a warning, so that one lapsed certificate never takes
the other connections down with it (nor makes a SIGHUP bringing a new CRL be refused).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.certload import PrivateKey, load_certificates, load_private_key
from gateway.certpolicy import (
    CertificateReport,
    CertRole,
    check_certificate,
    check_validity,
    find_shared_material,
    verify_chain,
)
from gateway.certrevocation import LoadedCrl, Revocations, load_crls
from gateway.config import Config, ConnectionConfig, KeyPair
from gateway.config_load import read_secret
from gateway.errors import CertificateError, CertificateRevoked, ConfigError
from gateway.model import Protocol

# What each of our key pairs must be fit for, by protocol (domain.md §4).
_CLIENT_ROLES: Mapping[Protocol, tuple[CertRole, ...]] = {
    Protocol.AS2: (CertRole.SIGNING, CertRole.ENCRYPTION),
    Protocol.SFTP: (CertRole.TLS_CLIENT,),
    Protocol.PESIT: (CertRole.TLS_CLIENT,),
}
_ROLES = {"client": _CLIENT_ROLES, "next_client": _CLIENT_ROLES}


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One of our certificates (leaf first, then its chain) with its private key."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey
    report: CertificateReport | None

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]


@dataclass(frozen=True, slots=True)
class ConnectionCredentials:
    """Everything cryptographic one connection uses; never shared with another connection."""

    connection: str
    own: Mapping[str, KeyMaterial] = field(default_factory=dict)  # "client", "server", ...
    partner: tuple[x509.Certificate, ...] = ()
    trust_anchors: tuple[x509.Certificate, ...] = ()
    warnings: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()  # a CRL lists one of its certificates: traffic stops
    # DER of each partner certificate a CRL lists (itself or its chain), with why: a login
    # it presents is refused, not only the traffic it would bring.
    revoked_partner: Mapping[bytes, str] = field(default_factory=dict)

    def expiries(self) -> dict[str, dt.datetime]:
        """notAfter of each of our certificates and of the partner's, by role."""
        found = {role: m.certificate.not_valid_after_utc for role, m in self.own.items()}
        for index, cert in enumerate(self.partner):
            found[f"partner{index}" if index else "partner"] = cert.not_valid_after_utc
        return found

    def unusable_reason(self, now: dt.datetime) -> str | None:
        """Why traffic must stop now (a certificate in use is revoked, expired or not yet
        valid)."""
        if self.revoked:
            return self.revoked[0]
        for role, material in self.own.items():
            if role == "next_client":
                continue
            cert = material.certificate
            if now > cert.not_valid_after_utc:
                return f"{role} certificate expired on {cert.not_valid_after_utc.date()}"
            if now < cert.not_valid_before_utc:
                return f"{role} certificate is not valid before {cert.not_valid_before_utc}"
        return None


CredentialSet = Mapping[str, ConnectionCredentials]


class LoadedCredentials(dict[str, ConnectionCredentials]):
    """Every connection's credentials, by name, and the CRLs they were checked against: the
    SFTP plan checks its accounts against the very same lists (not a second read of the
    files), and housekeeping watches their due dates while the daemon runs."""

    def __init__(self, revocations: Revocations | None = None) -> None:
        super().__init__()
        self.revocations = revocations if revocations is not None else Revocations()


class _Collector:
    """Accumulates ConfigErrors and warnings for one connection."""

    def __init__(self, prefix: str, revocations: Revocations) -> None:
        self.prefix = prefix
        self.revocations = revocations
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.revoked: list[str] = []
        self.revoked_partner: dict[bytes, str] = {}

    def add(self, where: str, exc: CertificateError) -> None:
        """A revoked certificate stops its connection (a warning); anything else is an error."""
        if isinstance(exc, CertificateRevoked):
            self.revoked.append(exc.reason)
            self.warnings.append(f"{self.prefix}.{where}: {exc.reason} (traffic stopped)")
            return
        self.errors.append(ConfigError(f"{self.prefix}.{where}", exc.reason))


def _load_revocations(paths: Sequence[Path], errors: list[ConfigError]) -> Revocations:
    crls: list[LoadedCrl] = []
    for index, path in enumerate(paths):
        field = f"gateway.crls[{index}]"
        try:
            crls.extend(load_crls(str(path), source=field))
        except CertificateError as exc:
            errors.append(ConfigError(field, exc.reason))
    return Revocations(crls)


def _load_anchors(paths: Sequence[Path], field: str, out: _Collector) -> list[x509.Certificate]:
    anchors: list[x509.Certificate] = []
    for index, path in enumerate(paths):
        try:
            anchors.extend(load_certificates(path))
        except CertificateError as exc:
            out.errors.append(ConfigError(f"{field}[{index}]", exc.reason))
    return anchors


def _load_pair(
    conn: ConnectionConfig,
    role: str,
    pair: KeyPair,
    *,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    out: _Collector,
) -> KeyMaterial | None:
    where = f"certificates.{role}"
    passphrase = read_secret(
        pair.key_passphrase,
        pair.key_passphrase_file,
        field=f"{out.prefix}.{where}.key_passphrase",
        errors=out.errors,
    )
    try:
        chain = tuple(load_certificates(pair.certificate))
    except CertificateError as exc:
        out.add(f"{where}.certificate", exc)
        return None
    try:
        key = load_private_key(pair.key, passphrase=passphrase)
    except CertificateError as exc:
        out.add(f"{where}.key", exc)
        return None
    try:
        check_validity(chain[0], now, connection=conn.name)
    except CertificateError as exc:
        out.warnings.append(f"{out.prefix}.{where}.certificate: {exc.reason} (traffic stopped)")
        return KeyMaterial(chain=chain, key=key, report=None)
    roles = _ROLES.get(role, {}).get(conn.protocol, (CertRole.TLS_SERVER,))
    report: CertificateReport | None = None
    for cert_role in roles:
        try:
            report = check_certificate(
                conn.name,
                chain=chain,
                role=cert_role,
                anchors=anchors,
                now=now,
                key=key,
                valid_until=conn.validity.end,
                revocations=out.revocations,
            )
        except CertificateRevoked as exc:
            out.add(f"{where}.certificate", exc)
            return KeyMaterial(chain=chain, key=key, report=None)
        except CertificateError as exc:
            out.add(f"{where}.certificate", exc)
            return None
    if report is not None:
        out.warnings.extend(f"{out.prefix}.{where}.certificate: {w}" for w in report.warnings)
    return KeyMaterial(chain=chain, key=key, report=report)


def _load_partner(
    conn: ConnectionConfig,
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    out: _Collector,
) -> tuple[x509.Certificate, ...]:
    found: list[x509.Certificate] = []
    for index, path in enumerate(conn.certificates.partner):
        where = f"certificates.partner[{index}]"
        try:
            leaf, *rest = load_certificates(path)
            check_validity(leaf, now, connection=conn.name, what="partner certificate")
            verified = verify_chain(
                leaf, intermediates=rest, anchors=anchors, now=now, connection=conn.name
            )
            stale = out.revocations.check(verified.path, now=now, connection=conn.name)
            out.warnings.extend(f"{out.prefix}.{where}: {w}" for w in stale)
        except CertificateRevoked as exc:
            out.add(where, exc)
            found.append(leaf)  # kept: refused as a stopped connection's, not as a stranger's
            out.revoked_partner[leaf.public_bytes(serialization.Encoding.DER)] = exc.reason
            continue
        except CertificateError as exc:
            out.add(where, exc)
            continue
        except ValueError:
            out.errors.append(ConfigError(f"{out.prefix}.{where}", "holds no certificate"))
            continue
        found.append(leaf)
    return tuple(found)


def _connection(
    config: Config, conn: ConnectionConfig, now: dt.datetime, out: _Collector
) -> ConnectionCredentials:
    if conn.certificates.trust_anchors:
        field = f"{out.prefix}.certificates.trust_anchors"
        anchors = _load_anchors(conn.certificates.trust_anchors, field, out)
    else:
        anchors = _load_anchors(config.gateway.trust_anchors, "gateway.trust_anchors", out)
    own_pairs = conn.certificates.own()
    if own_pairs and not anchors:
        out.errors.append(
            ConfigError(
                f"{out.prefix}.certificates.trust_anchors",
                "no trust anchor configured to verify the chains",
            )
        )
        return ConnectionCredentials(conn.name)
    own = {}
    for role, pair in own_pairs.items():
        material = _load_pair(conn, role, pair, anchors=anchors, now=now, out=out)
        if material is not None:
            own[role] = material
    partner = _load_partner(conn, anchors, now, out)
    return ConnectionCredentials(
        conn.name,
        own=own,
        partner=partner,
        trust_anchors=tuple(anchors),
        warnings=tuple(out.warnings),
        revoked=tuple(out.revoked),
        revoked_partner=out.revoked_partner,
    )


def _sharing(config: Config, creds: Mapping[str, ConnectionCredentials]) -> Iterator[ConfigError]:
    index = {c.name: i for i, c in enumerate(config.connections)}
    material = {
        name: [item for m in c.own.values() for item in (m.certificate, m.key)]
        for name, c in creds.items()
    }
    for exc in find_shared_material(material):
        where = index.get(exc.connection or "", 0)
        yield ConfigError(f"connections[{where}].certificates", exc.reason)


def load_credentials(
    config: Config, *, now: dt.datetime
) -> tuple[LoadedCredentials, list[ConfigError]]:
    """Every connection's credentials, and every problem found while loading them."""
    errors: list[ConfigError] = []
    revocations = _load_revocations(config.gateway.crls, errors)
    creds = LoadedCredentials(revocations)
    for index, conn in enumerate(config.connections):
        out = _Collector(f"connections[{index}]", revocations)
        creds[conn.name] = _connection(config, conn, now, out)
        errors.extend(out.errors)
    errors.extend(_sharing(config, creds))
    unique = {str(e): e for e in errors}  # gateway-wide problems once, not once per connection
    return creds, list(unique.values())


def credential_warnings(creds: Mapping[str, ConnectionCredentials]) -> list[str]:
    """Every warning (expiring soon, no RGS/QWAC policy, expired: traffic stopped...)."""
    return [w for c in creds.values() for w in c.warnings]
