"""AS2 outbound: one outbox worker per connection, its HTTP session, and its sweep.

Our AS2 Message-ID starts with the store's message id, is recorded (event `as2.sending`, with
the MIC the MDN must return) before the first POST and reused by every later attempt; a `sent`
message whose MDN never comes is sent again after `mdn_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp

from gateway.as2_journal import emission_seconds, observe, settle
from gateway.config import KeyPair
from gateway.config_load import read_secret
from gateway.errors import ConnectionStateError
from gateway.logging import get_logger
from gateway.model import MessageState
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.services import GatewayContext
from gateway.settings.as2 import As2Plan, aife_url
from gateway.store import IllegalTransition, Message, RetryPolicy
from protocols.as2.endpoint import Answered
from protocols.as2.mdn import Disposition
from protocols.as2.message import BuiltMessage
from protocols.as2.mic import Mic
from protocols.as2.params import MdnMode
from protocols.as2.receipts import SENDING, MdnOutcome, Trail
from protocols.as2.sender import (
    As2Client,
    MdnWaiters,
    Outbound,
    client_tls,
    content_type_for,
    message_id_for,
)
from protocols.errors import PermanentSendError, TransientSendError

__all__ = ["As2Worker", "StoreSender", "client_tls_for", "key_secret"]

log = get_logger("gateway.plug_as2")


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
        emission_seconds(message, self._context.clock())
        return SendResult(as2_id, True, {"mdn": outcome.to_detail()})


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
            tls = (
                await run_blocking(client_tls_for, plan)
                if settings.aife_scheme == "https"
                else None
            )
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.error("as2.tls_unusable", connection=plan.name, reason=str(exc))
            return  # not ready: /readyz says so
        out = Outbound(
            connection=plan.name, params=plan.send, url=aife_url(plan.conn, settings),
            partner_certificates=plan.profile.receive.partner_refs, tls=tls,
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


def key_secret(pair: KeyPair) -> bytes | None:
    return read_secret(pair.key_passphrase, pair.key_passphrase_file, field="key", errors=[])


def client_tls_for(plan: As2Plan) -> ssl.SSLContext:
    pair = plan.conn.certificates.client if plan.settings.tls_client_certificate else None
    return client_tls(
        anchors_pem=plan.anchors_pem,
        certificate=pair.certificate if pair else None,
        key=pair.key if pair else None,
        password=key_secret(pair) if pair else None,
        verify_hostname=plan.settings.tls_verify_hostname,
    )
