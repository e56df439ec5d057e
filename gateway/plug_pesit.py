"""Wires PeSIT into the daemon: per connection, a TLS listener, an outbox worker, a puller.

Everything a PeSIT adapter needs is built here from the gateway context and handed over as
small objects (`protocols.pesit.endpoint.ports`): TLS contexts from the connection's own
certificate and trust anchors, the partner certificates as pins, the settings of
`gateway/settings/pesit.py` as the core's frozen settings, and store-backed answers to
"may this code pass?" and "what waits for AIFE?". Durable transfer state lives under
`<data_dir>/pesit/<connection>/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import SecretStr

from gateway import metrics
from gateway.config import ConnectionConfig
from gateway.config_load import read_secret
from gateway.errors import ConfigError, ConnectionStateError, RaccordError
from gateway.logging import REDACTOR, get_logger
from gateway.model import Direction, MessageState, Protocol
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.services import GatewayContext, Service
from gateway.settings import settings_of
from gateway.settings.pesit import PesitSettings
from gateway.store import IllegalTransition, Message, RetryPolicy
from protocols.errors import TransientSendError
from protocols.pesit.diagnostics import DiagnosticCode, PesitLocalError
from protocols.pesit.endpoint import (
    Journal,
    OutgoingFile,
    Peer,
    PesitListener,
    ServerProfile,
    Spool,
    client_context,
    pull,
    server_context,
)
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.ports import bare_name
from protocols.pesit.endpoint.serving import pesit_date
from protocols.pesit.events import FileInfo
from protocols.pesit.framing import PreConnection
from protocols.pesit.settings import PesitSettings as CoreSettings
from protocols.pesit.settings import Timers
from protocols.ports import RefusalKind, TransferRefused

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


# -- what the adapters ask the gateway -------------------------------------------------------


class MetricsObserver:
    """The adapters' observations as `raccord_*` metrics (bounded labels only)."""

    def __init__(self, connection: str) -> None:
        self._connection = connection

    def session(self, role: str, delta: int) -> None:
        metrics.SESSIONS.labels("pesit", role).inc(delta)

    def auth_failure(self, reason: str) -> None:
        metrics.AUTH_FAILURES.labels("pesit", reason).inc()

    def diagnostic(self, direction: str, code: DiagnosticCode) -> None:
        label = str(code) if code.known is not None else metrics.UNKNOWN
        metrics.PESIT_DIAGNOSTICS.labels(self._connection, direction, label).inc()

    def sync_point(self, direction: str) -> None:
        metrics.SYNC_POINTS.labels(self._connection, direction).inc()

    def refused(self, kind: RefusalKind) -> None:
        metrics.REFUSED.labels("pesit", "reception", kind.value).inc()


class RegistryAdmission:
    """Before a byte is spooled: the connection carries traffic and this reception code."""

    def __init__(self, context: GatewayContext, connection: str) -> None:
        self._context = context
        self._connection = connection

    def admit(self, interface_code: str) -> TransferRefused | None:
        context = self._context
        try:
            view = context.registry.check_traffic(self._connection, now=context.clock())
        except ConnectionStateError as exc:
            return TransferRefused(RefusalKind.CONNECTION_CLOSED, exc.reason)
        if interface_code not in context.catalogue:
            return TransferRefused(RefusalKind.UNKNOWN_CODE, f"{interface_code} is not known")
        if interface_code not in view.config.subscriptions.reception:
            reason = f"{self._connection} does not receive {interface_code}"
            return TransferRefused(RefusalKind.NOT_SUBSCRIBED, reason)
        return None


class StoreOutgoing:
    """Received flows of one connection not yet delivered: what AIFE may SELECT."""

    def __init__(self, context: GatewayContext, connection: str) -> None:
        self._context = context
        self._connection = connection

    async def waiting(self, interface_code: str) -> list[OutgoingFile]:
        store = self._context.store
        messages = await store.list_messages(
            state=MessageState.ACCEPTED,
            interface_code=interface_code,
            connection=self._connection,
            direction=Direction.RECEPTION,
            limit=20,
        )
        return [
            OutgoingFile(
                message_id=m.id,
                path=store.payload_path(m),
                size=m.size,
                interface_code=m.interface_code,
                created=m.created_at,
                file_name=m.file_name,
            )
            for m in messages
        ]

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None:
        code = metrics.code_label(file.interface_code, self._context.catalogue)
        detail = {"protocol": "pesit", "transfer_id": transfer_id, "by": "select"}
        try:
            await self._context.store.mark_delivered(file.message_id, detail=detail)
        except IllegalTransition as exc:  # delivered meanwhile by another path: keep the first
            log.warning("pesit.already_delivered", message_id=file.message_id, reason=str(exc))
            return
        metrics.DELIVERIES.labels("pesit", code, "delivered").inc()


class PesitSender:
    """The outbox `Sender` of one connection: push to AIFE, restart where it broke."""

    def __init__(
        self, context: GatewayContext, conn: ConnectionConfig, *, peer: Peer,
        settings: PesitSettings, journal: Journal, observer: MetricsObserver,
    ) -> None:  # fmt: skip
        self._context = context
        self._conn = conn
        self._peer = peer
        self._settings = settings
        self._journal = journal
        self._observer = observer

    async def send(self, message: Message, payload: Path) -> SendResult:
        try:
            self._context.registry.check_traffic(self._conn.name, now=self._context.clock())
        except ConnectionStateError as exc:
            raise TransientSendError(exc.reason) from exc

        async def started(transfer_id: int, restart: bool, points: int) -> None:
            detail = {"transfer_id": transfer_id, "restart": restart, "points": points}
            await self._context.store.record_event(message.id, kind="pesit.transfer", detail=detail)

        result = await send_resumable(
            self._peer, payload, key=message.id, size=message.size,
            describe=lambda tid, restart: self._file(message, tid, restart=restart),
            journal=self._journal, started=started, offload=run_blocking, observer=self._observer,
        )  # fmt: skip
        return SendResult(
            peer_message_id=str(result.transfer_id),
            acknowledged=True,
            detail={
                "transfer_id": result.transfer_id,
                "bytes": result.byte_count,
                "resumed_from_point": result.resumed_from.point,
                "resumed_from_byte": result.resumed_from.byte_offset,
            },
        )

    def _file(self, message: Message, transfer_id: int, *, restart: bool) -> FileInfo:
        label = message.file_name if self._settings.send_label else None
        return FileInfo(
            file_name=self._settings.virtual_name(message.interface_code),
            transfer_id=transfer_id,
            restart=restart,
            article_size=self._settings.article_size,
            max_size_kb=-(-message.size // 1024),
            created=pesit_date(message.created_at),
            label=bare_name(label),
        )


# -- services ------------------------------------------------------------------------------


class OutboxService:
    """The connection's outbox worker, woken by the router."""

    def __init__(
        self, context: GatewayContext, conn: ConnectionConfig, sender: PesitSender
    ) -> None:
        retry = conn.retry
        policy = RetryPolicy(
            max_attempts=retry.max_attempts, base_delay=retry.base_delay, max_delay=retry.max_delay
        )
        self.sender = sender
        self.worker = OutboxWorker(context.store, sender, connection=conn.name, policy=policy)
        self.name = f"pesit-outbox-{conn.name}"
        self._context = context
        self._unregister: Any = None

    @property
    def ready(self) -> bool:
        return self._unregister is not None

    async def start(self) -> None:
        self._unregister = self._context.wakeups.register(
            self.worker.connection, self.worker.notify
        )
        self.worker.start()

    async def stop(self, *, timeout: float) -> None:
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        await self.worker.stop(grace=timeout)


class PullService:
    """Polls AIFE's server for return flows every `pull_interval` seconds."""

    def __init__(
        self, context: GatewayContext, conn: ConnectionConfig, *, peer: Peer,
        names: dict[str, str], spool: Spool, observer: MetricsObserver, interval: float,
    ) -> None:  # fmt: skip
        self.name = f"pesit-pull-{conn.name}"
        self._context, self._conn, self._peer = context, conn, peer
        self._names, self._spool, self._observer = names, spool, observer
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, *, timeout: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout)

    async def poll(self) -> int:
        """Files taken this time; nothing is tried while the connection may not carry traffic."""
        try:
            self._context.registry.check_traffic(self._conn.name, now=self._context.clock())
        except ConnectionStateError:
            return 0
        accepted = await pull(
            self._peer, names=self._names, spool=self._spool, inbox=self._context.inbox_port,
            max_size=self._conn.max_size, offload=run_blocking, observer=self._observer,
        )  # fmt: skip
        return len(accepted)

    async def _loop(self) -> None:
        while True:
            try:
                taken = await self.poll()
            except (RaccordError, OSError) as exc:
                log.warning("pesit.pull_failed", service=self.name, reason=str(exc))
            else:
                if taken:
                    log.info("pesit.pull_done", service=self.name, files=taken)
            await asyncio.sleep(self._interval)
