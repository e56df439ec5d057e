"""A hostile Chorus Pro: one flow pushed to the gateway wearing another connection's certificate.

AIFE's certificates of the sandbox all come from the same CA, so a chain check alone would let
any of them in: only the gateway's per-connection checks (AS2: the signer must be *that*
connection's partner; SFTP: the login key must be that connection's AIFE key; PeSIT: the TLS
client certificate is pinned per connection) stand between one connection's AIFE key and
another's traffic. `impersonate` sends one flow the way the simulator's side of `target` would,
but with the AIFE certificate and key of `wearing`, and reports what the gateway answered.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway.config import Config, ConnectionConfig
from gateway.model import Protocol
from gateway.offload import run_blocking
from gateway.settings import settings_of
from gateway.settings.as2 import As2Settings
from gateway.settings.pesit import PesitSettings
from gateway.simulator.as2side import (
    anchors_of,
    load_aife_identity,
    outbound_to_gateway,
    post_flow,
)
from gateway.simulator.pesitside import gateway_peer, push_flow
from gateway.simulator.sftpside import gateway_client_params
from protocols.errors import RaccordError
from protocols.pesit.endpoint import Journal
from protocols.sftp.keys import load_client_key
from protocols.sftp.sender import SftpSender

__all__ = ["Impersonation", "impersonate"]


@dataclass(frozen=True, slots=True)
class Impersonation:
    """What happened to one flow sent on `target` with `wearing`'s AIFE certificate."""

    target: str
    wearing: str
    protocol: str
    file_name: str
    refused: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Flow:
    flow_id: str
    file_name: str
    body: bytes


def _aife_certificate(conn: ConnectionConfig) -> Path:
    if not conn.certificates.partner:
        raise ValueError(f"{conn.name}: has no AIFE certificate to wear")
    return conn.certificates.partner[0]


async def _as2(config: Config, target: ConnectionConfig, wearing: Path, flow: _Flow) -> str:
    identity = await run_blocking(load_aife_identity, target, wearing=wearing)
    out = outbound_to_gateway(
        target, settings_of(target, As2Settings), identity, anchors_of(config, target)
    )
    async with aiohttp.ClientSession() as session:
        return await post_flow(
            session, out, flow_id=flow.flow_id, file_name=flow.file_name, body=flow.body
        )


async def _sftp(config: Config, target: ConnectionConfig, wearing: Path, flow: _Flow) -> str:
    key = await run_blocking(load_client_key, wearing.with_suffix(".key"))
    params = gateway_client_params(target, key=key, data_dir=config.gateway.data_dir)
    sender = SftpSender(params)
    try:
        with tempfile.TemporaryDirectory(prefix="raccord-hostile-") as folder:
            payload = Path(folder) / flow.file_name
            await run_blocking(payload.write_bytes, flow.body)
            code = flow.file_name.partition("_")[0]
            done = await sender.send_file(payload, file_name=flow.file_name, interface_code=code)
    finally:
        await sender.close()
    return done.remote_path


async def _pesit(config: Config, target: ConnectionConfig, wearing: Path, flow: _Flow) -> str:
    peer = await run_blocking(
        gateway_peer, config, target, certificate=wearing, key=wearing.with_suffix(".key")
    )
    with tempfile.TemporaryDirectory(prefix="raccord-hostile-") as folder:
        return await push_flow(
            peer, settings_of(target, PesitSettings), Journal(Path(folder)),
            flow_id=flow.flow_id, file_name=flow.file_name, body=flow.body,
        )  # fmt: skip


_SENDERS = {Protocol.AS2: _as2, Protocol.SFTP: _sftp, Protocol.PESIT: _pesit}


async def impersonate(
    config: Config, *, target: str, wearing: str, flow_id: str, file_name: str, body: bytes
) -> Impersonation:
    """Send one flow on `target` presenting `wearing`'s AIFE certificate; never raises for
    the gateway's answer (a refusal is the expected outcome, `refused` says which it was)."""
    conn, other = config.connection(target), config.connection(wearing)
    if conn is None or other is None:
        raise ValueError(f"no connection {target if conn is None else wearing!r}")
    if conn.name == other.name:
        raise ValueError("impersonating a connection needs another connection's certificate")
    send = _SENDERS[conn.protocol]
    flow = _Flow(flow_id, file_name, body)
    try:
        answer = await send(config, conn, _aife_certificate(other), flow)
    except (RaccordError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return Impersonation(target, wearing, conn.protocol.value, file_name, True, reason)
    return Impersonation(target, wearing, conn.protocol.value, file_name, False, answer)
