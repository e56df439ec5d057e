"""Wires PeSIT into the daemon: per connection, a TLS listener, an outbox worker, a puller.

Everything a PeSIT adapter needs is built here from the gateway context and handed over as
small objects (`protocols.pesit.endpoint.ports`): TLS contexts from the connection's own
certificate and trust anchors, the partner certificates as pins, the settings of
`gateway/settings/pesit.py` as the core's frozen settings, and store-backed answers to
"may this code pass?" and "what waits for AIFE?" (`pesit_answers`). The services that run
are in `pesit_services`. Durable transfer state lives under `<data_dir>/pesit/<connection>/`:
`received/` (spooled pushes), `served/` (the sync grid of pulls), `push/` and `pulled/`.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from gateway.config import ConnectionConfig
from gateway.config_load import read_secret
from gateway.errors import ConfigError
from gateway.logging import REDACTOR, get_logger
from gateway.model import Protocol
from gateway.offload import run_blocking
from gateway.pesit_answers import MetricsObserver, RegistryAdmission, StoreOutgoing
from gateway.pesit_services import OutboxService, PesitSender, PullService
from gateway.services import GatewayContext, Service
from gateway.settings import settings_of
from gateway.settings.pesit import PesitSettings
from protocols.pesit.diagnostics import PesitLocalError
from protocols.pesit.endpoint import (
    Journal,
    Peer,
    PesitListener,
    ServerProfile,
    Spool,
    client_context,
    server_context,
)
from protocols.pesit.framing import PreConnection
from protocols.pesit.settings import PesitSettings as CoreSettings
from protocols.pesit.settings import Timers

log = get_logger(__name__)
__all__ = ["admin_routes", "factory"]


def factory(context: GatewayContext) -> Sequence[Service]:
    """Listener, outbox worker and (if asked) puller of every PeSIT connection."""
    services: list[Service] = []
    for index, view in enumerate(context.registry):
        conn = view.config
        if conn.protocol is not Protocol.PESIT:
            continue
        try:
            services.extend(_services(context, conn, f"connections[{index}]"))
        except (ConfigError, PesitLocalError, OSError, ValueError) as exc:
            log.error("pesit.connection_not_started", connection=conn.name, reason=str(exc))
    return services


def admin_routes(app: web.Application) -> None:
    """PeSIT adds no admin route: its state is in the messages' events and the metrics."""
    del app


# -- building blocks -----------------------------------------------------------------------


def _raw_secret(inline: SecretStr | None, file: Path | None, field: str) -> bytes | None:
    errors: list[ConfigError] = []
    value = read_secret(inline, file, field=field, errors=errors)
    if errors:
        raise errors[0]
    return value


def _secret(inline: SecretStr | None, file: Path | None, field: str) -> str:
    """A PeSIT password as text, known to the log redactor from now on."""
    text = (_raw_secret(inline, file, field) or b"").decode("ascii", "replace")
    REDACTOR.register([text])
    return text


def _folder(data_dir: Path, name: str) -> Path:
    """A folder name for a connection (names may hold any printable character)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60]
    return data_dir / "pesit" / f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class _Parts:
    """Builds one connection's adapters from the context (secrets read once, here)."""

    def __init__(self, context: GatewayContext, conn: ConnectionConfig, where: str) -> None:
        self.context, self.conn, self.where = context, conn, where
        self.settings = settings_of(conn, PesitSettings)
        creds = context.credentials[conn.name]
        self.anchors = "".join(c.public_bytes(Encoding.PEM).decode() for c in creds.trust_anchors)
        self.pins = frozenset(c.public_bytes(Encoding.DER) for c in creds.partner)
        if not self.pins:
            log.warning("pesit.no_partner_certificate", connection=conn.name)  # nobody gets in
        self.root = _folder(context.config.gateway.data_dir, conn.name)
        self.observer = MetricsObserver(conn.name)
        s = self.settings
        self.password = _secret(s.password, s.password_file, f"{where}.settings.password")
        self.expected = self.password
        if s.expected_password is not None or s.expected_password_file is not None:
            field = f"{where}.settings.expected_password"
            self.expected = _secret(s.expected_password, s.expected_password_file, field)

    def core(self, *, requester: str, server: str, password: str) -> CoreSettings:
        s, pre = self.settings, self.settings.preconnection
        preconnection = None
        if pre is not None:
            field = f"{self.where}.settings.preconnection.password"
            preconnection = PreConnection(
                pre.caller_id, _secret(pre.password, pre.password_file, field)
            )
        t = s.timers
        return CoreSettings(
            requester_id=requester, server_id=server, password=password,
            preconnection=preconnection, prefixed=s.prefixed, connection_id=s.connection_id,
            sync_interval_kb=s.sync_interval_kb, sync_window=s.sync_window,
            max_entity_size=s.entity_size, article_size=s.article_size,
            timers=Timers(tp=t.tp, td=t.td, tc=t.tc, tr=t.tr),
        )  # fmt: skip

    def tls(self, role: str) -> ssl.SSLContext:
        certs = self.conn.certificates
        pair = certs.client if role == "client" else certs.server or certs.client
        if pair is None:
            raise ConfigError(f"{self.where}.certificates.client", "a PeSIT connection needs it")
        build = client_context if role == "client" else server_context
        return build(
            certificate=pair.certificate, key=pair.key,
            password=_raw_secret(pair.key_passphrase, pair.key_passphrase_file,
                                 f"{self.where}.certificates.{role}.key_passphrase"),
            anchors=self.anchors, minimum=self.settings.tls_min_version,
        )  # fmt: skip

    def peer(self) -> Peer:
        conn, s = self.conn, self.settings
        return Peer(
            connection=conn.name, host=conn.network.aife.host, port=conn.network.aife.port,
            ssl_context=self.tls("client"), pins=self.pins,
            settings=self.core(requester=s.our_id(conn), server=s.aife_id(conn),
                               password=self.password),
            connect_timeout=s.connect_timeout,
        )  # fmt: skip

    def listener(self) -> PesitListener:
        conn, s, context = self.conn, self.settings, self.context
        profile = ServerProfile(
            connection=conn.name,
            settings=self.core(requester=s.aife_id(conn), server=s.our_id(conn),
                               password=self.expected),
            names=s.codes_by_name(), max_size=conn.max_size, spool_dir=self.root / "received",
            served_dir=self.root / "served",
        )  # fmt: skip
        host, port = s.listen_address(conn)
        return PesitListener(
            profile, host=host, port=port, ssl_context=self.tls("server"), pins=self.pins,
            inbox=context.inbox_port, admission=RegistryAdmission(context, conn.name),
            outgoing=StoreOutgoing(context, conn.name), max_sessions=s.max_sessions,
            offload=run_blocking, observer=self.observer,
        )  # fmt: skip


def _services(context: GatewayContext, conn: ConnectionConfig, where: str) -> list[Service]:
    parts = _Parts(context, conn, where)
    settings, peer = parts.settings, parts.peer()
    services: list[Service] = []
    if settings.listen:
        services.append(parts.listener())
    sender = PesitSender(
        context, conn, peer=peer, settings=settings, journal=Journal(parts.root / "push"),
        observer=parts.observer,
    )  # fmt: skip
    services.append(OutboxService(context, conn, sender))
    if settings.pull_interval is not None:
        names = {code: settings.virtual_name(code) for code in settings.pulled_codes(conn)}
        services.append(
            PullService(
                context, conn, peer=peer, names=names, spool=Spool(parts.root / "pulled"),
                observer=parts.observer, interval=settings.pull_interval,
            )
        )  # fmt: skip
    return services
