"""The pieces of `x509auth` on their own: hostile chain blobs, login-time validity, identities."""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
from asyncssh.public_key import SSHX509CertificateChain
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import TransientSendError
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import key_of_private
from protocols.sftp.ports import EmptyMailbox, ListenerParams, NullObserver
from protocols.sftp.sender import SftpSender
from protocols.sftp.server import SftpListener
from protocols.sftp.x509auth import (
    MAX_CHAIN,
    CertificateJudge,
    X509Login,
    der,
    presented_chain,
    quiet_pyopenssl,
    x509_identity,
)
from tests.pki import Issued, TestCA, ec_key, rsa_key
from tests.sftp.harness import GatewayEnv, invoice
from tests.sftp.x509kit import QUIET_PYOPENSSL, account, chain_pem

pytestmark = QUIET_PYOPENSSL


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("Units Root")


@pytest.fixture(scope="module")
def leaf(ca: TestCA) -> Issued:
    return ca.issue("units-leaf", key=ec_key())


def blob(*certs: bytes, algorithm: bytes = b"x509v3-ecdsa-sha2-nistp256") -> bytes:
    def string(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    count = struct.pack(">I", len(certs))
    return string(algorithm) + count + b"".join(string(c) for c in certs) + struct.pack(">I", 0)


def chain_of(issued: Issued) -> SSHX509CertificateChain:
    with quiet_pyopenssl():
        certs = asyncssh.load_certificates(chain_pem(issued))
    return SSHX509CertificateChain.construct_from_certs(certs)


# --- the RFC 6187 blob ---------------------------------------------------------------------------


def test_the_presented_chain_is_read_back_leaf_first(leaf: Issued, ca: TestCA) -> None:
    assert presented_chain(blob(der(leaf.cert), der(ca.root))) == (der(leaf.cert), der(ca.root))
    assert presented_chain(chain_of(leaf).public_data) == (der(leaf.cert),)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00\x05x509",  # name cut short
        blob(),  # no certificate
        blob(*[b"x"] * (MAX_CHAIN + 1)),  # too long a chain
        blob(b"abc")[:-6],  # certificate cut short
        b"\x00\x00\x00\x01x\xff\xff\xff\xff",  # absurd count
    ],
)
def test_hostile_chain_blobs_are_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="certificate"):
        presented_chain(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_no_blob_crashes_the_reader(data: bytes) -> None:
    try:
        found = presented_chain(data)
    except ValueError:
        return
    assert 1 <= len(found) <= MAX_CHAIN


# --- validity at login time, not at load ------------------------------------------------------


def test_validity_is_judged_at_each_login(leaf: Issued, ca: TestCA) -> None:
    cert = leaf.cert
    moments = iter(
        [
            cert.not_valid_before_utc + dt.timedelta(minutes=1),
            cert.not_valid_after_utc + dt.timedelta(seconds=1),
            cert.not_valid_before_utc - dt.timedelta(seconds=1),
        ]
    )
    judge = CertificateJudge(X509Login((cert,), (ca.root,)), clock=lambda: next(moments))
    chain = chain_of(leaf)
    assert judge.judge(chain).failure is None
    assert judge.judge(chain).failure == "x509-expired"
    assert judge.judge(chain).failure == "x509-not-yet-valid"


def test_a_judge_without_anchors_refuses_rather_than_trusting_the_pin(leaf: Issued) -> None:
    verdict = CertificateJudge(X509Login((leaf.cert,), ())).judge(chain_of(leaf))
    assert verdict.failure == "x509-untrusted-chain"


# --- our client's identity -----------------------------------------------------------------------


def test_the_identity_offers_only_the_certificate_form(leaf: Issued) -> None:
    pair = x509_identity(key_of_private(leaf.key), [der(leaf.cert)])
    assert pair.has_x509_chain
    assert pair.get_algorithm().startswith("x509v3-")


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        ((), "no X.509 certificate"),
        ((b"not a certificate",), "cannot present"),
    ],
)
def test_an_unusable_chain_is_a_value_error(
    leaf: Issued, chain: tuple[bytes, ...], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        x509_identity(key_of_private(leaf.key), chain)


def test_a_chain_for_another_key_is_a_value_error(leaf: Issued, ca: TestCA) -> None:
    other = ca.issue("someone-else", key=rsa_key(2048))
    with pytest.raises(ValueError, match="mismatch"):
        x509_identity(key_of_private(leaf.key), [der(other.cert)])


# --- both ends ours ------------------------------------------------------------------------------


async def test_our_client_logs_in_to_our_listener_by_certificate_only(
    env: GatewayEnv, ca: TestCA, tmp_path: Path
) -> None:
    issued = ca.issue("both-ends", key=rsa_key(2048))
    strict = account("partner", issued, (ca.root,), only=True)
    params = ListenerParams(
        host="127.0.0.1", port=0, host_key=tmp_path / "host_key", accounts=(strict,)
    )
    listener = SftpListener(params, inbox=env.port, mailbox=EmptyMailbox(), observer=NullObserver())
    await listener.start()
    payload = tmp_path / "invoice.xml"
    payload.write_bytes(invoice())
    host = asyncssh.read_private_key(tmp_path / "host_key")
    client = ClientParams(
        connection="partner",
        host="127.0.0.1",
        port=listener.port,
        username="partner",
        client_key=key_of_private(issued.key),
        pins=(host,),
        ciphers=("aes128-gcm@openssh.com",),
        remote_dir="/out/FSO1100A",
    )
    try:
        with pytest.raises(TransientSendError, match="refused our key"):
            await SftpSender(client).send_file(payload, file_name="a.xml", interface_code="X")
        sender = SftpSender(replace(client, certificate_chain=(der(issued.cert),)))
        done = await sender.send_file(payload, file_name="FSO1100A_1.xml", interface_code="X")
        await sender.close()
    finally:
        await listener.stop(timeout=2)
    assert done.remote_path == "/out/FSO1100A/FSO1100A_1.xml"
    [message] = await env.store.list_messages()
    assert message.source == "partner"
