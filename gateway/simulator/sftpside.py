"""The simulator's SFTP side of one connection: AIFE's server and AIFE's client, mirrored.

Reuses the project's SFTP code (`protocols.sftp`): AIFE's server listens at `network.aife`
with the jail layout of our listener (`/out/<CODE>/<file>`) and one account, the gateway's login
(`settings.username`, default the Part ID), authorised by the key of the connection's client
certificate only; its SSH host key is AIFE's sandbox key (`aife-*.key`), so the gateway pins it
with the `known_hosts` file `prepare_known_hosts` writes beside the certificate. AIFE's client
pushes to the gateway's listener (`network.partner`) as the account the gateway gives AIFE
(`settings.account`, default the connection name) with that same AIFE key, into
`/out/<CODE>/`; it pins the gateway's host key read from the gateway's own key file (a sandbox
shortcut: a real PA hands its host key to AIFE).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import asyncssh

from gateway.config import Config, ConnectionConfig
from gateway.offload import run_blocking
from gateway.settings.sftp import SftpSettings, default_host_key, sftp_settings
from gateway.simulator.desk import Desk
from protocols.errors import TransientSendError
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import certificate_key, load_client_key, wire
from protocols.sftp.paths import Jail
from protocols.sftp.ports import Account, EmptyMailbox, ListenerParams, NullObserver
from protocols.sftp.sender import SftpSender
from protocols.sftp.server import SftpListener

__all__ = [
    "SftpSide",
    "aife_key_path",
    "gateway_client_params",
    "known_hosts_path",
    "prepare_known_hosts",
]

_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")


def aife_key_path(conn: ConnectionConfig) -> Path:
    if not conn.certificates.partner:
        raise ValueError(f"{conn.name}: needs certificates.partner (AIFE's certificate)")
    return conn.certificates.partner[0].with_suffix(".key")


def known_hosts_path(conn: ConnectionConfig) -> Path:
    """`certs/sandbox/aife-…-sftp.known_hosts`: the pin the gateway's settings name."""
    return conn.certificates.partner[0].with_suffix(".known_hosts")


def prepare_known_hosts(conn: ConnectionConfig) -> Path:
    """Blocking: write the known_hosts line of AIFE's host key (its sandbox key)."""
    key = load_client_key(aife_key_path(conn))
    public = key.export_public_key("openssh").decode().split()
    path = known_hosts_path(conn)
    host = conn.network.aife.host
    path.write_text(f"[{host}]:{conn.network.aife.port} {public[0]} {public[1]}\n")
    return path


def _listener_params(conn: ConnectionConfig, settings: SftpSettings) -> ListenerParams:
    if conn.certificates.client is None:
        raise ValueError(f"{conn.name}: needs certificates.client (the gateway's login key)")
    gateway_key = certificate_key(conn.certificates.client.certificate)
    account = Account(
        name=settings.username or conn.network.partner.part_id,
        keys=frozenset({wire(gateway_key)}),
        jail=Jail(deposit_codes=frozenset(conn.subscriptions.emission), collect_codes=frozenset()),
        direction="reception",
        connection=conn.name,
    )
    aife = conn.network.aife
    return ListenerParams(host=aife.host, port=aife.port, host_key=aife_key_path(conn),
                          accounts=(account,), name=f"simulator-sftp-{conn.name}")  # fmt: skip


def _gateway_host_key(
    conn: ConnectionConfig, settings: SftpSettings, data_dir: Path
) -> asyncssh.SSHKey:
    port = settings.listen_port or conn.network.partner.port
    path = settings.host_key or default_host_key(data_dir, port)
    try:
        return asyncssh.read_private_key(path).convert_to_public()
    except (OSError, asyncssh.KeyImportError) as exc:
        raise TransientSendError(f"the gateway's host key {path} is not there yet") from exc


def gateway_client_params(
    conn: ConnectionConfig, *, key: asyncssh.SSHKey, data_dir: Path
) -> ClientParams:
    """AIFE's client towards the gateway's listener of `conn`, logging in with `key`
    (AIFE's key of that connection; another one is what a hostile peer would try)."""
    settings = sftp_settings(conn)
    partner = conn.network.partner
    return ClientParams(
        connection=conn.name, host=settings.listen_host or partner.host,
        port=settings.listen_port or partner.port,
        username=settings.account or conn.name, client_key=key,
        pins=(_gateway_host_key(conn, settings, data_dir),), ciphers=_CIPHERS,
        connect_timeout=10.0,
        remote_dirs={code: f"/out/{code}" for code in conn.subscriptions.reception},
    )  # fmt: skip


class SftpSide:
    """AIFE's SFTP server and client for one connection; start/stop like a daemon service."""

    def __init__(self, config: Config, conn: ConnectionConfig, desk: Desk) -> None:
        self.connection = conn.name
        self._conn, self._settings = conn, sftp_settings(conn)
        self._data_dir = config.gateway.data_dir
        self._listener = SftpListener(_listener_params(conn, self._settings), inbox=desk,
                                      mailbox=EmptyMailbox(), observer=NullObserver())  # fmt: skip
        self._key = load_client_key(aife_key_path(conn))
        self._sender: SftpSender | None = None

    @property
    def ready(self) -> bool:
        """Listening (a listener that could not bind says so here rather than raising)."""
        return self._listener.ready

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self, *, timeout: float) -> None:
        if self._sender is not None:
            await self._sender.close()
        await self._listener.stop(timeout=timeout)

    def _client(self) -> SftpSender:
        if self._sender is None:
            params = gateway_client_params(self._conn, key=self._key, data_dir=self._data_dir)
            self._sender = SftpSender(params)
        return self._sender

    async def deliver(self, flow_id: str, file_name: str, body: bytes) -> str:
        """Upload one flow to the gateway's listener (temp name, then rename)."""
        code = file_name.partition("_")[0]
        with tempfile.TemporaryDirectory(prefix="raccord-sim-") as folder:
            payload = Path(folder) / file_name
            await run_blocking(payload.write_bytes, body)
            delivered = await self._client().send_file(
                payload, file_name=file_name, interface_code=code
            )
        del flow_id
        return delivered.remote_path
