"""Periodic duties of the daemon: certificate expiry and CRL due-date gauges and warnings,
outbox gauges, and connection statuses an operator recorded with the CLI while the daemon
runs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from gateway import metrics
from gateway.logging import get_logger
from gateway.services import GatewayContext

log = get_logger(__name__)
EXPIRY_WARNING = dt.timedelta(days=30)


class Housekeeping:
    """A service that wakes every `interval` seconds; its first tick runs at start."""

    name = "housekeeping"

    def __init__(self, context: GatewayContext, *, interval: float = 15.0) -> None:
        self._context = context
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str, dt.date]] = set()

    @property
    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self.tick()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, *, timeout: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - housekeeping must outlive one bad tick
                log.error("housekeeping_failed", error=repr(exc))

    async def tick(self) -> None:
        """Refresh gauges and warn about certificates close to expiry (once a day each)."""
        now = self._context.clock()
        for name, creds in self._context.credentials.items():
            for role, not_after in creds.expiries().items():
                metrics.CERT_EXPIRY.labels(name, role).set(not_after.timestamp())
                if not_after - now <= EXPIRY_WARNING:
                    key = (name, role, now.date())
                    if key not in self._warned:
                        self._warned.add(key)
                        log.warning(
                            "certificate_expiring" if not_after > now else "certificate_expired",
                            connection=name,
                            role=role,
                            not_after=not_after.isoformat(),
                            days_left=(not_after - now).days,
                        )
        self._crls(now)
        store = self._context.store
        registry = self._context.registry
        statuses = {v.config.name: await store.connection_status(v.config.name) for v in registry}
        for name in registry.refresh(statuses):
            log.info(
                "connection_status_changed", connection=name, status=registry.get(name).status.value
            )
        stats = await store.outbox_stats()
        for view in self._context.registry:
            pending, oldest = stats.get(view.config.name, (0, 0.0))
            metrics.OUTBOX_PENDING.labels(view.config.name).set(pending)
            metrics.OUTBOX_OLDEST_AGE.labels(view.config.name).set(oldest)

    def _crls(self, now: dt.datetime) -> None:
        """Each CRL's due date as a gauge; one whose date has passed is warned about daily:
        revocations since then are unknown until the PKI's tooling fetches a new list."""
        metrics.CRL_NEXT_UPDATE.clear()  # a CRL dropped by a reload leaves no series behind
        for source, due in self._context.credentials.revocations.next_updates().items():
            if due is None:
                continue
            metrics.CRL_NEXT_UPDATE.labels(source).set(due.timestamp())
            key = (source, "crl", now.date())
            if now > due and key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "crl_stale",
                    crl=source,
                    next_update=due.isoformat(),
                    days_late=(now - due).days,
                )
