"""The simulator's PeSIT side of one connection: AIFE's server and AIFE's requester, mirrored.

Reuses the project's PeSIT code (`protocols.pesit.endpoint`): AIFE's server listens over mutual
TLS at `network.aife` with AIFE's sandbox certificate, and admits only the connection's client
certificate (pinned) calling as the gateway's PeSIT id (PI 3, default the Part ID) with the
gateway's password; PI 12 is the interface code, refused unless the connection subscribes to it
in emission. AIFE's requester pushes return flows to the gateway's server (its listen address),
calling as AIFE's id (default `CPRO`), pinning the gateway's server certificate, with restart
from the last sync point when a transfer breaks (the same resumable push the gateway uses).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.config import Config, ConnectionConfig
from gateway.config_load import read_secret
from gateway.offload import run_blocking
from gateway.settings import settings_of
from gateway.settings.pesit import PesitSettings
from gateway.simulator.desk import Desk
from protocols.pesit.endpoint import (
    Journal,
    NullObserver,
    OutgoingFile,
    Peer,
    PesitListener,
    ServerProfile,
    client_context,
    server_context,
)
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.serving import pesit_date
from protocols.pesit.events import FileInfo
from protocols.pesit.settings import PesitSettings as CoreSettings
from protocols.pesit.settings import Timers
from protocols.ports import RefusalKind, TransferRefused

__all__ = ["PesitSide", "gateway_peer", "push_flow"]


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].public_bytes(Encoding.DER)


def _password(settings: PesitSettings) -> str:
    raw = read_secret(settings.password, settings.password_file, field="password", errors=[])
    return (raw or b"").decode("ascii", "replace")


def _core(settings: PesitSettings, *, requester: str, server: str, password: str) -> CoreSettings:
    t = settings.timers
    return CoreSettings(
        requester_id=requester, server_id=server, password=password, preconnection=None,
        prefixed=settings.prefixed, connection_id=settings.connection_id,
        sync_interval_kb=settings.sync_interval_kb, sync_window=settings.sync_window,
        max_entity_size=settings.entity_size, article_size=settings.article_size,
        timers=Timers(tp=t.tp, td=t.td, tc=t.tc, tr=t.tr),
    )  # fmt: skip


class _Admission:
    """AIFE takes only the codes the connection subscribes to in emission."""

    def __init__(self, conn: ConnectionConfig) -> None:
        self._conn = conn

    def admit(self, interface_code: str) -> TransferRefused | None:
        if interface_code in self._conn.subscriptions.emission:
            return None
        reason = f"{interface_code} is not subscribed by {self._conn.name}"
        return TransferRefused(RefusalKind.NOT_SUBSCRIBED, reason)


class _AnswerWatch(NullObserver):
    """Tells the desk when a session ends: the gateway then has every answer of its push."""

    def __init__(self, desk: Desk, connection: str) -> None:
        self._desk, self._connection = desk, connection

    def session(self, role: str, delta: int) -> None:
        if delta < 0:
            self._desk.answered(self._connection)


class _NothingWaiting:
    """AIFE pushes its flows; nothing waits on its server for the gateway to fetch."""

    async def waiting(self, interface_code: str) -> list[OutgoingFile]:
        del interface_code
        return []

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None:
        del file, transfer_id


def gateway_peer(config: Config, conn: ConnectionConfig, *, certificate: Path, key: Path) -> Peer:
    """AIFE's requester towards the gateway's PeSIT server of `conn` (blocking: reads keys),
    presenting `certificate` (AIFE's of that connection; another is what a hostile peer tries)."""
    s = settings_of(conn, PesitSettings)
    if conn.certificates.client is None:
        raise ValueError(f"{conn.name}: needs certificates.client")
    anchors = "".join(p.read_text() for p in config.gateway.trust_anchors)
    gateway_server = conn.certificates.server or conn.certificates.client
    host, port = s.listen_address(conn)
    return Peer(
        connection=conn.name, host=host, port=port,
        ssl_context=client_context(certificate=certificate, key=key, anchors=anchors),
        pins=frozenset({_der(gateway_server.certificate)}),
        settings=_core(s, requester=s.aife_id(conn), server=s.our_id(conn), password=_password(s)),
        connect_timeout=10.0,
    )  # fmt: skip


async def push_flow(
    peer: Peer,
    settings: PesitSettings,
    journal: Journal,
    *,
    flow_id: str,
    file_name: str,
    body: bytes,
) -> str:
    """Push one flow; PI 12 is its code, PI 37 its file name; a retry of `flow_id` restarts."""
    code = file_name.partition("_")[0]

    def describe(transfer_id: int, restart: bool) -> FileInfo:
        return FileInfo(
            file_name=settings.virtual_name(code), transfer_id=transfer_id,
            restart=restart, article_size=settings.article_size,
            max_size_kb=-(-len(body) // 1024), created=pesit_date(dt.datetime.now(dt.UTC)),
            label=file_name,
        )  # fmt: skip

    async def started(transfer_id: int, restart: bool, points: int) -> None:
        del transfer_id, restart, points

    with tempfile.TemporaryDirectory(prefix="raccord-sim-") as folder:
        payload = Path(folder) / file_name
        await run_blocking(payload.write_bytes, body)
        result = await send_resumable(
            peer, payload, key=flow_id, size=len(body), describe=describe,
            journal=journal, started=started, offload=run_blocking,
        )  # fmt: skip
    return str(result.transfer_id)


class PesitSide:
    """AIFE's PeSIT server and requester for one connection (built off the loop: it reads keys)."""

    def __init__(
        self, config: Config, conn: ConnectionConfig, desk: Desk, *, state_dir: Path
    ) -> None:
        self.connection = conn.name
        s = settings_of(conn, PesitSettings)
        if not conn.certificates.partner or conn.certificates.client is None:
            raise ValueError(f"{conn.name}: needs certificates.partner and certificates.client")
        aife_cert = conn.certificates.partner[0]
        aife_key = aife_cert.with_suffix(".key")
        anchors = "".join(p.read_text() for p in config.gateway.trust_anchors)
        password, root = _password(s), state_dir / "pesit" / conn.name
        profile = ServerProfile(
            connection=conn.name, names=s.codes_by_name(), max_size=conn.max_size,
            settings=_core(s, requester=s.our_id(conn), server=s.aife_id(conn), password=password),
            spool_dir=root / "received",
        )  # fmt: skip
        aife = conn.network.aife
        self._listener = PesitListener(
            profile, host=aife.host, port=aife.port,
            ssl_context=server_context(certificate=aife_cert, key=aife_key, anchors=anchors),
            pins=frozenset({_der(conn.certificates.client.certificate)}),
            inbox=desk, admission=_Admission(conn), outgoing=_NothingWaiting(),
            offload=run_blocking, observer=_AnswerWatch(desk, conn.name),
        )  # fmt: skip
        self._peer = gateway_peer(config, conn, certificate=aife_cert, key=aife_key)
        self._settings, self._journal = s, Journal(root / "push")

    @property
    def ready(self) -> bool:
        """Listening (a listener that could not bind says so here rather than raising)."""
        return self._listener.ready

    async def start(self) -> None:
        await self._listener.start()

    async def stop(self, *, timeout: float) -> None:
        await self._listener.stop(timeout=timeout)

    async def deliver(self, flow_id: str, file_name: str, body: bytes) -> str:
        """Push one flow to the gateway's server; PI 12 is its code, PI 37 its file name."""
        return await push_flow(self._peer, self._settings, self._journal, flow_id=flow_id,
                               file_name=file_name, body=body)  # fmt: skip
