"""Pulling return flows from AIFE's server: SELECT/READ each PI 12 until nothing is left.

Each file is spooled under `pull-<code>` exactly like a push we receive: ACK(SYN) once durable,
the whole file to the inbox port (direction reception), and only then TRANS.END. A pull cut in
the middle leaves its spool; the next poll SELECTs it again with PI 15 = 1 and the server's
transfer id, and READs from the last durable sync point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.endpoint.ports import (
    NullObserver,
    Observer,
    Offload,
    Peer,
    diagnostic_for,
    to_thread,
)
from protocols.pesit.endpoint.receiving import Receiver
from protocols.pesit.endpoint.requester import PesitTransientError, call, failure, unwind
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.spool import PartialFile, Spool, SpoolMeta
from protocols.pesit.events import (
    Aborted,
    ArticleReceived,
    Connected,
    ConnectionRefused,
    DataEnded,
    Event,
    FileClosed,
    FileDeselected,
    FileInfo,
    FileOpened,
    FileReady,
    ReadStarted,
    RequestRefused,
    SyncPointReached,
    TransferEnded,
    TransferInterrupted,
)
from protocols.pesit.fpdu import FpduType
from protocols.pesit.requester import PesitRequester
from protocols.ports import Accepted, InboxPort, RefusalKind, TransferRefused

__all__ = ["pull"]

END_ERROR, END_CANCELLED = 4, 12


@dataclass
class _Current:
    code: str
    name: str
    key: str
    restarting: bool
    partial: PartialFile | None = None
    receiver: Receiver | None = None
    accepted: str | None = None  # the message id, once the inbox took the file


class _PullApp:
    """Empties AIFE's queue of each PI 12 in turn, one SELECT after another."""

    def __init__(
        self,
        session: Session,
        core: PesitRequester,
        *,
        connection: str,
        names: Mapping[str, str],
        spool: Spool,
        inbox: InboxPort,
        max_size: int,
        offload: Offload,
        observer: Observer,
    ) -> None:
        self._session = session
        self._core = core
        self._connection = connection
        self._queue = list(names.items())  # (interface code, PI 12)
        self._spool = spool
        self._inbox = inbox
        self._max_size = max_size
        self._offload = offload
        self._observer = observer
        self._current: _Current | None = None
        self.accepted: list[Accepted] = []
        self.error: PesitTransientError | None = None
        self._log: Any = structlog.get_logger(module=__name__).bind(connection=connection)

    def _now(self) -> float:
        return self._session.now()

    async def on_event(self, event: Event) -> None:  # noqa: PLR0912 - one dispatch table
        current = self._current
        match event:
            case Connected() | FileDeselected():
                await self._select_next()
            case RequestRefused(request=FpduType.SELECT, diagnostic=code) if current:
                await self._select_refused(current, code.code)
            case RequestRefused(request=request, diagnostic=code, text=text):
                self._observer.diagnostic("received", code)
                self._log.warning("pesit.pull_refused", request=request.name, reason=text)
                await self._abandon()
                unwind(self._core, self._now())
            case FileReady(file=file) if current:
                await self._open(current, file)
            case FileOpened() if current and current.partial:
                self._core.read(resume=current.partial.durable, now=self._now())
            case ReadStarted() if current and current.partial:
                current.receiver = Receiver(
                    self._session,
                    current.partial,
                    offload=self._offload,
                    on_durable=lambda _: self._observer.sync_point("sent"),
                    on_failure=lambda _: self._interrupt(Diagnostic.IO_ERROR, END_ERROR),
                )
            case ArticleReceived(data=data) if current and current.receiver:
                await current.receiver.article(data)
                if current.receiver.size > self._max_size:
                    self._observer.refused(RefusalKind.TOO_LARGE)
                    self._interrupt(Diagnostic.QUOTA_EXCEEDED, END_CANCELLED)
            case SyncPointReached(position=position) if current and current.receiver:
                current.receiver.sync_point(position)
            case DataEnded(diagnostic=code) if current:
                if code.ok:
                    self._session.spawn(self._complete(current), name="pesit-pulled")
                else:
                    self._interrupt(Diagnostic.ABNORMAL_END, END_ERROR)
            case TransferEnded() | TransferInterrupted():
                await self._settle(event)
                unwind(self._core, self._now())
            case FileClosed():
                unwind(self._core, self._now())
            case ConnectionRefused(diagnostic=code, text=text):
                self.error = PesitTransientError(str(failure("CONNECT", code, text)))
            case Aborted(diagnostic=code, text=text):
                self.error = PesitTransientError(str(failure("connection", code, text)))
                await self.close()
            case _:
                pass

    async def _select_next(self) -> None:
        if not self._queue:
            self._core.release(now=self._now())
            return
        code, name = self._queue[0]
        key = f"pull-{code}"
        meta = await self._offload(self._spool.peek, key)
        restarting = meta is not None
        transfer_id = meta.transfer_id if meta is not None else 0
        self._current = _Current(code, name, key, restarting)
        file = FileInfo(file_name=name, transfer_id=transfer_id, restart=restarting)
        self._core.select(file, now=self._now())

    async def _select_refused(self, current: _Current, code: int) -> None:
        if current.restarting:  # the server forgot the transfer: ask afresh
            await self._offload(self._spool.discard, current.key)
        elif code == Diagnostic.FILE_NOT_FOUND.value:
            self._queue.pop(0)  # nothing (more) under this name
        else:
            self._log.warning("pesit.pull_select_refused", interface_code=current.code, code=code)
            self._queue.pop(0)
        self._current = None
        await self._select_next()

    async def _open(self, current: _Current, file: FileInfo) -> None:
        meta = SpoolMeta(
            transfer_id=file.transfer_id,
            file_name=current.name,
            interface_code=current.code,
            started=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
            created=file.created,
            label=file.label,
        )
        partial = None
        if current.restarting:
            partial = await self._offload(self._spool.resume, current.key, meta)
        if partial is None:
            partial = await self._offload(self._spool.create, current.key, meta)
        current.partial = partial
        self._core.open_file(now=self._now())

    def _interrupt(self, diagnostic: Diagnostic, end_code: int) -> None:
        try:
            self._core.interrupt(diagnostic=diagnostic, end_code=end_code, now=self._now())
        except PesitLocalError:
            return
        self._observer.diagnostic("sent", diagnostic.code)
        self._session.poke()

    async def _complete(self, current: _Current) -> None:
        """Durable spool, then the inbox, then TRANS.END (the server's ACK settles it)."""
        assert current.receiver is not None
        assert current.partial is not None
        try:
            await current.receiver.finish()
        except OSError:
            return
        incoming = current.receiver.incoming(connection=self._connection, code=current.code)
        try:
            accepted = await current.receiver.hand_over(self._inbox, incoming)
        except TransferRefused as refusal:
            self._observer.refused(refusal.kind)
            self._log.warning("pesit.pull_refused", kind=refusal.kind.value, reason=refusal.reason)
            transient = refusal.kind is RefusalKind.UNAVAILABLE
            self._interrupt(diagnostic_for(refusal), END_ERROR if transient else END_CANCELLED)
            return
        self.accepted.append(accepted)
        current.accepted = accepted.message_id
        self._core.confirm_end(now=self._now())
        self._session.poke()
        self._log.info("pesit.pulled", message_id=accepted.message_id, interface_code=current.code)

    async def _settle(self, event: TransferEnded | TransferInterrupted) -> None:
        """The transfer is over: a finished (or refused) file leaves the spool."""
        current, self._current = self._current, None
        if current is None:
            return
        if current.receiver is not None:
            await current.receiver.close()
        elif current.partial is not None:
            await self._offload(current.partial.close)
        keep = isinstance(event, TransferInterrupted) and event.end_code == END_ERROR
        if not keep:
            await self._offload(self._spool.discard, current.key)
        if isinstance(event, TransferEnded) and not event.diagnostic.ok and current.accepted:
            self._log.error(
                "pesit.pulled_then_refused",
                message_id=current.accepted,
                diagnostic=str(event.diagnostic),
            )
        if isinstance(event, TransferInterrupted) or not event.diagnostic.ok:
            self._queue.pop(0)  # do not loop on a file that cannot be taken now

    async def _abandon(self) -> None:
        """ORF or READ refused: start this file afresh at the next poll, try the next name."""
        current = self._current
        await self.close()
        if current is not None:
            await self._offload(self._spool.discard, current.key)
            self._queue.pop(0)

    async def close(self) -> None:
        """The session ended: keep an unfinished spool for the next poll."""
        current, self._current = self._current, None
        if current is not None and current.receiver is not None:
            await current.receiver.close()
        elif current is not None and current.partial is not None:
            await self._offload(current.partial.close)


async def pull(
    peer: Peer,
    *,
    names: Mapping[str, str],
    spool: Spool,
    inbox: InboxPort,
    max_size: int,
    offload: Offload = to_thread,
    observer: Observer | None = None,
) -> list[Accepted]:
    """Fetch every file AIFE holds under each PI 12 of `names` (interface code -> PI 12)."""
    observer = observer or NullObserver()
    core = PesitRequester(peer.settings)
    session = await call(peer, core)
    app = _PullApp(
        session,
        core,
        connection=peer.connection,
        names=names,
        spool=spool,
        inbox=inbox,
        max_size=max_size,
        offload=offload,
        observer=observer,
    )
    observer.session("requester", 1)
    try:
        core.connect(now=session.now())
        await session.run(app.on_event)
    finally:
        observer.session("requester", -1)
        await app.close()
    if app.error is not None:
        if not app.accepted:
            raise app.error
        structlog.get_logger(module=__name__).warning(
            "pesit.pull_cut", connection=peer.connection, reason=str(app.error)
        )
    return app.accepted
