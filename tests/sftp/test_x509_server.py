"""Our listener's RFC 6187 logins, driven by asyncssh's own client (hostile cases first).

Every certificate is real (tests/pki.py), RSA 2048 and EC P-256 leaves under a root and an
intermediate; the client presents them with asyncssh's `x509v3-*` algorithms. Each refusal
must carry the precise reason to the observer and look the same on the wire.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from protocols.sftp.keys import key_of_certificate, wire
from protocols.sftp.ports import Account, EmptyMailbox, ListenerParams
from protocols.sftp.server import SftpListener
from protocols.sftp.x509auth import der
from tests.pki import Issued, TestCA, ec_key, now, rsa_key
from tests.sftp.harness import GatewayEnv, invoice
from tests.sftp.x509kit import (
    QUIET_PYOPENSSL,
    Impostor,
    Recorder,
    account,
    issue_for_user,
    lookalike,
    plain_keys,
    refusal,
    session,
    x509_keys,
)

pytestmark = QUIET_PYOPENSSL


@dataclass
class Pki:
    """One CA with an intermediate, its leaves, and a second, unrelated CA."""

    ca: TestCA
    rsa: Issued  # the partner's certificate (RSA 2048)
    ec: Issued  # another partner's (EC P-256)
    neighbour: Issued  # another connection's valid certificate, same CA
    expired: Issued
    future: Issued
    rogue: TestCA  # not a trust anchor of anyone


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = TestCA("RFC6187 Root", intermediate=True)
    day = dt.timedelta(days=1)
    past, later = now() - day, now() + day
    return Pki(
        ca=ca,
        rsa=ca.issue("aife-sftp-rsa", key=rsa_key(2048)),
        ec=ca.issue("aife-sftp-ec", key=ec_key()),
        neighbour=ca.issue("other-connection", key=ec_key()),
        expired=ca.issue("expired", key=ec_key(), not_before=past - 9 * day, not_after=past),
        future=ca.issue("future", key=ec_key(), not_before=later, not_after=later + 9 * day),
        rogue=TestCA("RFC6187 Root", intermediate=True),  # same names, other keys
    )


@dataclass
class Running:
    listener: SftpListener
    seen: Recorder

    @property
    def port(self) -> int:
        return self.listener.port


async def _start(env: GatewayEnv, accounts: Sequence[Account], host_key: Path) -> Running:
    seen = Recorder()
    params = ListenerParams(host="127.0.0.1", port=0, host_key=host_key, accounts=tuple(accounts))
    listener = SftpListener(params, inbox=env.port, mailbox=EmptyMailbox(), observer=seen)
    await listener.start()
    return Running(listener, seen)


@pytest.fixture
async def served(env: GatewayEnv, pki: Pki, tmp_path: Path) -> AsyncIterator[Running]:
    """`rsa` and `ec` may log in by certificate; `strict` (the RSA leaf too) only that way."""
    anchors = (pki.ca.root,)
    running = await _start(
        env,
        [
            account("rsa", pki.rsa, anchors),
            account("ec", pki.ec, anchors),
            account("expired", pki.expired, anchors),
            account("future", pki.future, anchors),
            account("strict", pki.neighbour, anchors, only=True),
        ],
        tmp_path / "host_key",
    )
    yield running
    await running.listener.stop(timeout=2)


# --- hostile -------------------------------------------------------------------------------------


async def test_another_connections_certificate_from_the_same_ca_is_refused(
    served: Running, pki: Pki
) -> None:
    await refusal(served.port, "rsa", x509_keys(pki.neighbour))
    assert await served.seen.failure() == "x509-unknown-certificate"
    assert served.seen.opened == []


async def test_an_expired_certificate_is_refused_at_login(served: Running, pki: Pki) -> None:
    await refusal(served.port, "expired", x509_keys(pki.expired))
    assert await served.seen.failure() == "x509-expired"


async def test_a_certificate_not_yet_valid_is_refused(served: Running, pki: Pki) -> None:
    await refusal(served.port, "future", x509_keys(pki.future))
    assert await served.seen.failure() == "x509-not-yet-valid"


async def test_a_signature_by_another_key_than_the_certificates_is_refused(
    served: Running, pki: Pki
) -> None:
    impostor = Impostor(pki.rsa, signer=rsa_key(2048))  # knows the certificate, not its key
    await refusal(served.port, "rsa", [impostor])
    assert await served.seen.failure() == "x509-bad-signature"
    assert served.seen.opened == []


async def test_a_self_signed_lookalike_with_the_same_subject_is_refused(
    served: Running, pki: Pki
) -> None:
    fake = lookalike(pki.ec.cert, ec_key())
    assert fake.cert.subject == pki.ec.cert.subject
    await refusal(served.port, "ec", x509_keys(fake))
    assert await served.seen.failure() == "x509-unknown-certificate"


async def test_a_lookalike_chain_from_a_ca_with_the_same_names_is_refused(
    served: Running, pki: Pki
) -> None:
    fake = pki.rogue.issue("aife-sftp-ec", key=ec_key())
    assert (fake.cert.subject, fake.cert.issuer) == (pki.ec.cert.subject, pki.ec.cert.issuer)
    await refusal(served.port, "ec", x509_keys(fake))
    assert await served.seen.failure() == "x509-unknown-certificate"


async def test_a_pinned_certificate_whose_chain_reaches_no_anchor_is_refused(
    env: GatewayEnv, pki: Pki, tmp_path: Path
) -> None:
    """The certificate is the configured one, but the anchors are another CA's."""
    running = await _start(env, [account("rsa", pki.rsa, (pki.rogue.root,))], tmp_path / "k")
    try:
        await refusal(running.port, "rsa", x509_keys(pki.rsa))
        assert await running.seen.failure() == "x509-untrusted-chain"
    finally:
        await running.listener.stop(timeout=2)


async def test_a_chain_missing_its_intermediate_is_refused(served: Running, pki: Pki) -> None:
    leaf_only = pki.rsa.cert_pem(with_chain=False)
    await refusal(served.port, "rsa", x509_keys(pki.rsa, pem=leaf_only))
    assert await served.seen.failure() == "x509-untrusted-chain"


async def test_a_plain_key_is_refused_when_the_account_is_x509_only(
    served: Running, pki: Pki
) -> None:
    await refusal(served.port, "strict", plain_keys(pki.neighbour))
    assert await served.seen.failure() == "x509-required"


async def test_refusals_do_not_reveal_whether_the_account_exists(served: Running, pki: Pki) -> None:
    unknown = await refusal(served.port, "nobody", x509_keys(pki.rsa))
    assert await served.seen.failure() == "unknown-account"
    wrong = await refusal(served.port, "ec", x509_keys(pki.rsa))
    assert await served.seen.failure() == "x509-unknown-certificate"
    assert unknown.replace("nobody", "ec") == wrong  # the client names the user it tried


async def test_an_account_without_certificates_refuses_any_certificate(
    env: GatewayEnv, pki: Pki, tmp_path: Path
) -> None:
    bare = Account(
        name="keys-only",
        keys=account("x", pki.rsa, ()).keys,
        jail=account("x", pki.rsa, ()).jail,
        direction="emission",
        environment="qual",
    )
    running = await _start(env, [bare], tmp_path / "k")
    try:
        await refusal(running.port, "keys-only", x509_keys(pki.rsa))
        assert await running.seen.failure() == "x509-unknown-certificate"
    finally:
        await running.listener.stop(timeout=2)


async def test_a_revoked_certificate_is_refused_by_certificate_and_by_its_key(
    env: GatewayEnv, pki: Pki, tmp_path: Path
) -> None:
    """The gateway marks what a CRL lists (`X509Login.revoked`, `Account.revoked_keys`)."""
    base = account("revoked", pki.rsa, (pki.ca.root,))
    assert base.x509 is not None
    why = "revoked on 2026-11-27 (keyCompromise)"
    marked = replace(
        base,
        x509=replace(base.x509, revoked={der(pki.rsa.cert): why}),
        revoked_keys={wire(key_of_certificate(pki.rsa.cert)): why},
    )
    running = await _start(env, [marked], tmp_path / "k")
    try:
        await refusal(running.port, "revoked", x509_keys(pki.rsa))
        assert await running.seen.failure() == "x509-revoked"
        await refusal(running.port, "revoked", plain_keys(pki.rsa))
        assert await running.seen.failure() == "x509-revoked"
        assert running.seen.opened == []
    finally:
        await running.listener.stop(timeout=2)


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["rsa", "ec"])
async def test_the_configured_certificate_logs_in_and_deposits(
    served: Running, pki: Pki, env: GatewayEnv, which: str
) -> None:
    issued = pki.rsa if which == "rsa" else pki.ec
    async with (
        session(served.port, which, x509_keys(issued)) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("/out/FSO1100A/x509.xml", "wb") as remote,
    ):
        await remote.write(invoice())
    assert served.seen.opened == [which]
    [message] = await env.store.list_messages()
    assert message.source == which


async def test_the_x509_only_account_logs_in_with_its_certificate(
    served: Running, pki: Pki
) -> None:
    async with session(served.port, "strict", x509_keys(pki.neighbour)):
        pass
    assert served.seen.opened == ["strict"]


async def test_a_plain_key_login_with_the_certificate_key_still_works_by_default(
    served: Running, pki: Pki
) -> None:
    async with session(served.port, "ec", plain_keys(pki.ec)):
        pass
    assert served.seen.opened == ["ec"]


async def test_a_certificate_naming_another_login_still_binds_by_configuration(
    env: GatewayEnv, pki: Pki, tmp_path: Path
) -> None:
    """The account is bound by the pinned certificate, not by the names it carries."""
    issued = issue_for_user(pki.ca, "someone-else@example.org", rsa_key(2048))
    running = await _start(env, [account("bound", issued, (pki.ca.root,))], tmp_path / "k")
    try:
        async with session(running.port, "bound", x509_keys(issued)):
            pass
        await refusal(running.port, "someone-else@example.org", x509_keys(issued))
    finally:
        await running.listener.stop(timeout=2)
