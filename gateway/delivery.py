"""Back-office delivery of flows received from Chorus Pro: a folder per code and/or a webhook.

The service takes reception messages in state `accepted` (at start-up too, so a crash loses
nothing), hands each to every configured target, and marks it `delivered`. A target that fails
is tried again with backoff; after the retry limit the message goes `dead` — its payload stays
in the store and `raccord messages retry ID` sends it round again. A target that succeeded is
recorded (`handed_over` event) and skipped on the next attempt, so a folder never gets a file
twice because the webhook was down.

Folder: `<folder>/<CODE>/<message id>_<file name>`, written as a hidden `.…part` file in the
same directory, fsynced, renamed into place, directory fsynced: a reader never sees half a file.

Webhook: `POST url` with the payload as body and `X-Raccord-*` headers. The body is
authenticated by `X-Raccord-Signature: sha256=<hex>`, the HMAC-SHA256 with the shared secret of
`<X-Raccord-Timestamp> "." <body>` (the timestamp is Unix seconds; receivers should refuse old
ones to stop replays). Any 2xx is success; anything else, a timeout or a refused connection is
retried. Delivery is at least once: a receiver deduplicates by `X-Raccord-Message-Id`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

import aiohttp

from gateway import metrics
from gateway.errors import RaccordError
from gateway.intake_settings import DeliverySettings, WebhookSettings
from gateway.interfaces import CODE_PATTERN, Catalogue
from gateway.logging import REDACTOR, get_logger
from gateway.model import MessageState
from gateway.offload import run_blocking
from gateway.polling import PollingService
from gateway.store import IllegalTransition, Message, RetryPolicy, Store
from gateway.wakeups import DELIVER, Wakeups

__all__ = [
    "DeliveryError",
    "DeliveryService",
    "FolderTarget",
    "WebhookTarget",
    "delivered_name",
    "sign",
    "verify_signature",
]

log = get_logger(__name__)
SIGNATURE_HEADER = "X-Raccord-Signature"
TIMESTAMP_HEADER = "X-Raccord-Timestamp"
_CHUNK = 1 << 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DeliveryError(RaccordError):
    """A target did not take the flow; it will be tried again (or the message goes dead)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target}: {reason}")
        self.target = target
        self.reason = reason


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver runs: constant-time comparison with the expected signature."""
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), header.encode())


def _sign_file(secret: bytes, timestamp: str, path: Path) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b".", hashlib.sha256)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            mac.update(chunk)
    return "sha256=" + mac.hexdigest()


def _read_secret(settings: WebhookSettings) -> bytes:
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    assert settings.secret_file is not None  # the settings model requires one of the two
    return Path(settings.secret_file).read_bytes().strip()


def delivered_name(message: Message) -> str:
    """`<message id>_<original name>` (made safe), or `<CODE>_<message id>.xml` without one."""
    original = _UNSAFE.sub("_", message.file_name or "").strip("._")[:120]
    if original:
        return f"{message.id}_{original}"
    return f"{message.interface_code}_{message.id}.xml"


class Target(Protocol):
    """Somewhere the back office takes received flows from."""

    @property
    def name(self) -> str: ...

    async def deliver(self, message: Message, payload: Path) -> str: ...

    async def close(self) -> None: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderTarget:
    """A folder per interface code; files appear complete or not at all."""

    name = "folder"

    def __init__(self, root: Path) -> None:
        self._root = root

    async def close(self) -> None:
        """Nothing held open."""

    async def deliver(self, message: Message, payload: Path) -> str:
        try:
            return str(await run_blocking(self._write, message, payload))
        except OSError as exc:
            raise DeliveryError(self.name, f"cannot write: {exc.strerror or exc}") from exc

    def _write(self, message: Message, payload: Path) -> Path:
        code = message.interface_code if CODE_PATTERN.match(message.interface_code) else "unknown"
        directory = self._root / code
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(directory.parent)
        final = directory / delivered_name(message)
        temp = directory / f".{final.name}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            with payload.open("rb") as source:
                while chunk := source.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temp, final)
        _fsync_dir(directory)
        return final


async def _chunks(stream: BinaryIO) -> AsyncIterator[bytes]:
    """The body, read off the loop. The caller owns `stream`: aiohttp may drop this iterator
    unfinished when the answer comes early, and a file must not wait for the GC to close."""
    while chunk := await run_blocking(stream.read, _CHUNK):
        yield chunk


class WebhookTarget:
    """POSTs each flow, signed, to the back office; session and secret are set up on first use."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings, *, clock: Callable[[], dt.datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._secret: bytes | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _ready(self) -> tuple[aiohttp.ClientSession, bytes]:
        if self._secret is None:
            try:
                self._secret = await run_blocking(_read_secret, self._settings)
            except OSError as exc:
                raise DeliveryError(self.name, f"cannot read the secret: {exc.strerror}") from exc
            REDACTOR.register([self._secret.decode("utf-8", "replace")])
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session, self._secret

    async def deliver(self, message: Message, payload: Path) -> str:
        session, secret = await self._ready()
        timestamp = str(int(self._clock().timestamp()))
        try:
            signature = await run_blocking(_sign_file, secret, timestamp, payload)
            stream: BinaryIO = await run_blocking(payload.open, "rb")
        except OSError as exc:
            raise DeliveryError(self.name, f"cannot read the payload: {exc.strerror}") from exc
        try:
            return await self._post(session, message, stream, timestamp, signature)
        finally:
            await run_blocking(stream.close)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        message: Message,
        stream: BinaryIO,
        timestamp: str,
        signature: str,
    ) -> str:
        try:
            async with session.post(
                self._settings.url,
                data=_chunks(stream),
                headers=self._headers(message, timestamp, signature),
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
                allow_redirects=False,
            ) as response:
                if 200 <= response.status < 300:
                    return f"{self._settings.url} ({response.status})"
                raise DeliveryError(self.name, f"HTTP {response.status} {response.reason or ''}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(self.name, f"{type(exc).__name__}: {exc}".strip()) from exc

    @staticmethod
    def _headers(message: Message, timestamp: str, signature: str) -> dict[str, str]:
        return {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(message.size),
            "X-Raccord-Message-Id": message.id,
            "X-Raccord-Interface-Code": quote(message.interface_code, safe=""),
            "X-Raccord-Environment": message.environment.value if message.environment else "",
            "X-Raccord-Connection": quote(message.connection or "", safe=""),
            "X-Raccord-File-Name": quote(message.file_name or "", safe=""),
            "X-Raccord-Sha256": message.sha256,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature,
        }


class DeliveryService(PollingService):
    """Delivers received flows to every target; retries with backoff; dead after the limit."""

    def __init__(
        self,
        *,
        store: Store,
        catalogue: Catalogue,
        wakeups: Wakeups,
        settings: DeliverySettings,
        targets: Sequence[Target],
        clock: Callable[[], dt.datetime],
        batch: int = 50,
    ) -> None:
        super().__init__(
            name="delivery", interval=settings.poll_interval, wakeups=wakeups, keys=[DELIVER]
        )
        self._store = store
        self._catalogue = catalogue
        self._targets = list(targets)
        self._codes = list(settings.codes) or None
        self._clock = clock
        self._batch = batch
        retry = settings.retry
        self._policy = RetryPolicy(
            max_attempts=retry.max_attempts, base_delay=retry.base_delay, max_delay=retry.max_delay
        )

    async def stop(self, *, timeout: float) -> None:
        await super().stop(timeout=timeout)
        for target in self._targets:
            await target.close()

    async def cycle(self) -> float | None:
        due = await self._store.due_deliveries(codes=self._codes, limit=self._batch)
        for message in due:
            await self.deliver(message)
        if len(due) == self._batch:
            return 0.0
        upcoming = await self._store.next_delivery_at()
        if upcoming is None:
            return None
        return (upcoming - self._clock()).total_seconds()

    async def deliver(self, message: Message) -> None:
        """Every target not yet done, then `delivered`; the first failure postpones the rest."""
        code = metrics.code_label(message.interface_code, self._catalogue)
        events = await self._store.events(message.id)
        done = {e.detail.get("target") for e in events if e.kind == "handed_over"}
        payload = self._store.payload_path(message)
        for target in self._targets:
            if target.name in done:
                continue
            try:
                where = await target.deliver(message, payload)
            except DeliveryError as exc:
                await self._failed(message, exc, code)
                return
            await self._store.record_event(
                message.id, kind="handed_over", detail={"target": target.name, "to": where}
            )
            metrics.DELIVERIES.labels(target.name, code, "delivered").inc()
        await self._delivered(message)

    async def _failed(self, message: Message, exc: DeliveryError, code: str) -> None:
        updated = await self._store.record_delivery_failure(
            message.id, reason=str(exc), policy=self._policy
        )
        dead = updated.state is MessageState.DEAD
        metrics.DELIVERIES.labels(exc.target, code, "dead" if dead else "retry").inc()
        (log.error if dead else log.warning)(
            "delivery_dead" if dead else "delivery_retry_scheduled",
            message_id=message.id,
            interface_code=message.interface_code,
            target=exc.target,
            reason=exc.reason,
            attempt=updated.attempts,
            next_attempt_at=str(updated.next_attempt_at),
        )

    async def _delivered(self, message: Message) -> None:
        targets = [t.name for t in self._targets]
        try:
            await self._store.mark_delivered(message.id, detail={"targets": targets})
        except IllegalTransition as exc:  # someone else (an SFTP download…) got there first
            log.warning("delivery_superseded", message_id=message.id, state=str(exc.current))
            return
        log.info(
            "delivered",
            message_id=message.id,
            interface_code=message.interface_code,
            connection=message.connection,
            targets=targets,
        )
