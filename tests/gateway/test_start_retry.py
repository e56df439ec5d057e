"""StartRetry: a service that cannot start yet is tried again with backoff, never fatal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.metrics import SERVICE_START_FAILURES
from gateway.start_retry import StartRetry
from protocols.errors import RaccordError

_real_sleep = asyncio.sleep  # kept: one test replaces asyncio.sleep to read the delays


class Flaky:
    """Fails its first `failures` starts with `error`, then runs."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.name = f"flaky-{id(self)}"
        self._failures = failures
        self._error = error or OSError(98, "Address already in use")
        self.starts = 0
        self.running = False
        self.stopped = 0

    @property
    def ready(self) -> bool:
        return self.running

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self._failures:
            raise self._error
        self.running = True

    async def stop(self, *, timeout: float) -> None:
        del timeout
        self.running = False
        self.stopped += 1


async def _until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await _real_sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_service_that_starts_is_ready_at_once_and_stopped_with_the_wrapper() -> None:
    inner = Flaky(0)
    wrapped = StartRetry(inner, first_delay=0.01)
    await wrapped.start()
    assert (wrapped.started, wrapped.ready, inner.starts) == (True, True, 1)
    await wrapped.stop(timeout=1)
    assert (wrapped.ready, inner.stopped) == (False, 1)


@pytest.mark.parametrize("error", [OSError(98, "Address already in use"), RaccordError("no key")])
async def test_failed_starts_are_counted_and_retried_with_growing_delays(
    error: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        await _real_sleep(0)

    monkeypatch.setattr("gateway.start_retry.asyncio.sleep", sleep)
    inner = Flaky(4, error)
    failures = SERVICE_START_FAILURES.labels(service=inner.name)
    wrapped = StartRetry(inner, first_delay=1.0, max_delay=4.0)
    await wrapped.start()  # the first failure does not raise
    assert not wrapped.ready
    await _until(lambda: wrapped.ready)
    assert inner.starts == 5
    assert slept == [1.0, 2.0, 4.0, 4.0]  # doubling, capped
    assert failures._value.get() == 4
    await wrapped.stop(timeout=1)
    assert inner.stopped == 1


async def test_stop_while_retrying_ends_the_attempts_and_stops_nothing() -> None:
    inner = Flaky(10**6)
    wrapped = StartRetry(inner, first_delay=0.01, max_delay=0.01)
    await wrapped.start()
    await _until(lambda: inner.starts >= 3)
    await wrapped.stop(timeout=1)
    starts = inner.starts
    await _real_sleep(0.05)
    assert inner.starts == starts  # no attempt after stop
    assert (inner.stopped, wrapped.ready) == (0, False)


async def test_a_bug_is_raised_not_retried() -> None:
    inner = Flaky(1, TypeError("a bug"))
    wrapped = StartRetry(inner, first_delay=0.01)
    with pytest.raises(TypeError, match="a bug"):
        await wrapped.start()
    await _real_sleep(0.03)
    assert inner.starts == 1
