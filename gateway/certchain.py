"""Chain verification, and the per-certificate judgements it shares with `certpolicy`.

Its own module because building and verifying a path is a job of its own; the small
accessors and checks the path walk applies to every certificate (validity window, key
strength, extension lookup, names) live here too, so `certpolicy` depends on this
module and not the other way round.

Chain verification, and why it has two stages: cryptography's `x509.verification` builds and
verifies the path first, with its WebPKI CA profile but a permit-all end-entity profile (the
WebPKI end-entity rules demand a SAN and a TLS EKU, which AS2 signing / encryption and many
client-type certificates lack; `certpolicy` judges the leaf instead). When that verifier
refuses, an explicit path walk (issuer name, signature, CA flag, path length, key-cert-sign,
validity, hash strength) finds the precise reason. If the explicit walk succeeds where the
verifier refused (an intermediate whose EKU omits clientAuth, for instance), the chain is
accepted with a warning, except when it relies on name constraints or unknown critical
extensions, which only the verifier evaluates: those are refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification

from gateway.certload import ensure_well_formed
from gateway.certrequest import CertRole, PrivateKey, PublicKey
from gateway.errors import CertificateError

__all__ = [
    "MAX_DEPTH",
    "VerifiedChain",
    "cert_name",
    "check_validity",
    "check_well_formed",
    "find_extension",
    "fingerprint",
    "key_description",
    "public_key_of",
    "require_aware",
    "strength_problem",
    "verify_chain",
]

MAX_DEPTH = 8
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)
_WEAK_HASHES = (hashes.MD5, hashes.SHA1, hashes.SHA224)
_GOOD_CURVES = MappingProxyType(
    {
        "secp256r1": "P-256",
        "secp384r1": "P-384",
        "secp521r1": "P-521",
        "brainpoolP256r1": "brainpoolP256r1",
        "brainpoolP384r1": "brainpoolP384r1",
        "brainpoolP512r1": "brainpoolP512r1",
    }
)
_SIG_ERRORS = (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm)


# --- accessors shared with certpolicy ---------------------------------------------------------


def require_aware(moment: dt.datetime) -> dt.datetime:
    """`moment` itself; a ValueError when it carries no time zone."""
    if moment.tzinfo is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    return moment


def cert_name(cert: x509.Certificate, *, issuer: bool = False) -> str:
    """The subject (or issuer) in RFC 4514 form, never raising on an undecodable name."""
    try:
        return (cert.issuer if issuer else cert.subject).rfc4514_string()
    except ValueError:
        return "<unprintable name>"


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as `AB:CD:...`, the form portals and openssl print."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def public_key_of(cert: x509.Certificate, connection: str | None) -> PublicKey:
    """The certified public key; a CertificateError when unreadable or unsupported."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(connection, f"{cert_name(cert)}: unreadable public key") from None
    if not isinstance(key, PublicKey):
        raise CertificateError(connection, f"unsupported public key type {type(key).__name__}")
    return key


def check_well_formed(certs: Sequence[x509.Certificate], connection: str | None) -> None:
    """`ensure_well_formed` on each certificate, its error attributed to `connection`."""
    for cert in certs:
        try:
            ensure_well_formed(cert)
        except CertificateError as exc:
            raise CertificateError(connection, exc.reason) from None


def find_extension(cert: x509.Certificate, kind: type[_Ext], connection: str | None) -> _Ext | None:
    """The extension's value, None when absent; a CertificateError when malformed."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise CertificateError(connection, f"{cert_name(cert)}: malformed extensions") from None


# --- single-certificate judgements the path walk applies ------------------------------------


def check_validity(
    cert: x509.Certificate, now: dt.datetime, *, connection: str | None = None, what: str = ""
) -> None:
    """Expired and not-yet-valid are distinct reasons, both naming the date."""
    label = f"{what} {cert_name(cert)}".strip()
    if require_aware(now) < cert.not_valid_before_utc:
        start = cert.not_valid_before_utc.isoformat()
        raise CertificateError(connection, f"{label} is not valid before {start}")
    if now > cert.not_valid_after_utc:
        end = cert.not_valid_after_utc.isoformat()
        raise CertificateError(connection, f"{label} expired on {end}")


def key_description(key: PublicKey | PrivateKey) -> str:
    """`RSA 3072`, `EC P-256`, `Ed25519`: what an operator reads in `raccord certs inspect`."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {_GOOD_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return "Ed448"


def strength_problem(key: PublicKey, role: CertRole | None) -> str | None:
    """Why `key` is too weak for `role` (None: any role), or None when it is strong enough."""
    problem = None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            problem = f"RSA key of {key.key_size} bits is too weak: at least 2048 required"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < 256:
            problem = f"EC key on {key.curve.name} is too weak: P-256 or stronger required"
        elif key.curve.name not in _GOOD_CURVES:
            problem = f"EC curve {key.curve.name} is not accepted (P-256/384/521 or brainpool)"
    elif role not in (None, CertRole.SIGNING):
        problem = f"{key_description(key)} keys are accepted for signing only, not for {role}"
    return problem


# --- chain -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedChain:
    """The path from the leaf to a trust anchor (both included), and soft findings."""

    path: tuple[x509.Certificate, ...]
    warnings: tuple[str, ...] = ()


def _webpki_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(now)
        .max_chain_depth(MAX_DEPTH)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
    )
    return tuple(builder.build_client_verifier().verify(leaf, list(intermediates)).chain)


def _issuer_in(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> tuple[x509.Certificate | None, bool]:
    """(the candidate whose key verifies `cert`, whether any candidate bore the issuer name)."""
    named = [c for c in candidates if c.subject == cert.issuer]
    for candidate in named:
        try:
            cert.verify_directly_issued_by(candidate)
        except _SIG_ERRORS:
            continue
        return candidate, True
    return None, bool(named)


def _check_signed_well(cert: x509.Certificate, connection: str | None) -> None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise CertificateError(connection, f"{cert_name(cert)}: unsupported signature") from None
    if isinstance(algorithm, _WEAK_HASHES):
        raise CertificateError(connection, f"{cert_name(cert)} is signed with {algorithm.name}")


def _check_issuing_ca(
    ca: x509.Certificate, *, below: int, now: dt.datetime, connection: str | None
) -> None:
    """An intermediate may issue: valid now, a CA, within its path length, keyCertSign."""
    check_validity(ca, now, connection=connection, what="intermediate")
    name = cert_name(ca)
    constraints = find_extension(ca, x509.BasicConstraints, connection)
    if constraints is None or not constraints.ca:
        raise CertificateError(connection, f"{name} issues certificates but is not a CA")
    if constraints.path_length is not None and below > constraints.path_length:
        raise CertificateError(connection, f"{name}: path length constraint exceeded")
    usage = find_extension(ca, x509.KeyUsage, connection)
    if usage is not None and not usage.key_cert_sign:
        raise CertificateError(connection, f"{name}: key usage lacks keyCertSign")
    if problem := strength_problem(public_key_of(ca, connection), None):
        raise CertificateError(connection, f"{name}: {problem}")


def _explicit_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    connection: str | None,
) -> tuple[x509.Certificate, ...]:
    """Walk issuer by issuer to an anchor; raise the precise reason when the walk breaks."""
    path = [leaf]
    for _ in range(MAX_DEPTH):
        current = path[-1]
        _check_signed_well(current, connection)
        anchor, named_anchor = _issuer_in(current, anchors)
        if anchor is not None:
            check_validity(anchor, now, connection=connection, what="trust anchor")
            return (*path, anchor)
        issuer, named = _issuer_in(current, [c for c in intermediates if c not in path])
        if issuer is not None:
            _check_issuing_ca(issuer, below=len(path) - 1, now=now, connection=connection)
            path.append(issuer)
            continue
        subject, issuer_name = cert_name(current), cert_name(current, issuer=True)
        if named or named_anchor:
            reason = f"signature of {subject} does not verify with the key of {issuer_name}"
        elif current.issuer == current.subject:
            reason = f"self-signed {subject} is not a configured trust anchor (untrusted root)"
        else:
            reason = (
                f"issuer {issuer_name} of {subject} is neither a trust anchor nor in the "
                "supplied chain (missing intermediate or untrusted root)"
            )
        raise CertificateError(connection, reason)
    raise CertificateError(connection, f"chain longer than {MAX_DEPTH} certificates")


def _refuse_unverifiable(
    path: Sequence[x509.Certificate], refusal: str, connection: str | None
) -> None:
    """The fallback cannot judge name constraints or unknown critical extensions: refuse."""
    for cert in path:
        try:
            extensions = list(cert.extensions)
        except ValueError:
            raise CertificateError(connection, f"{cert_name(cert)}: malformed extensions") from None
        for ext in extensions:
            if isinstance(ext.value, x509.NameConstraints) or (
                ext.critical and isinstance(ext.value, x509.UnrecognizedExtension)
            ):
                raise CertificateError(
                    connection,
                    f"{cert_name(cert)} carries {ext.oid.dotted_string}, which the explicit "
                    f"checks cannot judge; the WebPKI verifier refused the chain: {refusal}",
                )


def verify_chain(
    leaf: x509.Certificate,
    *,
    intermediates: Sequence[x509.Certificate] = (),
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    connection: str | None = None,
) -> VerifiedChain:
    """Build and verify the path from `leaf` to one of `anchors` at `now` (see module doc)."""
    if not anchors:
        raise CertificateError(connection, "no trust anchor configured")
    check_well_formed([leaf, *intermediates, *anchors], connection)
    check_validity(leaf, require_aware(now), connection=connection)
    if any(fingerprint(a) == fingerprint(leaf) for a in anchors):
        return VerifiedChain((leaf,))  # pinned: the certificate itself is trusted
    try:
        return VerifiedChain(_webpki_path(leaf, intermediates, anchors, now))
    except (verification.VerificationError, ValueError) as exc:
        refusal = str(exc)[:200]
    path = _explicit_path(leaf, intermediates, anchors, now, connection)
    _refuse_unverifiable(path, refusal, connection)
    note = f"chain accepted by explicit signature checks; the WebPKI verifier said: {refusal}"
    return VerifiedChain(path, (note,))
