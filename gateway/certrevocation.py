"""Certificate revocation from CRL files: a revoked certificate stops its connection's traffic.

Chorus Pro's and the PA's CAs publish CRLs; operators fetch them (cron, their PKI tooling) into
the files named by `gateway.crls`, which the daemon reloads when they change (or on SIGHUP).
Each file is PEM (one or more `X509 CRL` blocks) or DER, at most 5 MB. A CRL counts only when
it is signed by the key of the certificate that issued the one being checked. A CRL naming
that issuer but signed by another key is left aside (a CA renewed under the same name
publishes one per key); when no CRL of that name is signed by the issuer's key, the
configuration is refused (forged, or the wrong file). CRLs apply to every certificate of the
verified path but the trust anchor. A CRL past its `nextUpdate` is still applied, with a
warning: an entry it lists is not less revoked for being old, but a newer CRL may list more.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from gateway.certchain import cert_name
from gateway.certload import pem_blocks, pem_der, read_material
from gateway.errors import CertificateError, CertificateRevoked

__all__ = ["LoadedCrl", "Revocations", "load_crls"]

_CRL_LABEL = b"X509 CRL"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class LoadedCrl:
    """One CRL, the file (config field) it came from for precise messages, and the serial
    numbers it lists: a set lookup per check instead of a scan of every entry."""

    crl: x509.CertificateRevocationList
    source: str
    serials: frozenset[int]


def load_crls(path: str, *, source: str) -> list[LoadedCrl]:
    """Every CRL of one file (PEM blocks, or one DER CRL); CertificateError when unusable."""
    data = read_material(path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            blocks = [b for b in pem_blocks(data, source) if b.label == _CRL_LABEL]
            if not blocks:
                raise CertificateError(None, f"{source}: no X509 CRL block in the PEM file")
            crls = [x509.load_der_x509_crl(pem_der(b, source)) for b in blocks]
        else:
            crls = [x509.load_der_x509_crl(data)]
        # every entry parsed now (not at the first check), and indexed by serial number
        loaded = [LoadedCrl(c, source, frozenset(e.serial_number for e in c)) for c in crls]
        for crl in crls:
            crl.issuer.rfc4514_string()
    except ValueError as exc:
        raise CertificateError(None, f"{source}: not a valid CRL ({exc})") from None
    return loaded


def _reason(entry: x509.RevokedCertificate) -> str:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "no reason given"
    return str(reason.value)


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, UnsupportedAlgorithm):
        return False


class Revocations:
    """The CRLs in force, looked up by issuer name.

    Whether a CRL is signed by an issuer's key is worked out once per (CRL, key): many
    connections share a CA, and checking a large CRL's signature hashes all of it (19 ms for
    60,000 entries here), once per certificate otherwise.
    """

    def __init__(self, crls: Sequence[LoadedCrl] = ()) -> None:
        self._crls = tuple(crls)
        self._by_issuer: dict[x509.Name, list[LoadedCrl]] = {}
        for loaded in crls:
            self._by_issuer.setdefault(loaded.crl.issuer, []).append(loaded)
        self._signed: dict[tuple[int, bytes], bool] = {}

    def _signed_by(self, loaded: LoadedCrl, issuer: x509.Certificate) -> bool:
        key = (id(loaded), issuer.public_key().public_bytes(*_SPKI))
        known = self._signed.get(key)
        if known is None:
            known = self._signed[key] = _signed_by(loaded.crl, issuer)
        return known

    def next_updates(self) -> dict[str, dt.datetime | None]:
        """When each CRL file (by config field) is due for renewal: the earliest `nextUpdate`
        of the CRLs it holds, None when none of them says."""
        dates: dict[str, list[dt.datetime]] = {}
        for loaded in self._crls:
            found = dates.setdefault(loaded.source, [])
            if (when := loaded.crl.next_update_utc) is not None:
                found.append(when)
        return {source: min(found, default=None) for source, found in dates.items()}

    def check(
        self, path: Sequence[x509.Certificate], *, now: dt.datetime, connection: str | None
    ) -> list[str]:
        """Raise CertificateRevoked when a certificate of `path` (leaf first, anchor last) is
        revoked, CertificateError when a CRL of one of its issuers is forged; returns the
        staleness warnings."""
        warnings: list[str] = []
        for cert, issuer in itertools.pairwise(path):
            named = self._by_issuer.get(issuer.subject, [])
            signed = [loaded for loaded in named if self._signed_by(loaded, issuer)]
            if named and not signed:
                sources = ", ".join(loaded.source for loaded in named)
                raise CertificateError(
                    connection,
                    f"{sources} names {cert_name(issuer)} as its issuer but is not signed by "
                    "its key (forged, or the CRL of another key of that name)",
                )
            for loaded in signed:
                crl = loaded.crl
                entry = (
                    crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                    if cert.serial_number in loaded.serials
                    else None
                )
                if entry is not None:
                    when = entry.revocation_date_utc.date()
                    raise CertificateRevoked(
                        connection,
                        f"{cert_name(cert)} was revoked by {cert_name(issuer)} on {when} "
                        f"({_reason(entry)}; {loaded.source})",
                    )
                next_update = crl.next_update_utc
                if next_update is not None and now > next_update:
                    warnings.append(
                        f"{loaded.source}: the CRL of {cert_name(issuer)} was due for renewal on "
                        f"{next_update.date()}; revocations since then are unknown"
                    )
        return warnings
