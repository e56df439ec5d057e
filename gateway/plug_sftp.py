"""Wires the SFTP work into the daemon: listeners for partners and AIFE, a client per connection.

Listeners (planned in `gateway.settings.sftp`): each SFTP sheet gives AIFE an account on the
sheet's `network.partner` address, and the proposed top-level `sftp:` block adds partner and
back-office accounts. Clients: each SFTP sheet gets an outbox worker whose sender uploads to
AIFE with that connection's own key (never another's; with `settings.x509_login`, presented
with its certificate per RFC 6187), plus a poller when the sheet polls.
The store and the metrics stay here: the protocol code sees a `Mailbox` and an `SftpObserver`.
The daemon gets one `SftpServices`, which plans all this off the loop when it starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from aiohttp import web

from gateway import metrics
from gateway.config import Config, ConnectionConfig
from gateway.connections import ConnectionRegistry
from gateway.credentials import CredentialSet, LoadedCredentials
from gateway.errors import ConfigError, ConnectionStateError, StoreError
from gateway.logging import get_logger
from gateway.model import Direction, MessageState, Protocol
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.router import outbound_name
from gateway.services import GatewayContext, Service
from gateway.settings.sftp import ListenerPlan, SftpSettings, plan_listeners, sftp_settings
from gateway.start_retry import StartRetry
from gateway.store import Message, RetryPolicy, Store
from protocols.errors import TransientSendError
from protocols.ports import FlowDirection
from protocols.sftp.client import ClientParams
from protocols.sftp.keys import (
    KeyFileError,
    key_of_private,
    load_client_key,
    load_known_hosts,
    parse_pins,
    wire,
)
from protocols.sftp.poller import Poller, PollParams
from protocols.sftp.ports import AuthFailure, Offered
from protocols.sftp.sender import SftpSender
from protocols.sftp.server import SftpListener
from protocols.sftp.x509auth import der, x509_identity

log = get_logger(__name__)
OFFERED_LIMIT = 1000  # files listed per collect directory


class MetricsObserver:
    """`SftpObserver` over the gateway's metrics."""

    def session_opened(self, account: str) -> None:
        del account
        metrics.SESSIONS.labels("sftp", "server").inc()

    def session_closed(self, account: str) -> None:
        del account
        metrics.SESSIONS.labels("sftp", "server").dec()

    def auth_failed(self, reason: AuthFailure) -> None:
        metrics.AUTH_FAILURES.labels("sftp", reason).inc()

    def refused(self, direction: FlowDirection, kind: str) -> None:
        metrics.REFUSED.labels("sftp", direction, kind).inc()

    def accepted(self, direction: FlowDirection, seconds: float) -> None:
        metrics.PROCESSING_SECONDS.labels("sftp", direction).observe(seconds)


class StoreMailbox:
    """`Mailbox` over the store: reception flows of the connections an account collects from."""

    def __init__(
        self, store: Store, *, collect: Mapping[str, tuple[str, ...]], known: frozenset[str]
    ) -> None:
        self._store = store
        self._collect = collect
        self._known = known

    async def offered(self, account: str, code: str, *, archived: bool) -> Sequence[Offered]:
        state = MessageState.DELIVERED if archived else MessageState.ACCEPTED
        found: list[Offered] = []
        for connection in self._collect.get(account, ()):
            messages = await self._store.list_messages(
                state=state,
                direction=Direction.RECEPTION,
                connection=connection,
                interface_code=code,
                limit=OFFERED_LIMIT,
            )
            found.extend(self._offer(m) for m in messages)
        return found

    def _offer(self, message: Message) -> Offered:
        name = outbound_name(message.interface_code, message.id, message.file_name, "xml")
        return Offered(
            name=name,
            size=message.size,
            mtime=message.created_at.timestamp(),
            path=self._store.payload_path(message),
            message_id=message.id,
        )

    async def fetched(self, account: str, offered: Offered) -> None:
        message = await self._store.get(offered.message_id)
        code = metrics.code_label(message.interface_code, self._known)
        try:
            await self._store.mark_delivered(
                offered.message_id, detail={"via": "sftp", "account": account}
            )
        except StoreError as exc:  # fetched twice at once: the first one recorded it
            log.info("sftp.already_fetched", message_id=offered.message_id, reason=str(exc))
            return
        metrics.DELIVERIES.labels("sftp", code, "delivered").inc()


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """One connection's client and, when it polls, its poller."""

    client: ClientParams
    poll: PollParams | None
    retry: RetryPolicy


def _client_key(
    conn: ConnectionConfig, settings: SftpSettings, creds: CredentialSet
) -> tuple[asyncssh.SSHKey, tuple[bytes, ...]]:
    """The client's key, and the certificate chain (DER) it presents when `x509_login`."""
    own = creds.get(conn.name)
    material = own.own.get("client") if own is not None else None
    chain = tuple(der(cert) for cert in material.chain) if material is not None else ()
    if settings.x509_login and not chain:
        raise ConfigError("certificates.client", "settings.x509_login presents this certificate")
    if settings.client_key is not None:
        phrase = None
        if settings.client_key_passphrase_file is not None:
            phrase = settings.client_key_passphrase_file.read_text().rstrip("\r\n")
        key = load_client_key(settings.client_key, passphrase=phrase)
    elif material is not None:
        key = key_of_private(material.key)
    else:
        raise ConfigError("certificates.client", "the SFTP client logs in with this key")
    if not settings.x509_login:
        return key, ()
    try:
        x509_identity(key, chain)
    except ValueError as exc:
        field = "client_key" if settings.client_key is not None else "x509_login"
        reason = f"x509_login presents certificates.client with this key: {exc}"
        raise ConfigError(f"settings.{field}", reason) from None
    return key, chain


def _pins(settings: SftpSettings) -> tuple[asyncssh.SSHKey, ...]:
    if settings.known_hosts is not None:
        return tuple(load_known_hosts(settings.known_hosts))
    return tuple(parse_pins(settings.host_keys, origin=Path("settings.host_keys")))


def client_plan(conn: ConnectionConfig, creds: CredentialSet) -> ClientPlan:
    """The client parameters of one SFTP sheet (ConfigError / KeyFileError when unusable)."""
    settings = sftp_settings(conn)
    key, chain = _client_key(conn, settings, creds)
    client = ClientParams(
        connection=conn.name,
        host=conn.network.aife.host,
        port=conn.network.aife.port,
        username=settings.username or conn.network.partner.part_id,
        client_key=key,
        pins=_pins(settings),
        ciphers=settings.ciphers,
        connect_timeout=settings.connect_timeout,
        remote_dir=settings.remote_dir,
        remote_dirs=dict(settings.remote_dirs),
        temp_suffix=settings.temp_suffix,
        certificate_chain=chain,
    )
    poll = None
    if settings.poll_interval is not None and settings.poll_dirs:
        poll = PollParams(
            directories=dict(settings.poll_dirs),
            interval=settings.poll_interval,
            after=settings.after_poll,
            archive_dir=settings.poll_archive_dir,
        )
    retry = RetryPolicy(
        max_attempts=conn.retry.max_attempts,
        base_delay=conn.retry.base_delay,
        max_delay=max(conn.retry.max_delay, conn.retry.base_delay),
    )
    return ClientPlan(client, poll, retry)


def plan_clients(config: Config, creds: CredentialSet) -> tuple[list[ClientPlan], list[str]]:
    """A client per SFTP sheet; a sheet whose key another sheet also uses gets none."""
    plans: list[ClientPlan] = []
    problems: list[str] = []
    for index, conn in enumerate(config.connections):
        if conn.protocol is not Protocol.SFTP:
            continue
        try:
            plans.append(client_plan(conn, creds))
        except ConfigError as exc:
            problems.append(f"connections[{index}].{exc}")
        except (KeyFileError, OSError) as exc:
            problems.append(f"connections[{index}].settings: {exc}")
    owners: dict[bytes, list[str]] = {}
    for plan in plans:
        owners.setdefault(wire(plan.client.client_key), []).append(plan.client.connection)
    shared = {name for names in owners.values() if len(names) > 1 for name in names}
    if shared:
        problems.append(f"connections {sorted(shared)} share an SSH client key: one per connection")
    return [p for p in plans if p.client.connection not in shared], problems


class SftpOutboxSender:
    """The outbox's `Sender` for one SFTP connection: traffic check, then upload."""

    def __init__(
        self, sender: SftpSender, *, registry: ConnectionRegistry, clock: Callable[[], dt.datetime]
    ) -> None:
        self._sender = sender
        self._registry = registry
        self._clock = clock

    async def send(self, message: Message, payload: Path) -> SendResult:
        connection = message.connection or ""
        try:
            self._registry.check_traffic(connection, now=self._clock())
        except ConnectionStateError as exc:
            raise TransientSendError(exc.reason) from None
        name = message.file_name or outbound_name(message.interface_code, message.id, None, "xml")
        done = await self._sender.send_file(
            payload, file_name=name, interface_code=message.interface_code
        )
        detail = {"remote_path": done.remote_path, "resumed_from": done.resumed_from}
        return SendResult(peer_message_id=done.remote_path, acknowledged=True, detail=detail)


def _nothing() -> None:
    return None


class ClientService:
    """One connection's outbox worker (and poller): a daemon `Service`."""

    def __init__(self, plan: ClientPlan, context: GatewayContext) -> None:
        self._plan = plan
        self._context = context
        self._sender = SftpSender(plan.client)
        adapter = SftpOutboxSender(self._sender, registry=context.registry, clock=context.clock)
        self._worker = OutboxWorker(
            context.store, adapter, connection=plan.client.connection, policy=plan.retry
        )
        self._poller = (
            Poller(plan.client, plan.poll, inbox=context.inbox_port)
            if plan.poll is not None
            else None
        )
        self._unregister: Callable[[], None] = _nothing
        self._started = False

    @property
    def name(self) -> str:
        return f"sftp-client-{self._plan.client.connection}"

    @property
    def ready(self) -> bool:
        return self._started

    async def start(self) -> None:
        self._unregister = self._context.wakeups.register(
            self._plan.client.connection, self._worker.notify
        )
        self._worker.start()
        if self._poller is not None:
            self._poller.start()
        self._started = True

    async def stop(self, *, timeout: float) -> None:
        self._unregister()
        if self._poller is not None:
            await self._poller.stop()
        await self._worker.stop(grace=timeout)
        await self._sender.close()
        self._started = False


@dataclass(frozen=True, slots=True)
class Plans:
    """Everything the configuration asks of SFTP, computed off the event loop."""

    listeners: list[ListenerPlan]
    clients: list[ClientPlan]
    problems: list[str]


@dataclass(frozen=True, slots=True)
class _Planned:
    config: Config
    creds: LoadedCredentials
    plans: Plans


_last: _Planned | None = None  # the plans of the last (config, credentials) planned


def plan_all(config: Config, creds: LoadedCredentials) -> Plans:
    """Blocking (key files, certificate keys): the daemon runs it in the offload pool.

    A start or reload plans twice with the very same objects: the configuration's check, then
    the service's start. The second gets the plans of the first, so that key and passphrase
    files are read once, and the service runs with exactly what was checked.
    """
    global _last  # noqa: PLW0603 - one remembered plan per process, replaced by the next
    last = _last
    if last is not None and last.config is config and last.creds is creds:
        return last.plans
    clients, problems = plan_clients(config, creds)
    client_keys = {p.client.connection: wire(p.client.client_key) for p in clients}
    listeners, more = plan_listeners(config, creds, client_keys=client_keys)
    plans = Plans(listeners, clients, problems + more)
    _last = _Planned(config, creds, plans)
    return plans


def config_problems(config: Config, creds: LoadedCredentials) -> list[ConfigError]:
    """The SFTP rules for `check_rules`: key files readable, one key per account or connection."""
    errors = []
    for problem in plan_all(config, creds).problems:
        field, _, reason = problem.partition(": ")
        errors.append(ConfigError(field, reason or problem))
    return errors


class SftpServices:
    """Every SFTP listener and client as one daemon `Service`, planned when it starts.

    Planning reads key files, so it runs in the offload pool, not in the daemon's factory
    call. A listener that cannot start (its port taken) is logged, counted and tried again
    with backoff (`StartRetry`) while the others run; readiness reports false meanwhile.
    """

    def __init__(self, context: GatewayContext) -> None:
        self._context = context
        self._services: list[StartRetry] = []
        self._started = False

    @property
    def name(self) -> str:
        return "sftp"

    @property
    def ready(self) -> bool:
        return self._started and all(s.ready for s in self._services)

    async def start(self) -> None:
        plans = await run_blocking(plan_all, self._context.config, self._context.credentials)
        for problem in plans.problems:
            log.error("sftp.config_problem", detail=problem)
        known = frozenset(spec.code for spec in self._context.catalogue)
        services: list[Service] = [
            SftpListener(
                plan.params,
                inbox=self._context.inbox_port,
                mailbox=StoreMailbox(self._context.store, collect=plan.collect, known=known),
                observer=MetricsObserver(),
            )
            for plan in plans.listeners
        ]
        services.extend(ClientService(plan, self._context) for plan in plans.clients)
        for service in services:
            retrying = StartRetry(service)  # a port still taken is tried again, with backoff
            await retrying.start()
            self._services.append(retrying)
            if retrying.started:
                log.info("sftp.service_started", service=service.name)
        self._started = True

    async def stop(self, *, timeout: float) -> None:
        services, self._services = self._services, []
        for service in reversed(services):
            await service.stop(timeout=timeout)
        self._started = False

    @property
    def services(self) -> list[Service]:
        """The running listeners and clients (tests and diagnostics)."""
        return [s.inner for s in self._services if s.started]


def factory(context: GatewayContext) -> Sequence[Service]:
    """The SFTP service; it plans its listeners and clients when the daemon starts it."""
    return [SftpServices(context)]


def admin_routes(app: web.Application) -> None:
    """Routes the SFTP work adds to the admin server (none)."""
    del app
