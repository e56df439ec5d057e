"""A push that survives a broken connection or a gateway restart: the outbox's PeSIT send.

Before CREATE names a transfer id, the id is in the connection's `Journal`; when an attempt
breaks, the journal gets the sync points sent since the last acknowledged one. The next attempt
sends CREATE with PI 15 = 1 and the same PI 13: the server answers with its last durable point
and only the rest of the file travels again. When the file is refused for good, or resuming
cannot work, the journal is cleared and the next attempt starts over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from protocols.errors import PermanentSendError, SendError
from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint.ports import Observer, Offload, Peer, to_thread
from protocols.pesit.endpoint.requester import (
    PesitTransientError,
    PushProgress,
    PushResult,
    push,
)
from protocols.pesit.endpoint.spool import Journal, PushCheckpoint
from protocols.pesit.events import FileInfo

__all__ = ["send_resumable", "transfer_id_for"]

Describe = Callable[[int, bool], FileInfo]  # (transfer id, restart) -> what CREATE announces
Started = Callable[[int, bool, int], Awaitable[None]]  # (transfer id, restart, known points)


_START_OVER = frozenset(
    d.code
    for d in (
        Diagnostic.RESTART_NEGOTIATION_FAILED,  # the server held none of our points
        Diagnostic.WRONG_COUNTS,  # we resumed at the wrong byte: the server kept nothing
        Diagnostic.LARGER_THAN_ANNOUNCED,
    )
)


def transfer_id_for(key: str) -> int:
    """PI 13 of the push of `key` (our message id): the same on every attempt, so the server
    recognises a resend as the transfer it already took (with the same PI 12 and PI 51) even
    when our journal of it is gone: a crash after `send_resumable` cleared it, before the
    outbox recorded the send. No likelier to collide than a random id of the same width."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:3], "big") % 0xFFFFFE + 1


def _start_over(exc: SendError) -> bool:
    """Forget the restart: the file was refused, or resuming it cannot work."""
    if isinstance(exc, PermanentSendError):
        return True
    return isinstance(exc, PesitTransientError) and exc.diagnostic in _START_OVER


async def send_resumable(
    peer: Peer,
    path: Path,
    *,
    key: str,
    size: int,
    describe: Describe,
    journal: Journal,
    started: Started,
    offload: Offload = to_thread,
    observer: Observer | None = None,
) -> PushResult:
    """Push `path` (`size` bytes) for the message `key`, resuming an earlier attempt if any.

    The journal is written twice at most per attempt: the transfer id before CREATE names
    it, and the points sent since the last acknowledged one when the attempt breaks. After
    a crash (no second write), the restart offers the grid of `grid_point`.
    """
    checkpoint = await offload(journal.load, key)
    if checkpoint is not None and checkpoint.size != size:
        checkpoint = None
    if checkpoint is None:
        checkpoint = PushCheckpoint(transfer_id_for(key), size)
        await offload(journal.save, key, checkpoint)  # durable before CREATE names the id
        restart = False
    else:
        restart = True
    known = checkpoint.positions
    await started(checkpoint.transfer_id, restart, len(known))
    progress = PushProgress()
    try:
        result = await push(
            peer, path, file=describe(checkpoint.transfer_id, restart), known=known,
            grid=checkpoint.on_grid, offload=offload, observer=observer, progress=progress,
        )  # fmt: skip
    except SendError as exc:
        if _start_over(exc):
            await offload(journal.clear, key)
        else:
            points = {p.point: p for p in (*known, *progress.points)}
            kept = replace(
                checkpoint,
                positions=tuple(points[n] for n in sorted(points)),
                on_grid=checkpoint.on_grid and progress.on_grid,
            )
            await offload(journal.save, key, kept)
        raise
    await offload(journal.clear, key)
    return result
