"""The AS2 listener (aiohttp, HTTP or HTTPS): inbound messages, and the MDNs of ours.

A message is identified by AS2-From/AS2-To before its body is read, checked and unwrapped off
the event loop with *that* connection's certificates (the positive MDN is signed in the same
worker job, `opening.py`), and handed to the inbox port; only once it is durable is an MDN
chosen (that one, or another built for a refusal or a repeat), recorded (so a repeated
Message-ID gets the same bytes again) and returned — in the response, or POSTed to the
Receipt-Delivery-Option by the courier. Every answer, positive or not, is reported to the
injected observer (metrics, logs, audit trail). The decisions themselves are pure and live in
`inbound.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import structlog
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from protocols.as2.answers import (
    HTTP_STATUS,
    Refusal,
    refusal_of,
    refusal_of_request,
    refusal_of_transfer,
)
from protocols.as2.envelope import Envelope, read_envelope
from protocols.as2.errors import As2Error, As2LimitError
from protocols.as2.inbound import (
    INTERNAL,
    Answered,
    BodyBroken,
    BodyTooLarge,
    MdnJournal,
    Observer,
    Verdict,
    handed_over,
    mdn_content,
    receipt_refusal,
    report,
    unidentified,
)
from protocols.as2.mdn import MdnRequest, build_mdn, parse_mdn
from protocols.as2.mime import Headers
from protocols.as2.opening import open_message
from protocols.as2.partners import PartnerProfile, Partners
from protocols.as2.receipts import MdnOutcome, StoredMdn, sent_event
from protocols.as2.sender import MDN_CAP, MdnCourier, MdnWaiters, Offload
from protocols.ports import Accepted, InboxPort, Incoming, TransferRefused

__all__ = ["Answered", "As2Endpoint", "As2Listener", "MdnJournal", "read_body", "server_tls"]

_log = structlog.get_logger(module=__name__)
_READ_STEP = 1 << 20


async def read_body(request: web.Request, *, cap: int) -> bytearray:
    """Content-Length or chunked, never more than `cap` bytes held (413 before reading)."""
    declared = request.content_length
    if declared is not None and declared > cap:
        raise BodyTooLarge(cap)
    try:
        if declared:
            return await _read_exactly(request, declared)
        body = bytearray()
        async for chunk in request.content.iter_chunked(_READ_STEP):
            if len(body) + len(chunk) > cap:
                raise BodyTooLarge(cap)
            body += chunk
    except (OSError, HttpProcessingError, ClientPayloadError) as exc:
        raise BodyBroken(str(exc)[:200] or type(exc).__name__) from exc
    return body


async def _read_exactly(request: web.Request, size: int) -> bytearray:
    """One allocation of the announced size, filled in place (no growth, no copy)."""
    body = bytearray(size)
    filled = 0
    with memoryview(body) as view:
        async for chunk in request.content.iter_chunked(_READ_STEP):
            if filled + len(chunk) > size:
                raise BodyBroken("more bytes than Content-Length announced")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    if filled != size:
        raise BodyBroken(f"{filled} of the {size} bytes announced")
    return body


def server_tls(
    *,
    certificate: Path,
    key: Path,
    password: bytes | None,
    client_auth: Literal["none", "optional", "required"],
    anchors_pem: bytes,
) -> ssl.SSLContext:
    """Our HTTPS listener; client certificates verified against the anchors when asked."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key, password=password)
    if client_auth != "none":
        context.load_verify_locations(cadata=anchors_pem.decode())
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return context


class As2Endpoint:
    """Request handlers for one listener (one or more connections)."""

    def __init__(
        self,
        *,
        partners: Partners,
        inbox: InboxPort,
        journal: MdnJournal,
        offload: Offload,
        observe: Observer,
        clock: Callable[[], dt.datetime],
        courier: MdnCourier | None = None,
        waiters: MdnWaiters | None = None,
    ) -> None:
        self._partners = partners
        self._inbox = inbox
        self._journal = journal
        self._offload = offload
        self._observe = observe
        self._clock = clock
        self._courier = courier
        self._waiters = waiters

    def add_routes(self, app: web.Application, *, path: str, mdn_path: str) -> None:
        app.router.add_post(path, self.receive)
        app.router.add_post(mdn_path, self.receive_mdn)

    # --- inbound messages -------------------------------------------------------------

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """One inbound AS2 message: identify, read, unwrap, store durably, answer."""
        started = time.monotonic()
        headers = Headers.from_mapping(request.headers)
        try:
            envelope = read_envelope(headers)
            profile = self._partners.find(envelope.as2_from, envelope.as2_to)
        except As2Error as exc:
            return await self._unidentified(request, exc, started)
        try:
            return await self._exchange(request, headers, profile, envelope, started)
        except Exception:  # noqa: BLE001 - a bug answers 500, never a crashed listener
            _log.exception(
                "as2.receive_crashed",
                connection=profile.connection,
                peer_message_id=envelope.message_id,
            )
            return await self._plain(profile, envelope, INTERNAL, started)

    async def _exchange(
        self,
        request: web.Request,
        headers: Headers,
        profile: PartnerProfile,
        envelope: Envelope,
        started: float,
    ) -> web.StreamResponse:
        asked = envelope.mdn_request
        refusal = receipt_refusal(asked, profile)
        if refusal is not None and asked is not None:
            asked = dataclasses.replace(asked, receipt_url=None)  # answered in the response
            return await self._answer(profile, envelope, asked, Verdict(refusal=refusal), started)
        try:
            verdict = await self._process(request, headers, profile, envelope)
        except (BodyTooLarge, BodyBroken) as exc:
            return await self._plain(profile, envelope, refusal_of(exc), started)
        return await self._answer(profile, envelope, asked, verdict, started)

    async def _process(
        self, request: web.Request, headers: Headers, profile: PartnerProfile, envelope: Envelope
    ) -> Verdict:
        asked = envelope.mdn_request
        if asked is not None and (failure := asked.failure) is not None:
            return Verdict(refusal=refusal_of_request(failure))
        body = await read_body(request, cap=profile.max_body_size)
        try:
            opened = await self._offload(
                open_message, headers, body, profile=profile, envelope=envelope,
                now=self._clock(),
            )  # fmt: skip
        except As2Error as exc:
            return Verdict(refusal=refusal_of(exc))
        finally:
            del body  # the payload is all we keep from here on
        received, receipt = opened.received, opened.receipt
        incoming = Incoming(
            protocol="as2",
            direction="reception",
            source=profile.connection,
            interface_code=opened.interface_code,
            connection=profile.connection,
            peer_message_id=envelope.message_id,
            file_name=opened.file_name,
            expected_size=len(received.payload),
            events=() if receipt is None else (sent_event(receipt),),  # remembered if new
        )
        try:
            accepted = await self._inbox.accept(handed_over(received.payload), incoming)
        except TransferRefused as exc:
            return Verdict(refusal=refusal_of_transfer(exc))
        return Verdict(accepted=accepted, mic=received.mic, receipt=opened.receipt)

    async def _answer(
        self,
        profile: PartnerProfile,
        envelope: Envelope,
        asked: MdnRequest | None,
        verdict: Verdict,
        started: float,
    ) -> web.StreamResponse:
        refusal = verdict.refusal
        if asked is None or (refusal is not None and refusal.retry):
            return await self._plain(profile, envelope, refusal, started, verdict.accepted)
        mdn = await self._mdn_for(profile, envelope, asked, verdict)
        await self._report(profile, envelope, verdict, mdn, started, status=200)
        if asked.receipt_url and self._courier is not None:
            self._courier.post(
                mdn,
                url=asked.receipt_url,
                connection=profile.connection,
                retries=profile.mdn_retries,
                delay=profile.mdn_retry_delay,
            )
            return web.Response(status=200, text="")
        return web.Response(status=200, body=mdn.body, headers=list(mdn.headers))

    async def _mdn_for(
        self, profile: PartnerProfile, envelope: Envelope, asked: MdnRequest, verdict: Verdict
    ) -> StoredMdn:
        """The original MDN for a repeat; else a new one, remembered before it is sent."""
        accepted = verdict.accepted
        if accepted is not None and accepted.duplicate:
            stored = await self._journal.recall(accepted.message_id, envelope.message_id)
            if stored is not None:
                return stored
        stored = verdict.prepared
        if stored is None:
            disposition, text = mdn_content(verdict)
            built = await self._offload(
                build_mdn,
                original_message_id=envelope.message_id,
                disposition=disposition,
                mic=verdict.mic,
                request=asked,
                params=profile.mdn,
                now=self._clock(),
                text=text,
            )
            stored = StoredMdn.of(
                built, original_message_id=envelope.message_id, disposition=disposition
            )
        if accepted is not None and not (stored is verdict.prepared and accepted.events_recorded):
            await self._journal.remember(accepted.message_id, stored)
        return stored

    async def _plain(
        self,
        profile: PartnerProfile,
        envelope: Envelope,
        refusal: Refusal | None,
        started: float,
        accepted: Accepted | None = None,
    ) -> web.StreamResponse:
        """No MDN carries the answer: the HTTP status does (503 asks for a retry)."""
        verdict = Verdict(accepted=accepted, refusal=refusal)
        status = 200 if refusal is None else (503 if refusal.retry else refusal.status)
        await self._report(profile, envelope, verdict, None, started, status=status)
        text = "processed" if refusal is None else f"{refusal.kind}: {refusal.reason}"
        return web.Response(status=status, text=text)

    async def _report(
        self,
        profile: PartnerProfile,
        envelope: Envelope,
        verdict: Verdict,
        mdn: StoredMdn | None,
        started: float,
        *,
        status: int,
    ) -> None:
        seconds = time.monotonic() - started
        await self._observe(report(profile, envelope, verdict, mdn, status=status, seconds=seconds))

    async def _unidentified(
        self, request: web.Request, exc: As2Error, started: float
    ) -> web.StreamResponse:
        """No connection to answer for: a bare HTTP refusal, nothing read or signed."""
        peer = request.headers.get("Message-ID", "")[:200] or None
        answered = unidentified(exc, peer, seconds=time.monotonic() - started)
        await self._observe(answered)
        return web.Response(status=answered.status, text=f"{exc.modifier.value}: {exc.reason}")

    # --- asynchronous MDNs for our messages -------------------------------------------

    async def receive_mdn(self, request: web.Request) -> web.StreamResponse:
        """AIFE's receipt for one of ours: verified with that connection's certificates."""
        started = time.monotonic()
        headers = Headers.from_mapping(request.headers)
        try:
            envelope = read_envelope(headers)
            profile = self._partners.find(envelope.as2_from, envelope.as2_to)
            body = await read_body(request, cap=MDN_CAP)
            mdn = await self._offload(
                parse_mdn,
                headers,
                body,
                partner_certificates=profile.receive.partner_refs,
                require_signature=profile.signed_mdn_required,
                now=self._clock(),
            )
        except As2Error as exc:
            status = 413 if isinstance(exc, As2LimitError) else HTTP_STATUS[exc.modifier]
            _log.warning("as2.mdn_refused", reason=exc.reason, modifier=exc.modifier.value)
            return web.Response(status=status, text=f"{exc.modifier.value}: {exc.reason}")
        outcome = MdnOutcome.of(mdn)
        known = self._waiters is not None and self._waiters.resolve(profile.connection, outcome)
        known = known or await self._journal.receipt(profile.connection, outcome)
        await self._observe(
            Answered(
                connection=profile.connection,
                direction="received",
                disposition=mdn.disposition,
                reason="" if known else "no message with this Message-ID",
                status=200 if known else 404,
                peer_message_id=outcome.original_message_id,
                seconds=time.monotonic() - started,
            )
        )
        if not known:
            return web.Response(status=404, text="no message with this Original-Message-ID")
        return web.Response(status=200, text="MDN received")


class As2Listener:
    """One bound address (HTTP or HTTPS) serving an endpoint; a daemon `Service`."""

    def __init__(
        self,
        endpoint: As2Endpoint,
        *,
        host: str,
        port: int,
        path: str,
        mdn_path: str,
        tls: ssl.SSLContext | None = None,
        max_field_size: int = 16 * 1024,
        middlewares: Sequence[Middleware] = (),
        drain_timeout: float = 10.0,
    ) -> None:
        self._endpoint = endpoint
        self._host, self._port, self._tls = host, port, tls
        self._app = web.Application(
            handler_args={"max_field_size": max_field_size}, middlewares=list(middlewares)
        )
        endpoint.add_routes(self._app, path=path, mdn_path=mdn_path)
        self._runner: web.AppRunner | None = None
        self._drain = drain_timeout

    @property
    def name(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"as2-listener {scheme}://{self._host}:{self._port}"

    @property
    def ready(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=self._drain
        )
        await runner.setup()
        site = web.TCPSite(
            runner, self._host, self._port, ssl_context=self._tls, reuse_address=True
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self, *, timeout: float) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.shutdown()
            await runner.cleanup()
        del timeout  # in-flight requests are drained within `drain_timeout` (set at start)
