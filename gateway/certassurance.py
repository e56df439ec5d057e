"""Assurance levels: which RGS (ANSSI) or eIDAS level a certificate claims, and from what.

Its own module because it is a table of policy OIDs and a QCStatements decoder, with
sources and confidence per rule, that changes with the standards and not with the
connection checks of `certpolicy`, which only reads the resulting level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from gateway.certchain import find_extension
from gateway.der import DerError, der_children, der_oid
from gateway.errors import CertificateError

__all__ = [
    "POLICY_TABLE",
    "AssuranceLevel",
    "PolicyRule",
    "assurance_of",
]


class AssuranceLevel(StrEnum):
    """What a certificate claims; declared weakest first (`rank` follows this order)."""

    NONE = "none"
    RGS_UNRATED = "rgs"  # a policy under the ANSSI arc whose level the table does not know
    EIDAS_QUALIFIED = "eidas-qualified"  # EU qualified (signature/seal), not for websites
    RGS_1 = "rgs*"
    RGS_2 = "rgs**"
    RGS_3 = "rgs***"
    QWAC = "eidas-qwac"

    @property
    def rank(self) -> int:
        return list(AssuranceLevel).index(self)

    @property
    def accepted_by_chorus_pro(self) -> bool:
        """domain.md §4: RGS* or above, or an eIDAS QWAC."""
        return self.rank >= AssuranceLevel.RGS_1.rank


@dataclass(frozen=True)
class PolicyRule:
    """A certificatePolicies OID (and everything under it) and the level it signals."""

    prefix: str
    level: AssuranceLevel
    name: str
    source: str
    confidence: str  # high: read in the standard; medium: secondary sources; low: inferred


_EN411_2 = "ETSI EN 319 411-2 §5.3 (policy identifiers), arc itu-t(0) 4 etsi(0) 194112 1"
POLICY_TABLE: tuple[PolicyRule, ...] = (
    PolicyRule("0.4.0.194112.1.0", AssuranceLevel.EIDAS_QUALIFIED, "QCP-n", _EN411_2, "high"),
    PolicyRule("0.4.0.194112.1.1", AssuranceLevel.EIDAS_QUALIFIED, "QCP-l", _EN411_2, "high"),
    PolicyRule("0.4.0.194112.1.2", AssuranceLevel.EIDAS_QUALIFIED, "QCP-n-qscd", _EN411_2, "high"),
    PolicyRule("0.4.0.194112.1.3", AssuranceLevel.EIDAS_QUALIFIED, "QCP-l-qscd", _EN411_2, "high"),
    # QEVCP-w was called QCP-w before EN 319 411-2 V2.2; same OID.
    PolicyRule("0.4.0.194112.1.4", AssuranceLevel.QWAC, "QEVCP-w (QCP-w)", _EN411_2, "high"),
    PolicyRule("0.4.0.194112.1.5", AssuranceLevel.QWAC, "QNCP-w", _EN411_2, "high"),
    PolicyRule("0.4.0.194112.1.6", AssuranceLevel.QWAC, "QNCP-w-gen", _EN411_2, "medium"),
    # PSD2 QWAC policy of ETSI TS 119 495 (arc 0.4.0.19495.3): a QWAC, but not "QNCP-w".
    PolicyRule("0.4.0.19495.3.1", AssuranceLevel.QWAC, "QCP-w-psd2", "ETSI TS 119 495", "medium"),
    # ANSSI's arc. No public source we could read maps its sub-arcs to RGS levels, and French
    # CAs put their own PC OIDs (in their own arcs) in certificates: operators declare those
    # with their level through `extra_policies`.
    PolicyRule("1.2.250.1.223", AssuranceLevel.RGS_UNRATED, "ANSSI arc", "ANSSI OID arc", "low"),
)
_QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")  # RFC 3739
_QC_COMPLIANCE = "0.4.0.1862.1.1"  # ETSI EN 319 412-5 esi4-qcStatement-1
_QC_TYPE = "0.4.0.1862.1.6"  # esi4-qcStatement-6
_QCT_WEB = "0.4.0.1862.1.6.3"


def _policy_oids(cert: x509.Certificate) -> list[str]:
    policies = find_extension(cert, x509.CertificatePolicies, None)
    return [p.policy_identifier.dotted_string for p in policies or ()]


def _qc_statements(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(statement OIDs, QcType OIDs) of the QCStatements extension; raises DerError."""
    try:
        raw = cert.extensions.get_extension_for_oid(_QC_STATEMENTS).value.public_bytes()
    except x509.ExtensionNotFound:
        return set(), set()
    (tag, body), *rest = der_children(raw) or [(0, b"")]
    if tag != 0x30 or rest:
        raise DerError("QCStatements is not one SEQUENCE")
    statements: set[str] = set()
    types: set[str] = set()
    for stag, statement in der_children(body):
        parts = der_children(statement)
        if stag != 0x30 or not parts or parts[0][0] != 0x06:
            raise DerError("QCStatement without statementId")
        statements.add(oid := der_oid(parts[0][1]))
        if oid == _QC_TYPE and len(parts) > 1:
            types.update(der_oid(v) for t, v in der_children(parts[1][1]) if t == 0x06)
    return statements, types


def _level_warning(level: AssuranceLevel) -> str | None:
    match level:
        case AssuranceLevel.NONE:
            return "no RGS policy nor eIDAS QWAC marker: fine for a sandbox, not for Chorus Pro"
        case AssuranceLevel.RGS_UNRATED:
            return "RGS policy of unknown level: declare its OID and level in extra policies"
        case AssuranceLevel.EIDAS_QUALIFIED:
            return "EU qualified certificate but not a QWAC (no QcType web, no QWAC policy)"
        case _:
            return None


def assurance_of(
    cert: x509.Certificate, *, extra_policies: Mapping[str, AssuranceLevel] | None = None
) -> tuple[AssuranceLevel, tuple[str, ...]]:
    """The strongest RGS / eIDAS level the certificate claims, with warnings when weak.

    QWAC: QcCompliance with QcType web, or a QWAC policy OID. QcType web alone is not
    enough (EN 319 412-5: without QcCompliance the certificate is not EU qualified).
    """
    rules = [
        *POLICY_TABLE,
        *(
            PolicyRule(k, v, k, "configuration", "operator")
            for k, v in (extra_policies or {}).items()
        ),
    ]
    try:
        policies = _policy_oids(cert)
        statements, types = _qc_statements(cert)
    except (CertificateError, DerError, ValueError):
        policies, statements, types = [], set(), set()
        warnings = ["malformed extensions (certificate policies or QCStatements) ignored"]
    else:
        warnings = []
    levels = [
        rule.level
        for oid in policies
        for rule in rules
        if oid == rule.prefix or oid.startswith(rule.prefix + ".")
    ]
    if _QC_COMPLIANCE in statements:
        levels.append(AssuranceLevel.QWAC if _QCT_WEB in types else AssuranceLevel.EIDAS_QUALIFIED)
    elif _QCT_WEB in types:
        warnings.append("QcType web without QcCompliance: not an EU qualified certificate")
    level = max(levels, key=lambda lv: lv.rank, default=AssuranceLevel.NONE)
    if note := _level_warning(level):
        warnings.append(note)
    return level, tuple(warnings)
