"""The one door to the worker pool: blocking crypto, parsing and fsync stay off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


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


def start_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Start `func` in the worker pool without awaiting it (context kept, like `run_blocking`).

    For a job that reports through another channel (a future it resolves itself): the
    caller's loop is not woken once more just to learn that the job has returned.
    """
    ctx = contextvars.copy_context()
    return _pool().submit(functools.partial(ctx.run, func, *args, **kwargs))


def shutdown() -> None:
    """Stop the pool after in-flight work finished (daemon shutdown)."""
    global _executor  # noqa: PLW0603
    if _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None


async def read_blocks(path: Path, *, size: int = 1 << 20) -> AsyncIterator[bytes]:
    """A file streamed in `size` blocks, each read in the worker pool (never on the loop)."""
    with path.open("rb") as handle:
        while block := await run_blocking(handle.read, size):
            yield block
