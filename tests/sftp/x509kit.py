"""RFC 6187 test material: real certificates from `TestCA`, asyncssh identities, hostile signers.

The client side of the server tests is asyncssh's own client (a library we did not write); the
identities are built with asyncssh's public `load_keypairs`, never with our `x509auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncssh
import pytest
from asyncssh.public_key import SSHLocalKeyPair, SSHX509CertificateChain
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from protocols.ports import FlowDirection
from protocols.sftp.keys import key_of_certificate, key_of_private, wire
from protocols.sftp.paths import Jail
from protocols.sftp.ports import Account, AuthFailure
from protocols.sftp.x509auth import PYOPENSSL_NAMES, X509Login, quiet_pyopenssl
from tests.pki import Issued, PrivateKey, TestCA, now

# asyncssh decodes a presented chain with pyOpenSSL calls pyOpenSSL 26 deprecates (x509auth)
QUIET_PYOPENSSL = pytest.mark.filterwarnings(f"ignore:{PYOPENSSL_NAMES}:DeprecationWarning")


def chain_pem(issued: Issued) -> bytes:
    """Leaf first, then its intermediates: what a partner configures and presents."""
    return issued.cert_pem(with_chain=True)


def x509_keys(issued: Issued, *, pem: bytes | None = None) -> list[asyncssh.SSHKeyPair]:
    """asyncssh's own RFC 6187 identity for `issued`, without the bare-key fallback."""
    key = key_of_private(issued.key)
    with quiet_pyopenssl():
        pairs = asyncssh.load_keypairs([(key, pem if pem is not None else chain_pem(issued))])
    return [pair for pair in pairs if pair.has_x509_chain]


def plain_keys(issued: Issued) -> list[asyncssh.SSHKey]:
    return [key_of_private(issued.key)]


class Impostor(SSHLocalKeyPair):
    """Presents someone else's certificate chain but signs with its own key (hostile client)."""

    def __init__(self, victim: Issued, signer: PrivateKey) -> None:
        with quiet_pyopenssl():
            certs = asyncssh.load_certificates(chain_pem(victim))
        chain = SSHX509CertificateChain.construct_from_certs(certs)
        super().__init__(key_of_certificate(victim.cert), None, chain, None)
        self._signer = key_of_private(signer)

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign(data, self.sig_algorithm)


def lookalike(original: x509.Certificate, key: PrivateKey) -> Issued:
    """A self-signed certificate with the original's subject, serial and dates, another key."""
    cert = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.subject)
        .public_key(key.public_key())
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert=cert, key=key)


def issue_for_user(ca: TestCA, user: str, key: PrivateKey) -> Issued:
    """A client certificate naming `user` as its e-mail principal (what asyncssh's server maps
    to the login name when no option says otherwise), issued by `ca`'s issuing CA."""
    start = now() - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, user)]))
        .issuer_name(ca.issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(user)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.issuer_key, hashes.SHA256())
    )
    return Issued(cert=cert, key=key, chain=list(ca.chain))


def account(
    name: str,
    issued: Issued,
    anchors: tuple[x509.Certificate, ...],
    *,
    only: bool = False,
    direction: FlowDirection = "emission",
) -> Account:
    """An account bound to `issued` (its key authorized, its certificate pinned)."""
    return Account(
        name=name,
        keys=frozenset({wire(key_of_certificate(issued.cert))}),
        jail=Jail(deposit_codes=frozenset({"FSO1100A"}), collect_codes=frozenset()),
        direction=direction,
        environment="qual",
        x509=X509Login((issued.cert,), anchors, only=only),
    )


@dataclass
class Recorder:
    """An `SftpObserver` that remembers authentication failures and sessions."""

    failures: list[AuthFailure] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)

    def session_opened(self, account: str) -> None:
        self.opened.append(account)

    def session_closed(self, account: str) -> None:
        del account

    def auth_failed(self, reason: AuthFailure) -> None:
        self.failures.append(reason)

    def refused(self, direction: FlowDirection, kind: str) -> None:
        del direction, kind

    def accepted(self, direction: FlowDirection, seconds: float) -> None:
        del direction, seconds

    async def failure(self) -> AuthFailure:
        """The next reason the listener recorded (once the refused connection is gone)."""
        for _ in range(200):
            if self.failures:
                return self.failures.pop(0)
            await asyncio.sleep(0.01)
        raise AssertionError("no authentication failure recorded")


Identities = Sequence[asyncssh.SSHKeyPair] | Sequence[asyncssh.SSHKey]


@contextlib.asynccontextmanager
async def session(
    port: int, user: str, keys: Identities
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """asyncssh's client, public keys only, nothing from the machine's configuration."""
    conn = await asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        client_keys=keys,
        known_hosts=None,
        config=None,
        agent_path=None,
        password=None,
        kbdint_auth=False,
        preferred_auth="publickey",
    )
    try:
        yield conn
    finally:
        conn.close()
        await conn.wait_closed()


async def refusal(port: int, user: str, keys: Identities) -> str:
    """The reason asyncssh's client was refused (the test fails if it got in)."""
    try:
        async with session(port, user, keys):
            pass
    except asyncssh.PermissionDenied as exc:
        return exc.reason
    raise AssertionError(f"{user} logged in")
