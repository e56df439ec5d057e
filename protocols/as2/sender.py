"""The AS2 client side: POST a message and judge its MDN; POST our asynchronous MDNs.

`As2Client.send` builds off the event loop, POSTs (Content-Length unless asked to chunk), then
reads the synchronous MDN from the response or waits, for a while, for the asynchronous one the
listener hands over through `MdnWaiters`. Failures are typed for the outbox: transport trouble,
HTTP 5xx/408/429 and a missing MDN are transient (the same Message-ID goes out again); a
negative MDN, a MIC mismatch or a refused request are permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ParamSpec, Protocol, TypeVar

import aiohttp
import structlog
from cryptography import x509

from protocols.as2.cms import CertRef
from protocols.as2.errors import As2BuildError, As2Error
from protocols.as2.mdn import parse_mdn
from protocols.as2.message import BuiltMessage, build_message
from protocols.as2.mic import Mic
from protocols.as2.mime import parse_content_type
from protocols.as2.params import As2SendParams, MdnMode
from protocols.as2.receipts import MdnOutcome, StoredMdn
from protocols.errors import PermanentSendError, TransientSendError

__all__ = [
    "As2Client",
    "MdnCourier",
    "MdnWaiters",
    "Offload",
    "Outbound",
    "Posted",
    "client_tls",
    "content_type_for",
    "message_id_for",
]

P = ParamSpec("P")
T = TypeVar("T")
MDN_CAP = 1 << 20  # an MDN is a few kilobytes; more is not an MDN
_CHUNK = 256 * 1024
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_MDN_TYPES = frozenset({"multipart/report", "multipart/signed"})
_CONTENT_TYPES = {".xml": "application/xml", ".pdf": "application/pdf", ".json": "application/json"}
_log = structlog.get_logger(module=__name__)


class Offload(Protocol):
    """The gateway's worker-pool door (`gateway.offload.run_blocking`), injected."""

    def __call__(
        self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...


def client_tls(
    *,
    anchors_pem: bytes,
    certificate: Path | None = None,
    key: Path | None = None,
    password: bytes | None = None,
    verify_hostname: bool = True,
) -> ssl.SSLContext:
    """TLS to AIFE: verified against the configured anchors only, our certificate if asked."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=anchors_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = verify_hostname
    if certificate is not None and key is not None:
        context.load_cert_chain(certificate, key, password=password)
    return context


class MdnWaiters:
    """Senders waiting for an asynchronous MDN, keyed by connection and our Message-ID."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[MdnOutcome]] = {}

    @contextlib.contextmanager
    def expect(self, connection: str, message_id: str) -> Iterator[asyncio.Future[MdnOutcome]]:
        """Register before the POST so an MDN faster than our HTTP response is not lost."""
        future: asyncio.Future[MdnOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[(connection, message_id)] = future
        try:
            yield future
        finally:
            if self._waiting.get((connection, message_id)) is future:
                del self._waiting[(connection, message_id)]

    def resolve(self, connection: str, outcome: MdnOutcome) -> bool:
        """Hand a verified MDN to the sender waiting for it; False when nobody waits."""
        future = self._waiting.get((connection, outcome.original_message_id))
        if future is None or future.done():
            return False
        future.set_result(outcome)
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbound:
    """One connection's sending parameters, as the client needs them."""

    connection: str
    params: As2SendParams
    url: str
    partner_certificates: tuple[x509.Certificate | CertRef, ...]  # refs: prepared once
    signed_mdn_required: bool
    timeout: float
    async_wait: float
    chunked: bool = False
    tls: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """A POST the partner took: its MDN outcome when one came back in time."""

    message_id: str
    mic: Mic
    status: int
    outcome: MdnOutcome | None

    @property
    def acknowledged(self) -> bool:
        return self.outcome is not None


class As2Client:
    """Sends one connection's messages over a shared aiohttp session."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        offload: Offload,
        clock: Callable[[], dt.datetime],
        waiters: MdnWaiters,
    ) -> None:
        self._session = session
        self._offload = offload
        self._clock = clock
        self._waiters = waiters

    async def build(self, payload: bytes, out: Outbound, *, message_id: str) -> BuiltMessage:
        """Package off the loop; the Message-ID is ours to keep across attempts."""
        try:
            built = await self._offload(
                build_message, payload, params=out.params, now=self._clock()
            )
        except As2BuildError as exc:
            raise PermanentSendError(f"cannot build the AS2 message: {exc}") from exc
        headers = {**built.headers, "Message-ID": message_id}
        return dataclasses.replace(built, headers=headers, message_id=message_id)

    async def send(self, built: BuiltMessage, out: Outbound) -> Posted:
        """POST; the MDN that came back (in the response, or in time), judged by the caller.

        Raises TransientSendError / PermanentSendError for what is not an MDN at all.
        """
        if built.mdn_mode is MdnMode.ASYNC:
            with self._waiters.expect(out.connection, built.message_id) as arrived:
                status, _, _ = await self._post(built, out)
                outcome = await _wait(arrived, out.async_wait)
            return Posted(built.message_id, built.mic, status, outcome)
        status, headers, body = await self._post(built, out)
        if built.mdn_mode is MdnMode.NONE:
            return Posted(built.message_id, built.mic, status, None)
        outcome = await self._sync_mdn(built, out, headers, body)
        return Posted(built.message_id, built.mic, status, outcome)

    async def _post(self, built: BuiltMessage, out: Outbound) -> tuple[int, dict[str, str], bytes]:
        # A file-like body keeps Content-Length and is sent without blocking the loop.
        data = _chunks(built.body) if out.chunked else io.BytesIO(built.body)
        timeout = aiohttp.ClientTimeout(total=out.timeout)
        try:
            async with self._session.post(
                out.url, data=data, headers=built.headers, ssl=out.tls or True, timeout=timeout
            ) as response:
                body = await _read_capped(response, MDN_CAP + 1)
                headers = dict(response.headers.items())
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransientSendError(f"transport to {out.url}: {_describe(exc)}") from exc
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise TransientSendError(f"HTTP {status} from {out.url}: {_snippet(body)}")
        if status >= 300:
            raise PermanentSendError(f"HTTP {status} from {out.url}: {_snippet(body)}")
        if len(body) > MDN_CAP:
            raise PermanentSendError(f"answer over {MDN_CAP} bytes is not an MDN")
        return status, headers, body

    async def _sync_mdn(
        self, built: BuiltMessage, out: Outbound, headers: dict[str, str], body: bytes
    ) -> MdnOutcome:
        kind = _media_type(headers)
        if not body or kind not in _MDN_TYPES:
            raise TransientSendError(
                f"the partner answered without the synchronous MDN asked for ({kind})"
            )
        try:
            mdn = await self._offload(
                parse_mdn,
                headers,
                body,
                partner_certificates=out.partner_certificates,
                require_signature=out.signed_mdn_required,
                expected_message_id=built.message_id,
                now=self._clock(),
            )
        except As2Error as exc:
            raise PermanentSendError(f"MDN refused: {exc}") from exc
        return MdnOutcome.of(mdn)


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole answer, or its first `cap` bytes (`read(n)` alone may stop short)."""
    body = bytearray()
    while len(body) < cap and (chunk := await response.content.read(cap - len(body))):
        body += chunk
    return bytes(body)


def message_id_for(store_id: str, *, domain: str) -> str:
    """Our Message-ID: the store's id first, so an MDN leads back to its message."""
    return f"<{store_id}.{secrets.token_hex(8)}@{domain}>"


def content_type_for(file_name: str) -> str:
    return _CONTENT_TYPES.get(PurePosixPath(file_name).suffix.lower(), "application/octet-stream")


def _media_type(headers: dict[str, str]) -> str:
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    try:
        return parse_content_type(value).mime_type if value else "no Content-Type"
    except As2Error:
        return "unreadable Content-Type"


async def _wait(arrived: asyncio.Future[MdnOutcome], seconds: float) -> MdnOutcome | None:
    try:
        return await asyncio.wait_for(asyncio.shield(arrived), timeout=seconds)
    except TimeoutError:
        return None


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(view), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate verification failed ({exc.certificate_error})"
    return str(exc) or type(exc).__name__


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")


class MdnCourier:
    """POSTs our asynchronous MDNs with retries, in tasks it owns; `stop` drains them.

    It is a daemon service of its own (name, ready, start, stop)."""

    def __init__(
        self, *, tls_for: Callable[[str], ssl.SSLContext | None], timeout: float = 60.0
    ) -> None:
        self._tls_for = tls_for
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return "as2-mdn-courier"

    @property
    def ready(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    def post(
        self, mdn: StoredMdn, *, url: str, connection: str, retries: int, delay: float
    ) -> None:
        """Deliver in the background; the inbound POST was already answered."""
        task = asyncio.create_task(self._deliver(mdn, url, connection, retries, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, *, timeout: float) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(
        self, mdn: StoredMdn, url: str, connection: str, retries: int, delay: float
    ) -> None:
        reason = "not attempted"
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(min(delay * 2 ** (attempt - 1), 3600.0))
            reason = await self._attempt(mdn, url, connection)
            if not reason:
                break
            _log.warning(
                "as2.mdn_post_failed",
                connection=connection,
                url=url,
                reason=reason,
                attempt=attempt + 1,
                original_message_id=mdn.original_message_id,
            )
        if reason:
            _log.error(
                "as2.mdn_post_abandoned",
                connection=connection,
                url=url,
                reason=reason,
                original_message_id=mdn.original_message_id,
            )

    async def _attempt(self, mdn: StoredMdn, url: str, connection: str) -> str:
        """'' when the partner took it, else why not."""
        if self._session is None:
            return "courier stopped"
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.post(
                url,
                data=mdn.body,
                headers=list(mdn.headers),
                timeout=timeout,
                ssl=self._tls_for(connection) or True,
            ) as response:
                await response.read()
                return "" if response.status < 300 else f"HTTP {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return _describe(exc)
