"""Our PeSIT requester calling AIFE's server: the TLS call, and a push (CREATE/WRITE).

A push restarts rather than starting over: the caller gives the transfer id of the first
attempt and the sync points sent since the last acknowledged one (`known`); the server answers
ACK(WRITE) with the point it holds durably and the file resumes right after it. Failures come
out as `SendError`s that say whether trying again can help.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from protocols.errors import PermanentSendError, SendError, TransientSendError
from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode
from protocols.pesit.endpoint.ports import NullObserver, Observer, Offload, Peer, to_thread
from protocols.pesit.endpoint.sending import FileSender
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.wire import Wire
from protocols.pesit.events import (
    Aborted,
    Connected,
    ConnectionClosed,
    ConnectionRefused,
    Event,
    FileClosed,
    FileDeselected,
    FileInfo,
    FileOpened,
    FileReady,
    Position,
    Released,
    RequestRefused,
    SyncPointAcknowledged,
    SyncPointSent,
    TransferEnded,
    TransferInterrupted,
    WriteStarted,
)
from protocols.pesit.requester import PesitRequester
from protocols.pesit.state import State

__all__ = [
    "PesitPermanentError",
    "PesitTransientError",
    "PushProgress",
    "PushResult",
    "call",
    "failure",
    "grid_point",
    "push",
    "sync_grid",
    "unwind",
]

# Diagnostics after which sending the same file again cannot succeed without a change.
_PERMANENT = frozenset(
    d.code
    for d in (
        Diagnostic.CHARACTERISTICS_INSUFFICIENT, Diagnostic.FILE_EXISTS, Diagnostic.FILE_NOT_FOUND,
        Diagnostic.QUOTA_EXCEEDED, Diagnostic.MESSAGE_TYPE_REFUSED, Diagnostic.ARTICLE_TOO_LONG,
        Diagnostic.LARGER_THAN_ANNOUNCED, Diagnostic.TRANSFER_REFUSED, Diagnostic.ID_UNKNOWN,
        Diagnostic.NOT_AUTHORISED, Diagnostic.VERSION_NOT_SUPPORTED,
        Diagnostic.NEGOTIATION_FAILURE, Diagnostic.PARAMETER_ERROR,
    )
)  # fmt: skip


class PesitTransientError(TransientSendError):
    """Try again later; `diagnostic` is the PeSIT code that ended the attempt, if any."""

    def __init__(self, reason: str, *, diagnostic: DiagnosticCode | None = None) -> None:
        super().__init__(reason)
        self.diagnostic = diagnostic


class PesitPermanentError(PermanentSendError):
    """Sending again cannot help until something changes (credentials, subscription, file)."""

    def __init__(self, reason: str, *, diagnostic: DiagnosticCode | None = None) -> None:
        super().__init__(reason)
        self.diagnostic = diagnostic


def failure(stage: str, diagnostic: DiagnosticCode, text: str = "") -> SendError:
    """The `SendError` for a transfer that `stage` ended with `diagnostic`."""
    known = diagnostic.known
    name = f" {known.name.lower()}" if known is not None else ""
    reason = f"PeSIT {stage} ended with {diagnostic}{name}" + (f": {text}" if text else "")
    if diagnostic in _PERMANENT:
        return PesitPermanentError(reason, diagnostic=diagnostic)
    return PesitTransientError(reason, diagnostic=diagnostic)


async def call(peer: Peer, core: PesitRequester) -> Session:
    """TLS to AIFE's server, its certificate pinned; the session is ready for `connect()`."""
    loop = asyncio.get_running_loop()
    try:
        _, wire = await asyncio.wait_for(
            loop.create_connection(
                Wire,
                peer.host,
                peer.port,
                ssl=peer.ssl_context,
                ssl_handshake_timeout=peer.connect_timeout,
            ),
            peer.connect_timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise PesitPermanentError(f"AIFE's TLS certificate refused: {exc.verify_message}") from exc
    except (OSError, TimeoutError, EOFError) as exc:  # ssl.SSLError is an OSError
        raise PesitTransientError(
            f"cannot reach {peer.host}:{peer.port}: {exc or type(exc).__name__}"
        ) from exc
    if wire.peer_certificate() not in peer.pins:
        await wire.close()
        raise PesitPermanentError(
            f"the server at {peer.host}:{peer.port} is not this connection's partner certificate"
        )
    return Session(core, wire)


def unwind(core: PesitRequester, now: float) -> None:
    """After a transfer or a refusal: close what is open, one request per answer, then RELEASE."""
    if core.state is State.OF02:
        core.close_file(now=now)
    elif core.state is State.SF03:
        core.deselect(now=now)
    elif core.state is State.CN03:
        core.release(now=now)
    elif core.state is not State.CLOSED:
        core.abort(Diagnostic.PROTOCOL_ERROR, now=now)


@dataclass(frozen=True, slots=True)
class PushResult:
    transfer_id: int
    byte_count: int
    resumed_from: Position


@dataclass
class PushProgress:
    """What a broken push leaves for its restart: the sync points sent since the last one
    acknowledged, and whether every point fell where `grid_point` says it does."""

    points: list[Position] = field(default_factory=list)
    on_grid: bool = True


def grid_point(point: int, *, article_size: int, interval_kb: int) -> Position:
    """Where the core puts SYN `point` in a file cut into `article_size`-byte articles.

    A SYN goes between articles as soon as one more would cross the interval, so with
    full-size articles the points fall every `interval // article_size` articles (at least
    one). A restart after a crash uses this grid: a wrong guess cannot corrupt the file, the
    byte counts of TRANS.END would not match and the server would not keep it.
    """
    per = max(1, interval_kb * 1024 // article_size)
    return Position(point, point * per * article_size, point * per)


def sync_grid(size: int, *, article_size: int, interval_kb: int) -> list[Position]:
    """Every grid point strictly inside a file of `size` bytes."""
    if not interval_kb or article_size < 1:
        return []
    step = grid_point(1, article_size=article_size, interval_kb=interval_kb).byte_offset
    return [
        grid_point(k, article_size=article_size, interval_kb=interval_kb)
        for k in range(1, (size - 1) // step + 1)
    ]


class _PushApp:
    """The events of one push, from CONNECT to RELEASE."""

    def __init__(
        self,
        session: Session,
        core: PesitRequester,
        *,
        path: Path,
        file: FileInfo,
        known: Sequence[Position],
        grid: bool,
        offload: Offload,
        observer: Observer,
        progress: PushProgress,
    ) -> None:
        self._session = session
        self._core = core
        self._path = path
        self._file = file
        self._known = known
        self._grid = grid
        self._interval = 0
        self._offload = offload
        self._observer = observer
        self._progress = progress
        self._sender: FileSender | None = None
        self._start = Position()
        self.result: PushResult | None = None
        self.error: SendError | None = None

    async def on_event(self, event: Event) -> None:  # noqa: PLR0912 - one dispatch table
        core, now = self._core, self._session.now()
        match event:
            case Connected(sync_interval_kb=interval):
                self._interval = interval
                core.create(self._file, now=now)
            case FileReady(file=file):
                self._file = file
                core.open_file(now=now)
            case FileOpened():
                core.write(known=self._restart_points(), now=now)
            case WriteStarted(position=position):
                self._start = position
                self._sender = FileSender(
                    self._session,
                    self._path,
                    start=position,
                    article_size=self._file.article_size,
                    offload=self._offload,
                    on_end=lambda: core.end_data(now=self._session.now()),
                )
                self._sender.begin()
            case SyncPointSent(position=position):
                self._sent(position)
            case SyncPointAcknowledged(position=position):
                self._observer.sync_point("received")
                progress = self._progress
                progress.points = [p for p in progress.points if p.point >= position.point]
                if self._sender is not None:
                    self._sender.acknowledged()
            case TransferEnded(diagnostic=code, byte_count=count) if code.ok:
                self.result = PushResult(self._file.transfer_id, count, self._start)
                unwind(core, now)
            case ConnectionRefused(diagnostic=code, text=text):
                self._fail("CONNECT", code, text)
            case RequestRefused(request=request, diagnostic=code, text=text):
                self._fail(request.name, code, text)
                unwind(core, now)
            case TransferEnded(diagnostic=code) | TransferInterrupted(diagnostic=code):
                self._stop_sending()
                self._fail("transfer", code)
                unwind(core, now)
            case FileClosed() | FileDeselected():
                unwind(core, now)
            case Aborted(diagnostic=code, text=text):
                self._stop_sending()
                self._fail("connection", code, text)
            case ConnectionClosed(reason=reason) if self.error is None and self.result is None:
                self.error = PesitTransientError(f"PeSIT connection closed: {reason}")
            case Released():
                pass
            case _:
                pass

    def _restart_points(self) -> list[Position]:
        """Points a restart may resume after: those of the journal, and the grid's."""
        points = {p.point: p for p in self._known}
        if self._grid and self._file.restart:
            size = self._path.stat().st_size
            article, interval = self._file.article_size, self._interval
            for position in sync_grid(size, article_size=article, interval_kb=interval):
                points.setdefault(position.point, position)
        return list(points.values())

    def _sent(self, position: Position) -> None:
        self._progress.points.append(position)
        expected = grid_point(
            position.point, article_size=self._file.article_size, interval_kb=self._interval
        )
        if position != expected:
            self._progress.on_grid = False

    def _stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.stop()

    def _fail(self, stage: str, code: DiagnosticCode, text: str = "") -> None:
        if not code.ok:
            self._observer.diagnostic("received", code)
        if self.error is None and self.result is None:
            self.error = failure(stage, code, text)


async def push(
    peer: Peer,
    path: Path,
    *,
    file: FileInfo,
    known: Sequence[Position] = (),
    grid: bool = False,
    offload: Offload = to_thread,
    observer: Observer | None = None,
    progress: PushProgress | None = None,
) -> PushResult:
    """Push `path` as `file` (PI 12, PI 13, restart flag…); raises a `SendError` on failure.

    A restart (`file.restart`) offers the server `known` sync points, plus those of the
    grid if `grid`; `progress` is left with what the next restart needs if this one breaks.
    """
    observer = observer or NullObserver()
    core = PesitRequester(peer.settings)
    session = await call(peer, core)
    app = _PushApp(
        session,
        core,
        path=path,
        file=file,
        known=known,
        grid=grid,
        offload=offload,
        observer=observer,
        progress=progress if progress is not None else PushProgress(),
    )
    log: Any = structlog.get_logger(module=__name__).bind(connection=peer.connection)
    observer.session("requester", 1)
    try:
        core.connect(now=session.now())
        await session.run(app.on_event)
    finally:
        observer.session("requester", -1)
    if app.result is not None:
        log.info("pesit.pushed", transfer_id=app.result.transfer_id, size=app.result.byte_count)
        return app.result
    raise app.error or PesitTransientError("PeSIT connection ended before the transfer did")
