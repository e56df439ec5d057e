"""The one door to the worker pool: blocking crypto, parsing and fsync stay off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from gateway.logging import get_logger

P = ParamSpec("P")
T = TypeVar("T")
JOB_THREADS = 8

_executor: ThreadPoolExecutor | None = None
_log = get_logger("gateway.offload")


class _Jobs:
    """Jobs that report through a channel of their own, run by a few threads: a queue in,
    nothing out. The executor would make a future, a condition and a work item for each,
    and take its locks twice, for an answer nobody reads (about 30 microseconds a job)."""

    def __init__(self, threads: int) -> None:
        self._size = threads
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, call: Callable[[], object]) -> None:
        with self._lock:  # a job is never queued behind the threads' stop signals
            if self._closed:
                raise RuntimeError("cannot start a job after shutdown")
            while len(self._threads) < self._size:  # started on first use
                name = f"raccord-job-{len(self._threads)}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
            self._queue.put(call)

    def _serve(self) -> None:
        while (call := self._queue.get()) is not None:
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - a job reports its own outcome; log the rest
                _log.error("offload.job_failed", error=f"{type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        """Let queued jobs finish, then stop the threads."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            thread.join()


_jobs = _Jobs(JOB_THREADS)


def _forget_jobs() -> None:
    global _jobs  # noqa: PLW0603 - a forked child has none of its parent's threads
    _jobs = _Jobs(JOB_THREADS)


os.register_at_fork(after_in_child=_forget_jobs)


def _pool() -> ThreadPoolExecutor:
    global _executor  # noqa: PLW0603 - one lazily created pool per process
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="raccord-offload")
    return _executor


async def run_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `func` in the worker pool, keeping the caller's context variables (log binding)."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, func, *args, **kwargs)
    return await loop.run_in_executor(_pool(), call)


def start_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Start `func` in a job thread without awaiting it (context kept, like `run_blocking`).

    For a job that reports through another channel (a future it resolves itself): the
    caller's loop is not woken once more just to learn that the job has returned, and no
    future is made for it. What it raises is logged (`offload.job_failed`).
    """
    ctx = contextvars.copy_context()
    _jobs.submit(functools.partial(ctx.run, func, *args, **kwargs))


def shutdown() -> None:
    """Stop the pool and the job threads after in-flight work finished (daemon shutdown)."""
    global _executor, _jobs  # noqa: PLW0603
    if _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None
    jobs, _jobs = _jobs, _Jobs(JOB_THREADS)
    jobs.shutdown()


async def read_blocks(path: Path, *, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A file streamed in `size` blocks, each read in the worker pool (never on the loop)."""
    with path.open("rb") as handle:
        while block := await run_blocking(handle.read, size):
            yield block
