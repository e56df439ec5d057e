"""Our client's RFC 6187 login against asyncssh's own server, configured here independently.

The server is plain asyncssh: an authorized-keys list with the `x509v3-*` entry of the one
certificate it accepts, its trusted root, and its stock SFTP server in a chroot. Nothing of
ours runs on that side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509

from protocols.errors import TransientSendError
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import key_of_private
from protocols.sftp.sender import SftpSender
from protocols.sftp.x509auth import der, quiet_pyopenssl
from tests.pki import Issued, TestCA, ec_key, rsa_key
from tests.sftp.x509kit import QUIET_PYOPENSSL, issue_for_user

pytestmark = QUIET_PYOPENSSL
USER = "pa-g2b-qual@raccord.test"  # asyncssh's server maps the login to the e-mail principal


@dataclass
class Pki:
    ca: TestCA
    rsa: Issued
    ec: Issued
    neighbour: Issued  # another connection's certificate for the same login, same CA
    rogue: TestCA


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = TestCA("AIFE side Root", intermediate=True)
    return Pki(
        ca=ca,
        rsa=issue_for_user(ca, USER, rsa_key(2048)),
        ec=issue_for_user(ca, USER, ec_key()),
        neighbour=issue_for_user(ca, USER, ec_key()),
        rogue=TestCA("AIFE side Root", intermediate=True),
    )


def authorized_line(cert: x509.Certificate) -> str:
    """The authorized_keys entry pinning one certificate, as asyncssh writes it."""
    with quiet_pyopenssl():
        imported = asyncssh.import_certificate(der(cert))
    return imported.export_certificate("openssh").decode()


@dataclass
class AifeServer:
    port: int
    host_key: asyncssh.SSHKey
    root: Path


StartServer = Callable[[str, Sequence[x509.Certificate]], Awaitable[AifeServer]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    acceptors: list[asyncssh.SSHAcceptor] = []

    async def start(authorized: str, trusted: Sequence[x509.Certificate]) -> AifeServer:
        root = tmp_path / f"aife{len(acceptors)}"
        (root / "in").mkdir(parents=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        with quiet_pyopenssl():
            anchors = [asyncssh.import_certificate(der(c)) for c in trusted]
        acceptor = await asyncssh.create_server(
            asyncssh.SSHServer,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(authorized),
            x509_trusted_certs=anchors,
            x509_trusted_cert_paths=[],
            x509_purposes="clientAuth",
            password_auth=False,
            kbdint_auth=False,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
            config=None,
        )
        acceptors.append(acceptor)
        return AifeServer(int(acceptor.get_port()), host_key, root)

    yield start
    for acceptor in acceptors:
        acceptor.close()
        await acceptor.wait_closed()


def params(server: AifeServer, issued: Issued, *, chain: Sequence[bytes] | None) -> ClientParams:
    own = chain if chain is not None else ()
    return ClientParams(
        connection="g2b-qual-sftp",
        host="127.0.0.1",
        port=server.port,
        username=USER,
        client_key=key_of_private(issued.key),
        pins=(server.host_key,),
        ciphers=("aes128-gcm@openssh.com",),
        connect_timeout=10.0,
        remote_dir="/in",
        certificate_chain=tuple(own),
    )


def chain_of(issued: Issued) -> tuple[bytes, ...]:
    return tuple(der(c) for c in (issued.cert, *issued.chain))


async def send(client: ClientParams, tmp_path: Path) -> None:
    payload = tmp_path / "p.xml"
    payload.write_bytes(b"<x509/>")
    sender = SftpSender(client)
    try:
        await sender.send_file(payload, file_name="XGB0002A_1.xml", interface_code="XGB0002A")
    finally:
        await sender.close()


# --- hostile ---------------------------------------------------------------------------------


async def test_a_server_pinning_another_certificate_refuses_ours(
    make_server: StartServer, pki: Pki, tmp_path: Path
) -> None:
    server = await make_server(authorized_line(pki.neighbour.cert), [pki.ca.root])
    with pytest.raises(TransientSendError, match=r"refused our certificate \(RFC 6187\)"):
        await send(params(server, pki.rsa, chain=chain_of(pki.rsa)), tmp_path)
    assert list((server.root / "in").iterdir()) == []


async def test_x509_login_never_falls_back_to_the_bare_key(
    make_server: StartServer, pki: Pki, tmp_path: Path
) -> None:
    """The server knows only our bare key: with x509_login we do not offer it."""
    bare = key_of_private(pki.rsa.key).export_public_key("openssh").decode()
    server = await make_server(bare, [pki.ca.root])
    with pytest.raises(TransientSendError, match="refused our certificate"):
        await send(params(server, pki.rsa, chain=chain_of(pki.rsa)), tmp_path)
    await send(params(server, pki.rsa, chain=None), tmp_path)  # today's plain login still works
    assert [p.name for p in (server.root / "in").iterdir()] == ["XGB0002A_1.xml"]


async def test_a_server_trusting_another_ca_refuses_our_chain(
    make_server: StartServer, pki: Pki, tmp_path: Path
) -> None:
    server = await make_server(authorized_line(pki.rsa.cert), [pki.rogue.root])
    with pytest.raises(TransientSendError, match="refused our certificate"):
        await send(params(server, pki.rsa, chain=chain_of(pki.rsa)), tmp_path)


async def test_a_chain_that_is_not_for_our_key_is_a_clear_error(
    make_server: StartServer, pki: Pki, tmp_path: Path
) -> None:
    server = await make_server(authorized_line(pki.rsa.cert), [pki.ca.root])
    with pytest.raises(TransientSendError, match="cannot present the certificate chain"):
        await send(params(server, pki.ec, chain=chain_of(pki.rsa)), tmp_path)


# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["rsa", "ec"])
async def test_x509_login_delivers_the_file(
    make_server: StartServer, pki: Pki, tmp_path: Path, which: str
) -> None:
    issued = pki.rsa if which == "rsa" else pki.ec
    server = await make_server(authorized_line(issued.cert), [pki.ca.root])
    await send(params(server, issued, chain=chain_of(issued)), tmp_path)
    assert (server.root / "in" / "XGB0002A_1.xml").read_bytes() == b"<x509/>"
