"""The loop the intake workers share: run a cycle, sleep until woken or due, stop cleanly.

A cycle that fails is logged and the loop goes on after its interval: one bad file or one
unreachable webhook must never stop the drop folder, correlation or delivery for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from gateway.errors import RaccordError
from gateway.logging import get_logger
from gateway.wakeups import Wakeups

log = get_logger(__name__)


class PollingService:
    """A `gateway.services.Service` running `cycle()` in its own task until stopped."""

    def __init__(
        self,
        *,
        name: str,
        interval: float,
        wakeups: Wakeups | None = None,
        keys: Sequence[str] = (),
    ) -> None:
        self._name = name
        self._interval = interval
        self._wakeups = wakeups
        self._keys = tuple(keys)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unregister: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    def notify(self) -> None:
        """Work arrived: run a cycle now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._wakeups is not None:
            self._unregister = [self._wakeups.register(k, self.notify) for k in self._keys]
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, *, timeout: float) -> None:
        """Let the cycle in progress finish (up to `timeout`), then cancel it."""
        for unregister in self._unregister:
            unregister()
        self._unregister = []
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("service_stop_timeout", service=self._name, timeout=timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def cycle(self) -> float | None:
        """One pass; returns seconds until the next one is due (None: the poll interval)."""
        raise NotImplementedError

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            delay: float | None = None
            try:
                delay = await self.cycle()
            except RaccordError as exc:
                log.error("cycle_failed", service=self._name, reason=str(exc))
            except Exception:  # a bug must not stop intake or delivery for good
                log.exception("cycle_crashed", service=self._name)
            wait = self._interval if delay is None else min(max(delay, 0.0), self._interval)
            if self._stopping or wait == 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
