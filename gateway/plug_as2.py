"""Wires AS2 into the daemon: listeners, one outbox worker per connection, the MDN routes.

Everything protocol-shaped lives in `protocols.as2`; this module translates the gateway into it:
sheets and credentials into parameters and TLS (`gateway.settings.as2`), the store into the MDN
journal (events `as2.sending`, `as2.mdn_sent`, `as2.mdn_received`), answers into metrics and
logs. Our AS2 Message-ID starts with the store's message id, is recorded before the first POST
and reused by every later attempt; a `sent` message whose MDN never comes is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway import metrics
from gateway.admin import current_context
from gateway.config import KeyPair
from gateway.config_load import read_secret
from gateway.credentials import ConnectionCredentials
from gateway.errors import ConnectionStateError
from gateway.logging import get_logger
from gateway.model import Direction, MessageState, Protocol
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.services import GatewayContext, Service
from gateway.settings.as2 import As2Plan, aife_url, listen_address, plan_for
from gateway.store import IllegalTransition, Message, RetryPolicy, Store, UnknownMessage
from protocols.as2.answers import disposition_labels
from protocols.as2.endpoint import Answered, As2Endpoint, As2Listener, server_tls
from protocols.as2.mdn import Disposition
from protocols.as2.message import BuiltMessage
from protocols.as2.mic import Mic
from protocols.as2.params import MdnMode
from protocols.as2.partners import Partners
from protocols.as2.receipts import MDN_RECEIVED, MDN_SENT, SENDING, MdnOutcome, StoredMdn, Trail
from protocols.as2.sender import (
    As2Client,
    MdnCourier,
    MdnWaiters,
    Outbound,
    client_tls,
    content_type_for,
    message_id_for,
)
from protocols.errors import PermanentSendError, TransientSendError

log = get_logger(__name__)
_AUTH_MODIFIERS = frozenset({"authentication-failed", "unknown-trading-partner"})


# --- the store as the MDN journal --------------------------------------------------------------


class StoreJournal:
    """`MdnJournal` over the store's append-only events."""

    def __init__(
        self, store: Store, *, signed_mdn: Callable[[str], bool], clock: Callable[[], dt.datetime]
    ) -> None:
        self._store, self._signed_mdn, self._clock = store, signed_mdn, clock

    async def recall(self, message_id: str, original_message_id: str) -> StoredMdn | None:
        return Trail(await self._store.events(message_id)).sent_mdn(original_message_id)

    async def remember(self, message_id: str, mdn: StoredMdn) -> None:
        await self._store.record_event(message_id, kind=MDN_SENT, detail=mdn.to_detail())

    async def receipt(self, connection: str, outcome: MdnOutcome) -> bool:
        message = await self._ours(connection, outcome.original_message_id)
        if message is None:
            return False
        await self._store.record_event(message.id, kind=MDN_RECEIVED, detail=outcome.to_detail())
        if message.state is MessageState.SENT:  # else the sender or the sweep settles it
            trail = Trail(await self._store.events(message.id))
            await settle(self._store, message, outcome, trail.expected_mic,
                         signed_mdn=self._signed_mdn(connection), now=self._clock())  # fmt: skip
        return True

    async def _ours(self, connection: str, as2_id: str) -> Message | None:
        """The message we sent with this Message-ID (it starts with the store's id)."""
        found = await self._store.find_by_peer_id(source=connection, peer_message_id=as2_id)
        if found is None or found.direction is not Direction.EMISSION:
            try:
                found = await self._store.get(as2_id.lstrip("<").split(".", 1)[0])
            except UnknownMessage:
                return None
        if found.connection != connection or found.direction is not Direction.EMISSION:
            return None
        sent = Trail(await self._store.events(found.id)).message_id
        return found if as2_id in (sent, found.sent_message_id) else None


async def settle(
    store: Store,
    message: Message,
    outcome: MdnOutcome,
    mic: Mic | None,
    *,
    signed_mdn: bool,
    now: dt.datetime,
) -> None:
    """A `sent` message meets its MDN: acknowledged, or rejected with the MDN's reason."""
    reason = outcome.verdict(expected_mic=mic, signature_required=signed_mdn)
    with contextlib.suppress(IllegalTransition):  # settled meanwhile by the sender or sweep
        if reason is None:
            await store.record_acknowledged(message.id, detail={"mdn": outcome.to_detail()})
            _emission_seconds(message, now)
        else:
            await store.record_failure(message.id, reason=reason, retryable=False,
                                       policy=RetryPolicy())  # fmt: skip
    log.info("as2.mdn_settled", message_id=message.id, connection=message.connection,
             accepted=reason is None, reason=reason)  # fmt: skip


def _emission_seconds(message: Message, now: dt.datetime) -> None:
    seconds = max((now - message.created_at).total_seconds(), 0.0)
    metrics.PROCESSING_SECONDS.labels("as2", "emission").observe(seconds)


# --- answers as metrics and logs ---------------------------------------------------------------


async def observe(answered: Answered) -> None:
    """Count every MDN sent or received (and every refusal) with bounded labels; log it."""
    label, modifier = disposition_labels(answered.disposition)
    connection = answered.connection or metrics.UNKNOWN
    metrics.AS2_MDN.labels(connection, answered.direction, label, modifier).inc()
    event = log.bind(connection=answered.connection, peer_message_id=answered.peer_message_id,
                     message_id=answered.message_id, disposition=label, modifier=modifier,
                     status=answered.status)  # fmt: skip
    if answered.direction == "received":
        event.info("as2.mdn_received", reason=answered.reason or None)
        return
    metrics.PROCESSING_SECONDS.labels("as2", "reception").observe(answered.seconds)
    if not answered.kind:
        event.info("as2.message_answered", duplicate=answered.duplicate)
        return
    metrics.REFUSED.labels("as2", "reception", answered.kind).inc()
    if answered.kind in _AUTH_MODIFIERS:
        metrics.AUTH_FAILURES.labels("as2", answered.kind).inc()
    event.warning("as2.message_refused", kind=answered.kind, reason=answered.reason)


# --- the outbox's sender ------------------------------------------------------------------------


class StoreSender:
    """The outbox's `Sender` for one connection: same Message-ID on every attempt."""

    def __init__(
        self, context: GatewayContext, plan: As2Plan, client: As2Client, out: Outbound
    ) -> None:
        self._context, self._plan, self._client, self._out = context, plan, client, out

    async def send(self, message: Message, payload: Path) -> SendResult:
        try:
            self._context.registry.check_traffic(self._plan.name, now=self._context.clock())
        except ConnectionStateError as exc:
            raise TransientSendError(f"connection closed to traffic: {exc.reason}") from exc
        trail = Trail(await self._context.store.events(message.id))
        as2_id = trail.message_id or message_id_for(
            message.id, domain=self._out.params.message_id_domain
        )
        arrived = trail.outcome(as2_id)
        if arrived is not None:  # its MDN came while the message waited for a retry
            return self._result(message, as2_id, arrived, trail.expected_mic)
        built, out = await self._build(message, payload, as2_id)
        posted = await self._client.send(built, out)
        if posted.outcome is None:
            return SendResult(as2_id, built.mdn_mode is MdnMode.NONE, {"status": posted.status})
        if built.mdn_mode is MdnMode.SYNC:  # an async one was counted by the listener
            await observe(Answered(
                connection=self._plan.name, direction="received", reason="",
                disposition=Disposition.parse(posted.outcome.disposition),
                status=posted.status, peer_message_id=as2_id,
            ))  # fmt: skip
        return self._result(message, as2_id, posted.outcome, built.mic)

    async def _build(
        self, message: Message, payload: Path, as2_id: str
    ) -> tuple[BuiltMessage, Outbound]:
        """Build off the loop; record the Message-ID and MIC before the first byte leaves."""
        name = message.file_name or f"{message.interface_code}_{message.id}.xml"
        params = dataclasses.replace(self._out.params, file_name=name, subject=name,
                                     content_type=content_type_for(name))  # fmt: skip
        out = dataclasses.replace(self._out, params=params)
        data = await run_blocking(payload.read_bytes)
        built = await self._client.build(data, out, message_id=as2_id)
        del data
        detail = Trail.sending(message_id=as2_id, mic=built.mic, url=out.url,
                               attempt=message.attempts)  # fmt: skip
        await self._context.store.record_event(message.id, kind=SENDING, detail=detail)
        return built, out

    def _result(
        self, message: Message, as2_id: str, outcome: MdnOutcome, mic: Mic | None
    ) -> SendResult:
        reason = outcome.verdict(expected_mic=mic, signature_required=self._out.signed_mdn_required)
        if reason is not None:
            raise PermanentSendError(reason)
        _emission_seconds(message, self._context.clock())
        return SendResult(as2_id, True, {"mdn": outcome.to_detail()})


# --- services -----------------------------------------------------------------------------------


class As2Worker:
    """One connection's outbox worker, its HTTP session, and its sweep of `sent` messages."""

    def __init__(self, context: GatewayContext, plan: As2Plan, waiters: MdnWaiters) -> None:
        self._context, self._plan, self._waiters = context, plan, waiters
        self._session: aiohttp.ClientSession | None = None
        self._worker: OutboxWorker | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return f"as2-outbox {self._plan.name}"

    @property
    def ready(self) -> bool:
        return self._worker is not None

    async def start(self) -> None:
        plan, settings, retry = self._plan, self._plan.settings, self._plan.conn.retry
        assert plan.send is not None
        try:
            tls = await run_blocking(_client_tls, plan) if settings.aife_scheme == "https" else None
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.error("as2.tls_unusable", connection=plan.name, reason=str(exc))
            return  # not ready: /readyz says so
        out = Outbound(
            connection=plan.name, params=plan.send, url=aife_url(plan.conn, settings),
            partner_certificates=plan.partner_certificates, tls=tls,
            signed_mdn_required=settings.signed_mdn, timeout=settings.http_timeout,
            async_wait=settings.async_mdn_wait, chunked=settings.chunked,
        )  # fmt: skip
        self._session = aiohttp.ClientSession()
        client = As2Client(session=self._session, offload=run_blocking,
                           clock=self._context.clock, waiters=self._waiters)  # fmt: skip
        worker = OutboxWorker(
            self._context.store, StoreSender(self._context, plan, client, out),
            connection=plan.name, poll_interval=min(5.0, retry.base_delay),
            policy=RetryPolicy(retry.max_attempts, retry.base_delay, retry.max_delay),
        )  # fmt: skip
        worker.start()
        self._worker = worker
        self._unregister = self._context.wakeups.register(plan.name, worker.notify)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"as2-sweep-{plan.name}")

    async def stop(self, *, timeout: float) -> None:
        if self._unregister is not None:
            self._unregister()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._worker is not None:
            await self._worker.stop(grace=timeout)
        if self._session is not None:
            await self._session.close()
        self._worker = self._session = self._sweeper = None

    async def _sweep_forever(self) -> None:
        pause = min(30.0, self._plan.settings.mdn_timeout / 4)
        while True:
            await asyncio.sleep(pause)
            try:
                await self.sweep()
            except Exception:  # a failed sweep is retried at the next one
                log.exception("as2.sweep_failed", connection=self._plan.name)

    async def sweep(self) -> int:
        """`sent` messages: settle those whose MDN came; send again those past the timeout."""
        store, plan = self._context.store, self._plan
        now, timeout = self._context.clock(), plan.settings.mdn_timeout
        resent = 0
        for message in await store.list_messages(state=MessageState.SENT, connection=plan.name):
            trail = Trail(await store.events(message.id))
            outcome = trail.outcome(message.sent_message_id or "")
            if outcome is not None:
                await settle(store, message, outcome, trail.expected_mic,
                             signed_mdn=plan.settings.signed_mdn, now=now)  # fmt: skip
            elif (now - message.updated_at).total_seconds() >= timeout:
                with contextlib.suppress(IllegalTransition):
                    await store.record_failure(
                        message.id, reason=f"no MDN within {timeout:g} s", retryable=True,
                        policy=RetryPolicy(plan.conn.retry.max_attempts, 0.0, 0.0),
                    )  # fmt: skip
                    resent += 1
        if resent and self._worker is not None:
            self._worker.notify()
        return resent


def _secret(pair: KeyPair) -> bytes | None:
    return read_secret(pair.key_passphrase, pair.key_passphrase_file, field="key", errors=[])


def _client_tls(plan: As2Plan) -> ssl.SSLContext:
    pair = plan.conn.certificates.client if plan.settings.tls_client_certificate else None
    return client_tls(
        anchors_pem=plan.anchors_pem,
        certificate=pair.certificate if pair else None,
        key=pair.key if pair else None,
        password=_secret(pair) if pair else None,
        verify_hostname=plan.settings.tls_verify_hostname,
    )


def _server_tls(plan: As2Plan) -> ssl.SSLContext | None:
    """The listener's TLS: the server certificate, else the client-type one (domain.md §4)."""
    pair = plan.conn.certificates.server or plan.conn.certificates.client
    try:
        if pair is None:
            raise ValueError("an HTTPS listener needs a server or client certificate")
        return server_tls(certificate=pair.certificate, key=pair.key, password=_secret(pair),
                          client_auth=plan.settings.tls_client_auth,
                          anchors_pem=plan.anchors_pem)  # fmt: skip
    except (OSError, ValueError, ssl.SSLError) as exc:
        log.error("as2.listener_tls_unusable", connection=plan.name, reason=str(exc))
        return None


# --- the daemon's entry points ------------------------------------------------------------------


def _plans(context: GatewayContext) -> list[As2Plan]:
    return [
        plan_for(view.config, context.credentials.get(view.config.name)
                 or ConnectionCredentials(view.config.name))
        for view in context.registry
        if view.config.protocol is Protocol.AS2
    ]  # fmt: skip


def _endpoint(
    context: GatewayContext,
    plans: Sequence[As2Plan],
    *,
    courier: MdnCourier | None = None,
    waiters: MdnWaiters | None = None,
) -> As2Endpoint:
    signed = {plan.name: plan.settings.signed_mdn for plan in plans}
    journal = StoreJournal(context.store, signed_mdn=lambda name: signed.get(name, True),
                           clock=context.clock)  # fmt: skip
    partners = Partners(plan.profile for plan in plans)
    for (as2_from, as2_to), names in partners.ambiguous.items():
        log.error("as2.ambiguous_names", as2_from=as2_from, as2_to=as2_to, connections=names)
    return As2Endpoint(partners=partners, inbox=context.inbox_port, journal=journal,
                       offload=run_blocking, observe=observe, clock=context.clock,
                       courier=courier, waiters=waiters)  # fmt: skip


def _listeners(
    context: GatewayContext, plans: Sequence[As2Plan], courier: MdnCourier, waiters: MdnWaiters
) -> list[Service]:
    """One listener per bound host:port; its connections are told apart by AS2 names."""
    groups: dict[tuple[str, int], list[As2Plan]] = {}
    for plan in plans:
        host, port, _ = listen_address(plan.conn, plan.settings)
        groups.setdefault((host, port), []).append(plan)
    listeners: list[Service] = []
    for (host, port), group in groups.items():
        first = group[0]
        schemes = {listen_address(p.conn, p.settings)[2] for p in group}
        if len(schemes) > 1:
            log.error("as2.listener_conflict", host=host, port=port,
                      connections=[p.name for p in group], using=first.name)  # fmt: skip
        tls = None
        if listen_address(first.conn, first.settings)[2] == "https":
            tls = _server_tls(first)
            if tls is None:
                continue
        endpoint = _endpoint(context, group, courier=courier, waiters=waiters)
        listeners.append(As2Listener(endpoint, host=host, port=port, tls=tls,
                                     path=first.settings.path,
                                     mdn_path=first.settings.mdn_path))  # fmt: skip
    return listeners


def factory(context: GatewayContext) -> Sequence[Service]:
    """A courier, a listener per bound address, and an outbox worker per sending connection."""
    plans = _plans(context)
    if not plans:
        return []
    by_name = {plan.name: plan for plan in plans}
    tls_cache: dict[str, ssl.SSLContext] = {}

    def tls_for(connection: str) -> ssl.SSLContext | None:
        if connection not in tls_cache and connection in by_name:
            with contextlib.suppress(OSError, ValueError, ssl.SSLError):
                tls_cache[connection] = _client_tls(by_name[connection])
        return tls_cache.get(connection)

    waiters, courier = MdnWaiters(), MdnCourier(tls_for=tls_for)
    services: list[Service] = [courier, *_listeners(context, plans, courier, waiters)]
    for plan in plans:
        if plan.send is None:
            log.error("as2.cannot_send", connection=plan.name, reason="no client key to sign with")
        else:
            services.append(As2Worker(context, plan, waiters))
    return services


async def _admin_mdn(request: web.Request) -> web.StreamResponse:
    """The gateway's MDN URL on the admin server (when AIFE is given that one)."""
    context: GatewayContext = current_context(request)
    return await _endpoint(context, _plans(context)).receive_mdn(request)


def admin_routes(app: web.Application) -> None:
    """POST /as2/mdn on the admin server: asynchronous MDNs for our messages."""
    app.router.add_post("/as2/mdn", _admin_mdn)
