"""Our PeSIT server's application: what one authenticated session of AIFE may do.

AIFE is authenticated three times before a byte of a file is taken: by its TLS certificate (the
listener), by the pre-connection when the connection uses one, and by PI 3 + PI 5 in CONNECT.
A push (CREATE/WRITE) is spooled, acknowledged sync point by sync point once durable, and
handed whole to the inbox port between TRANS.END and its ACK. A pull (SELECT/READ) serves the
oldest flow waiting for this connection under that PI 12, marked delivered once TRANS.END is
answered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import structlog

from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode, PesitLocalError
from protocols.pesit.endpoint.ports import (
    Admission,
    Observer,
    Offload,
    OutgoingFiles,
    ServerProfile,
    diagnostic_for,
)
from protocols.pesit.endpoint.receiving import Receiver
from protocols.pesit.endpoint.serving import PullServing, ServerShared
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.spool import PartialFile, Spool, SpoolMeta
from protocols.pesit.events import (
    Aborted,
    ArticleReceived,
    ConnectionRefused,
    ConnectionRequested,
    CreateRequested,
    DataEnded,
    Event,
    FileInfo,
    Position,
    PreConnectionRequested,
    ReadRequested,
    SelectRequested,
    SyncPointAcknowledged,
    SyncPointReached,
    SyncPointSent,
    TransferEnded,
    TransferInterrupted,
    WriteStarted,
)
from protocols.pesit.server import PesitServer
from protocols.pesit.state import State
from protocols.ports import InboxPort, RefusalKind, TransferRefused

__all__ = ["ServerApp"]

END_ERROR, END_CANCELLED = 4, 12  # PI 19: a restart may follow / cancelled by the server
_AUTH_FAILURES = {Diagnostic.ID_UNKNOWN: "identifier", Diagnostic.NOT_AUTHORISED: "password"}


@dataclass
class _Push:
    code: str
    key: str
    partial: PartialFile
    receiver: Receiver | None = None
    cancelled: bool = False  # we stopped it for good: the spool goes when the IDT is answered


class ServerApp:
    """Handles the events of one server session (`Session.run(app.on_event)`)."""

    def __init__(
        self,
        session: Session,
        core: PesitServer,
        *,
        profile: ServerProfile,
        inbox: InboxPort,
        admission: Admission,
        outgoing: OutgoingFiles,
        shared: ServerShared,
        offload: Offload,
        observer: Observer,
    ) -> None:
        self._session = session
        self._core = core
        self._profile = profile
        self._inbox = inbox
        self._admission = admission
        self._shared = shared
        self._offload = offload
        self._observer = observer
        self._spool = Spool(profile.spool_dir)
        self._preconnected = False
        self._push: _Push | None = None
        self._log: Any = structlog.get_logger(module=__name__).bind(
            connection=profile.connection, role="server"
        )
        self._pull = PullServing(
            session, core, profile=profile, admission=admission, outgoing=outgoing,
            shared=shared, offload=offload, refuse=self._refuse, log=self._log,
        )  # fmt: skip

    def _now(self) -> float:
        return self._session.now()

    async def on_event(self, event: Event) -> None:  # noqa: PLR0912 - one dispatch table
        match event:  # the data phase first: it is nearly every event
            case ArticleReceived(data=data):  # inline: once per article
                push = self._push
                if push is not None and push.receiver is not None:
                    if push.receiver.take(data):
                        await push.receiver.room()
                    if push.receiver.size > self._profile.max_size:
                        self._too_large()
            case SyncPointReached(position=position) if self._push and self._push.receiver:
                self._push.receiver.sync_point(position)
            case PreConnectionRequested():
                self._preconnection(event)
            case ConnectionRequested():
                self._connect(event)
            case ConnectionRefused(diagnostic=code, text=text):
                self._connection_refused(code, text)
            case CreateRequested(file=file):
                await self._create(file)
            case WriteStarted(position=position):
                self._start_receiving(position)
            case DataEnded(diagnostic=code):
                self._data_ended(code.ok)
            case SelectRequested(file=file):
                await self._pull.select(file)
            case ReadRequested(restart_point=point):
                await self._pull.read(point)
            case SyncPointSent(position=position):
                self._pull.sent(position)
            case SyncPointAcknowledged():
                self._observer.sync_point("received")
                self._pull.acknowledged()
            case TransferEnded(diagnostic=code):
                await self._transfer_ended(code.ok)
            case TransferInterrupted() | Aborted():
                await self._interrupted(event)
            case _:
                self._log.debug("pesit.event", kind=type(event).__name__)

    # -- who is calling --------------------------------------------------------------------

    def _preconnection(self, event: PreConnectionRequested) -> None:
        settings = self._profile.settings
        expected = settings if settings.preconnection is not None else None
        self._core.answer_preconnection(expected, now=self._now())
        self._preconnected = self._core.state is not State.CLOSED
        self._log.info("pesit.preconnection", caller=event.caller_id, ok=self._preconnected)

    def _connect(self, event: ConnectionRequested) -> None:
        settings = self._profile.settings
        if settings.preconnection is not None and not self._preconnected:
            self._log.warning("pesit.preconnection_missing", requester=event.requester_id)
            self._core.refuse(Diagnostic.NOT_AUTHORISED, now=self._now())
            return
        self._core.accept_connection(settings, now=self._now())
        if self._core.state is State.CN03:
            self._log.info("pesit.connected", requester=event.requester_id)

    def _connection_refused(self, code: DiagnosticCode, reason: str) -> None:
        """RCONNECT (or NAK0) went out; ids and passwords are authentication failures."""
        failure = _AUTH_FAILURES.get(code.known) if code.known else None
        if failure is not None:
            self._observer.auth_failure(failure)
        self._observer.diagnostic("sent", code)
        self._log.warning("pesit.connection_refused", diagnostic=str(code), reason=reason)

    def _refuse(self, diagnostic: Diagnostic, reason: str, kind: RefusalKind | None) -> None:
        self._core.refuse(diagnostic, now=self._now())
        self._observer.diagnostic("sent", diagnostic.code)
        if kind is not None:
            self._observer.refused(kind)
        self._log.warning("pesit.request_refused", diagnostic=str(diagnostic), reason=reason)

    # -- a push from AIFE ------------------------------------------------------------------

    async def _create(self, file: FileInfo) -> None:
        code = self._profile.code_of(file.file_name)
        refusal = self._admission.admit(code)
        if refusal is not None:
            self._refuse(diagnostic_for(refusal), refusal.reason, refusal.kind)
            return
        announced = file.max_size_kb * 1024
        if announced > self._profile.max_size:
            reason = f"{announced} bytes announced, {self._profile.max_size} allowed"
            self._refuse(Diagnostic.QUOTA_EXCEEDED, reason, RefusalKind.TOO_LARGE)
            return
        if file.transfer_id in self._shared.busy:
            self._refuse(Diagnostic.FILE_BUSY, f"transfer {file.transfer_id} in progress", None)
            return
        key = f"in-{file.transfer_id}"
        meta = SpoolMeta(
            transfer_id=file.transfer_id,
            file_name=file.file_name,
            interface_code=code,
            started=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ"),
            created=file.created,
            label=file.label,
        )
        # The same transfer (PI 13, PI 12, PI 51) keeps its peer message id, even once it ended
        # and even announced as new: a requester that lost its journal in a crash sends it so.
        # The inbox then recognises the repeat; a different file under that identity is
        # refused there, never taken for the first one.
        known = await self._offload(self._spool.peek, key)
        if known is not None and known.same_transfer(meta):
            meta = replace(meta, started=known.started)
        partial = await self._offload(self._spool.resume, key, meta) if file.restart else None
        if partial is None:
            partial = await self._offload(self._spool.create, key, meta)
        self._shared.busy.add(file.transfer_id)
        self._push = _Push(code, key, partial)
        self._core.accept_create(resume=partial.durable, now=self._now())
        self._log.info(
            "pesit.push_accepted",
            transfer_id=file.transfer_id,
            interface_code=code,
            restart_point=partial.durable.point,
        )

    def _start_receiving(self, position: Position) -> None:
        assert self._push is not None
        assert position == self._push.partial.durable
        self._push.receiver = Receiver(
            self._session,
            self._push.partial,
            offload=self._offload,
            on_durable=lambda _: self._observer.sync_point("sent"),
            on_failure=self._disk_failed,
        )

    def _disk_failed(self, error: OSError) -> None:
        self._log.error("pesit.spool_failed", error=str(error))
        self._stop_transfer(Diagnostic.IO_ERROR, END_ERROR)

    def _too_large(self) -> None:
        self._observer.refused(RefusalKind.TOO_LARGE)
        self._stop_transfer(Diagnostic.QUOTA_EXCEEDED, END_CANCELLED)

    def _stop_transfer(self, diagnostic: Diagnostic, end_code: int) -> None:
        """IDT: the transfer stops, the connection stays (pesit.md §8)."""
        try:
            self._core.interrupt(diagnostic=diagnostic, end_code=end_code, now=self._now())
        except PesitLocalError:
            return  # already out of the data phase
        if self._push is not None:
            self._push.cancelled = end_code == END_CANCELLED
        self._observer.diagnostic("sent", diagnostic.code)
        self._session.poke()

    def _data_ended(self, ok: bool) -> None:
        if not ok:
            self._stop_transfer(Diagnostic.ABNORMAL_END, END_ERROR)
            return
        self._session.spawn(self._complete(), name="pesit-complete")

    async def _complete(self) -> None:
        """Durable spool, TRANS.END with matching counts, inbox, then ACK(TRANS.END)."""
        push = self._push
        assert push is not None
        assert push.receiver is not None
        try:
            await push.receiver.finish()
        except OSError:
            return  # `_disk_failed` already interrupted the transfer
        await self._session.until(lambda: self._core.state is not State.TDE07B)
        if self._core.state is not State.TDE08B:
            return  # counts did not match, or the transfer was interrupted: nothing to keep
        incoming = push.receiver.incoming(connection=self._profile.connection, code=push.code)
        try:
            accepted = await push.receiver.hand_over(self._inbox, incoming)
        except TransferRefused as refusal:
            self._observer.refused(refusal.kind)
            self._log.warning("pesit.push_refused", kind=refusal.kind.value, reason=refusal.reason)
            transient = refusal.kind is RefusalKind.UNAVAILABLE
            self._stop_transfer(diagnostic_for(refusal), END_ERROR if transient else END_CANCELLED)
            return
        self._core.confirm_end(now=self._now())
        self._session.poke()
        self._log.info(
            "pesit.push_received",
            message_id=accepted.message_id,
            interface_code=push.code,
            transfer_id=push.partial.meta.transfer_id,
            size=accepted.size,
            duplicate=accepted.duplicate,
        )

    async def _drop_push(self, *, discard: bool, settled: bool = False) -> None:
        """Free the transfer id; the spool goes (`discard`), keeps only the transfer's
        identity (`settled`: handed to the inbox) or stays whole for a restart."""
        push, self._push = self._push, None
        if push is None:
            return
        self._shared.busy.discard(push.partial.meta.transfer_id)
        if push.receiver is not None:
            await push.receiver.close()
        else:
            await self._offload(push.partial.close)
        if settled:
            await self._offload(self._spool.settle, push.key)
        elif discard:
            await self._offload(self._spool.discard, push.key)

    # -- endings ---------------------------------------------------------------------------

    async def _transfer_ended(self, ok: bool) -> None:
        """ACK(TRANS.END) went: a push is in the inbox (or refused for its counts)."""
        if self._pull.active:
            await self._pull.ended(ok)
        else:
            await self._drop_push(discard=True, settled=ok)

    async def _interrupted(self, event: TransferInterrupted | Aborted) -> None:
        if not event.diagnostic.ok and event.by_peer:
            self._observer.diagnostic("received", event.diagnostic)
        self._log.info(
            "pesit.transfer_stopped",
            kind=type(event).__name__,
            diagnostic=str(event.diagnostic),
            by_peer=event.by_peer,
        )
        self._pull.stop()
        await self._end_push()

    async def _end_push(self) -> None:
        await self._drop_push(discard=self._push is not None and self._push.cancelled)

    async def close(self) -> None:
        """The session is over: whatever was spooled stays for a restart (unless cancelled)."""
        self._pull.stop()
        await self._end_push()
