"""The long-running PeSIT services of one connection: outbox sender, outbox worker, puller.

`PesitSender` is the outbox's `Sender` (push to AIFE, restarting where it broke);
`OutboxService` runs the connection's outbox worker, woken by the router; `PullService` polls
AIFE's server for return flows when the sheet asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from gateway.config import ConnectionConfig
from gateway.errors import ConnectionStateError, RaccordError
from gateway.logging import get_logger
from gateway.offload import run_blocking
from gateway.outbox import OutboxWorker, SendResult
from gateway.pesit_answers import MetricsObserver
from gateway.services import GatewayContext
from gateway.settings.pesit import PesitSettings
from gateway.store import Message, RetryPolicy
from protocols.errors import TransientSendError
from protocols.pesit.endpoint import Journal, Peer, Spool, pull
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.ports import bare_name
from protocols.pesit.endpoint.serving import pesit_date
from protocols.pesit.events import FileInfo

log = get_logger(__name__)
__all__ = ["OutboxService", "PesitSender", "PullService"]


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
