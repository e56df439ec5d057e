"""The outbox: one worker per connection takes due messages, sends them, records the outcome.

A claimed message is SENDING in the store before a byte leaves; the outcome (sent, acknowledged,
retry later, dead, rejected) is recorded after. A crash in between leaves it SENDING, and
`Store.recover()` at start-up queues it again: the same message id goes out again, which lets
the peer recognise a repeat (at-least-once on the wire, exactly-once in the record).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.errors import RaccordError
from gateway.logging import get_logger
from gateway.metrics import DEAD_LETTERS, OUTBOX_OLDEST_AGE, OUTBOX_PENDING, RETRIES
from gateway.model import MessageState
from gateway.offload import run_blocking
from gateway.store import Message, RetryPolicy, Store, backoff_delay
from protocols.errors import PermanentSendError, SendError, TransientSendError

__all__ = [
    "OutboxWorker",
    "PermanentSendError",
    "RetryPolicy",
    "SendError",
    "SendResult",
    "Sender",
    "TransientSendError",
    "backoff_delay",
]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a sender reports: the id the peer knows the transfer by, and whether it confirmed."""

    peer_message_id: str | None
    acknowledged: bool
    detail: Mapping[str, object] = field(default_factory=dict)


class Sender(Protocol):
    """One connection's protocol client, as the outbox sees it."""

    async def send(self, message: Message, payload: Path) -> SendResult: ...


class OutboxWorker:
    """Sends one connection's due messages, one at a time, until stopped.

    One message is claimed at a time so that stopping never strands claimed-but-unsent work.
    `notify()` wakes the worker when the router queues something; otherwise it polls.
    """

    def __init__(
        self,
        store: Store,
        sender: Sender,
        *,
        connection: str,
        policy: RetryPolicy | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        self._store = store
        self._sender = sender
        self._connection = connection
        self._policy = policy if policy is not None else RetryPolicy()
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger("gateway.outbox").bind(connection=connection)

    @property
    def connection(self) -> str:
        return self._connection

    def notify(self) -> None:
        """New work was routed to this connection: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Run the loop in a task owned by the worker."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=f"outbox-{self._connection}")

    async def stop(self, *, grace: float = 30.0) -> None:
        """Let the in-flight send finish (up to `grace` seconds), then end; cancel it after.

        A send cancelled here stays SENDING in the store and is queued again by `recover()`.
        """
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            self._log.warning("outbox.stop_grace_expired", grace=grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Claim, send, record; sleep when idle. Never dies on a failed cycle."""
        while not self._stopping:
            self._wake.clear()
            busy = False
            try:
                busy = await self.run_once()
                await self.refresh_gauges()
            except RaccordError as exc:
                self._log.error("outbox.cycle_failed", reason=str(exc), error=type(exc).__name__)
            except Exception:  # noqa: BLE001 - a bug must not stop the connection's outbox
                self._log.exception("outbox.cycle_crashed")
            if not busy and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)

    async def run_once(self) -> bool:
        """Claim and deliver at most one due message; False when nothing was due."""
        claimed = await self._store.claim_due(connection=self._connection, limit=1)
        if not claimed:
            return False
        await self._deliver(claimed[0])
        return True

    async def refresh_gauges(self) -> None:
        """Publish this connection's outbox depth and oldest age."""
        pending, age = (await self._store.outbox_stats()).get(self._connection, (0, 0.0))
        OUTBOX_PENDING.labels(connection=self._connection).set(pending)
        OUTBOX_OLDEST_AGE.labels(connection=self._connection).set(age)

    async def _deliver(self, message: Message) -> None:
        log = self._log.bind(message_id=message.id, interface_code=message.interface_code)
        payload = self._store.payload_path(message)
        if not await run_blocking(payload.is_file):
            await self._fail(message, "payload file is missing from the store", retryable=False)
            return
        try:
            result = await self._sender.send(message, payload)
        except PermanentSendError as exc:
            await self._fail(message, exc.reason, retryable=False)
        except (TransientSendError, OSError) as exc:
            await self._fail(message, str(exc) or type(exc).__name__, retryable=True)
        except Exception as exc:  # a sender bug is retried, then dead, never lost
            log.exception("outbox.sender_crashed")
            await self._fail(message, f"unexpected {type(exc).__name__}: {exc}", retryable=True)
        else:
            await self._store.record_sent(
                message.id,
                peer_message_id=result.peer_message_id,
                awaiting_ack=not result.acknowledged,
                detail=result.detail,
            )
            log.info("outbox.sent", attempt=message.attempts, acknowledged=result.acknowledged)

    async def _fail(self, message: Message, reason: str, *, retryable: bool) -> None:
        updated = await self._store.record_failure(
            message.id, reason=reason, retryable=retryable, policy=self._policy
        )
        log = self._log.bind(message_id=message.id, attempt=message.attempts, reason=reason)
        if updated.state is MessageState.QUEUED:
            RETRIES.labels(connection=self._connection).inc()
            log.warning("outbox.retry_scheduled", next_attempt_at=str(updated.next_attempt_at))
        elif updated.state is MessageState.DEAD:
            DEAD_LETTERS.labels(connection=self._connection).inc()
            log.error("outbox.dead")
        else:
            log.error("outbox.rejected")
