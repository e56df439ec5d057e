"""X.509 logins over SSH (RFC 6187): which certificate an account may present, and why one fails.

asyncssh runs the RFC 6187 mechanics itself (the `x509v3-*` algorithms, the signature over the
session identifier) but consults only the X.509 entries of an authorized-keys list, and never
says why it refused a chain. `CertificateGate` is that list for one login attempt: the listener
hands it a `CertificateJudge` for the account named in the request, which

- pins the presented leaf to the account's configured certificates, byte for byte (another
  connection's certificate from the same CA, or a lookalike with the same subject, is unknown);
- checks the leaf's validity period at login time (expired or not yet valid);
- verifies the presented chain to the account's trust anchors (OpenSSL through pyOpenSSL, the
  check asyncssh itself repeats afterwards, so the reason found here is the one that applies).

No extended key usage is required (asyncssh's `x509_purposes` is "any"): its default,
secureShellClient, is not carried by the RGS certificates Chorus Pro uses, and the gateway's
certificate policy already checked the role's key usage when the configuration was loaded.
The account is bound by configuration (the pinned certificate), not by names in the
certificate, so the entry carries `principals`, which tells asyncssh not to look for the
login name among the certificate's e-mail names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import asyncssh
from asyncssh.public_key import SSHLocalKeyPair, SSHX509Certificate, SSHX509CertificateChain
from cryptography import x509
from cryptography.hazmat.primitives import serialization

X509Failure = Literal[
    "x509-unknown-certificate",
    "x509-expired",
    "x509-not-yet-valid",
    "x509-untrusted-chain",
    "x509-revoked",
]
MAX_CHAIN = 8  # certificates accepted in one presented chain
# asyncssh 2.24 hashes certificate names with pyOpenSSL calls that pyOpenSSL 26 deprecates
PYOPENSSL_NAMES = r"X509\.get_(subject|issuer) is deprecated"


@contextlib.contextmanager
def quiet_pyopenssl() -> Iterator[None]:
    """Silence that one deprecation around our own certificate imports through asyncssh.

    The warning is asyncssh's to fix; left alone it is noise in production and, under
    `-W error` (the test suite), turns every certificate import into a crash.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PYOPENSSL_NAMES, category=DeprecationWarning)
        yield


@dataclass(frozen=True, slots=True)
class X509Login:
    """How one account may log in with a certificate (RFC 6187).

    `certificates`: the leaves it may present (any one of them, exactly); `anchors`: the trust
    anchors their chains must reach; `only`: plain public-key login (even with a certificate's
    key) is refused, so the certificate's validity and chain are checked at every login.
    """

    certificates: tuple[x509.Certificate, ...]
    anchors: tuple[x509.Certificate, ...]
    only: bool = False
    revoked: Mapping[bytes, str] = field(default_factory=dict)  # DER of a listed one: why


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def presented_chain(public_data: bytes) -> tuple[bytes, ...]:
    """The DER certificates of an RFC 6187 public key blob, leaf first (ValueError if malformed).

    Layout (RFC 6187 §2.1): string algorithm, uint32 count, `count` strings (DER certificates),
    uint32 OCSP count, OCSP strings. asyncssh parsed it already; this only reads it back.
    """
    view = memoryview(public_data)
    offset = 0

    def take(size: int) -> memoryview:
        nonlocal offset
        if size < 0 or offset + size > len(view):
            raise ValueError("truncated RFC 6187 certificate chain")
        part = view[offset : offset + size]
        offset += size
        return part

    def uint32() -> int:
        value: int = struct.unpack(">I", take(4))[0]
        return value

    take(uint32())  # algorithm name
    count = uint32()
    if not 1 <= count <= MAX_CHAIN:
        raise ValueError(f"{count} certificates in the chain (1 to {MAX_CHAIN} accepted)")
    return tuple(bytes(take(uint32())) for _ in range(count))


def ssh_certificates(certs: Iterable[x509.Certificate]) -> list[SSHX509Certificate]:
    """asyncssh's form of certificates (KeyImportError or ValueError when it cannot use one)."""
    found: list[SSHX509Certificate] = []
    with quiet_pyopenssl():
        for cert in certs:
            # DER always imports as an X.509 certificate (OpenSSH ones have no DER form)
            found.append(cast(SSHX509Certificate, asyncssh.import_certificate(der(cert))))
    return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """One presented chain: accepted (detail: its subject), or the precise reason it was not."""

    failure: X509Failure | None
    detail: str = ""


class CertificateJudge:
    """The checks of one account's X.509 login, prepared once per listener."""

    def __init__(self, login: X509Login, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.login = login
        self._pinned = {der(cert): cert for cert in login.certificates}
        self._anchors = ssh_certificates(login.anchors)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def judge(self, chain: SSHX509CertificateChain) -> Verdict:
        """Pin, revocation (CRLs read at load), validity at login time, then the chain."""
        verdict = self._leaf(chain)
        if verdict.failure is not None:
            return verdict
        if not self._anchors:
            return Verdict("x509-untrusted-chain", "no trust anchor configured")
        try:
            chain.validate_chain(self._anchors, (), set(), "any", user_principal="")
        except ValueError as exc:
            return Verdict("x509-untrusted-chain", str(exc))
        return Verdict(None, f"{chain.subject}")

    def _leaf(self, chain: SSHX509CertificateChain) -> Verdict:
        try:
            leaf_der = presented_chain(chain.public_data)[0]
        except ValueError as exc:
            return Verdict("x509-unknown-certificate", str(exc))
        leaf = self._pinned.get(leaf_der)
        if leaf is None:
            return Verdict("x509-unknown-certificate", f"presented {chain.subject}")
        if (revoked := self.login.revoked.get(leaf_der)) is not None:
            return Verdict("x509-revoked", revoked)
        now = self._clock()
        if now > leaf.not_valid_after_utc:
            return Verdict("x509-expired", f"expired on {leaf.not_valid_after_utc.isoformat()}")
        if now < leaf.not_valid_before_utc:
            start = leaf.not_valid_before_utc.isoformat()
            return Verdict("x509-not-yet-valid", f"not valid before {start}")
        return Verdict(None)


def judges(accounts: Iterable[tuple[str, X509Login | None]]) -> dict[str, CertificateJudge]:
    """A judge per account that may log in with a certificate."""
    return {name: CertificateJudge(login) for name, login in accounts if login is not None}


def trusted_union(judged: Mapping[str, CertificateJudge]) -> list[SSHX509Certificate]:
    """Every anchor of a listener: what asyncssh's own (second) chain check is given."""
    anchors = {der(a): a for j in judged.values() for a in j.login.anchors}
    return ssh_certificates(anchors.values())


class CertificateGate(asyncssh.SSHAuthorizedKeys):
    """The authorized-keys list asyncssh consults for one login: X.509 chains only.

    `accept(chain)` is the listener's decision (it records the reason of a refusal). Plain
    keys are not judged here (`validate` answers None) so asyncssh asks the listener's own
    `validate_public_key`, as without a certificate.
    """

    def __init__(self, account: str, accept: Callable[[SSHX509CertificateChain], bool]) -> None:
        super().__init__()
        self._options: Mapping[str, object] = {"principals": (account,)}
        self._accept = accept

    def validate(
        self,
        key: asyncssh.SSHKey,
        client_host: str,
        client_addr: str,
        cert_principals: Sequence[str] | None = None,
        ca: bool = False,
    ) -> Mapping[str, object] | None:
        del key, client_host, client_addr, cert_principals, ca
        return None

    def validate_x509(
        self, cert: SSHX509CertificateChain, client_host: str, client_addr: str
    ) -> tuple[Mapping[str, object] | None, SSHX509Certificate | None]:
        del client_host, client_addr
        return (self._options, None) if self._accept(cert) else (None, None)


def x509_identity(key: asyncssh.SSHKey, chain: Sequence[bytes]) -> asyncssh.SSHKeyPair:
    """Our private key with its certificate chain (DER, leaf first), offered only per RFC 6187.

    asyncssh's `load_keypairs` would also offer the bare key after the certificate; this pair
    is the certificate form alone, so a server that refuses the certificate is not quietly
    offered the plain key instead. ValueError when the chain is unreadable or not for this key.
    """
    if not chain:
        raise ValueError("no X.509 certificate to present with the key")
    try:
        with quiet_pyopenssl():
            certs = [asyncssh.import_certificate(item) for item in chain]
        if not all(isinstance(cert, SSHX509Certificate) for cert in certs):
            raise ValueError("not an X.509 certificate")
        return SSHLocalKeyPair(key, None, SSHX509CertificateChain.construct_from_certs(certs), None)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(f"cannot present the certificate chain with the key: {exc}") from None
