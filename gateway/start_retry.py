"""A service that fails to start is tried again, instead of staying down until a reload.

A listener's port may still be held when the daemon starts (the previous process draining, a
neighbour restarting) and a key file may be mounted late. The daemon and the SFTP plug wrap
every service in `StartRetry`: the failure is logged with its reason and counted, readiness
stays false (so `/readyz` tells the operator), the other services run, and new attempts follow
with exponential backoff until one succeeds or the service is stopped. Errors other than
`OSError` and `RaccordError` are bugs and are raised as before.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.logging import get_logger
from gateway.metrics import SERVICE_START_FAILURES
from gateway.services import Service
from protocols.errors import RaccordError

log = get_logger(__name__)

FIRST_DELAY = 1.0  # seconds before the second attempt
MAX_DELAY = 60.0  # the backoff stops growing here


class StartRetry:
    """`inner`, started now if it can be, else again and again in the background."""

    def __init__(
        self, inner: Service, *, first_delay: float | None = None, max_delay: float | None = None
    ) -> None:
        self.inner = inner
        self._first_delay = FIRST_DELAY if first_delay is None else first_delay
        self._max_delay = MAX_DELAY if max_delay is None else max_delay
        self._started = False
        self._retrying: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def started(self) -> bool:
        """The inner service's `start` has succeeded (it may be retrying until then)."""
        return self._started

    @property
    def ready(self) -> bool:
        return self._started and self.inner.ready

    async def start(self) -> None:
        """One attempt now; when it fails, retries go on in a task of their own."""
        if await self._attempt(1, retry_in=self._first_delay):
            return
        self._retrying = asyncio.create_task(self._retry(), name=f"start-retry {self.name}")

    async def _attempt(self, attempt: int, *, retry_in: float) -> bool:
        try:
            await self.inner.start()
        except (OSError, RaccordError) as exc:
            SERVICE_START_FAILURES.labels(service=self.name).inc()
            log.warning(
                "service_start_failed",
                service=self.name,
                attempt=attempt,
                reason=str(exc),
                error=type(exc).__name__,
                retry_in=retry_in,
            )
            return False
        self._started = True
        if attempt > 1:
            log.info("service_started_after_retry", service=self.name, attempts=attempt)
        return True

    async def _retry(self) -> None:
        delay, attempt = self._first_delay, 1
        while True:
            await asyncio.sleep(delay)
            attempt += 1
            delay = min(delay * 2, self._max_delay)
            if await self._attempt(attempt, retry_in=delay):
                return

    async def stop(self, *, timeout: float) -> None:
        """No more attempts; the inner service is stopped if it had started."""
        retrying, self._retrying = self._retrying, None
        if retrying is not None:
            retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrying
        if self._started:
            self._started = False
            await self.inner.stop(timeout=timeout)
