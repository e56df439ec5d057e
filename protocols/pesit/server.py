"""The server: answers a requester, asking the application where a decision is its own.

The application is asked (by an event) about the pre-connection, the CONNECT, each CREATE,
SELECT and READ; the rest (ORF, WRITE, CRF, DESELECT, RELEASE, IDT) is answered here.
Durability gates the acknowledgements of a push: ACK(SYN) waits for `confirm_durable`,
ACK(TRANS.END) for `confirm_end`.
"""

from __future__ import annotations

import hmac
from dataclasses import replace

from protocols.pesit.connection import PesitConnection, Timer
from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode, PesitError, PesitLocalError
from protocols.pesit.events import (
    ConnectionRefused,
    ConnectionRequested,
    CreateRequested,
    FileClosed,
    FileDeselected,
    FileInfo,
    FileOpened,
    Position,
    PreConnectionRequested,
    ReadRequested,
    Released,
    SelectRequested,
    TransferEnded,
    WriteStarted,
)
from protocols.pesit.fpdu import Fpdu, FpduType
from protocols.pesit.framing import ACK0, NAK0, Framing, decode_preconnection
from protocols.pesit.negotiation import (
    NO_COMPRESSION,
    VERSION_E,
    ack_select_params,
    negotiate_entity,
    negotiate_sync,
    read_connect,
    read_file,
)
from protocols.pesit.pi import PI, Params, SyncPoints
from protocols.pesit.settings import PesitSettings, Timers
from protocols.pesit.state import Role, State
from protocols.pesit.transfer import count_verdict

__all__ = ["PesitServer"]

F = FpduType
_SUCCESS = Diagnostic.SUCCESS.code
_ANSWERS = {
    State.CN02B: F.RCONNECT,
    State.SF01B: F.ACK_CREATE,
    State.SF02B: F.ACK_SELECT,
    State.TDL01B: F.ACK_READ,
}


class PesitServer(PesitConnection):
    """One accepted transport; the partner is known once the CONNECT names it."""

    def __init__(
        self,
        *,
        now: float,
        timers: Timers | None = None,
        framing: Framing = Framing.AUTO,
        connection_id: int = 1,
    ) -> None:
        timers = timers or Timers()
        super().__init__(Role.SERVER, timers=timers, framing=framing, local_id=connection_id)
        self._alarm = (Timer.TC, now + timers.tc)
        self._settings: PesitSettings | None = None
        self._pre: PreConnectionRequested | None = None
        self._connect: ConnectionRequested | None = None
        self._proposed: SyncPoints | None = None
        self._file = FileInfo()
        self._resume = Position()
        self._restart_point = 0
        self._end_confirmed = False
        self._trans_end: Fpdu | None = None
        self._handlers.update(
            {
                F.CONNECT: self._on_connect,
                F.RELEASE: self._on_release,
                F.CREATE: self._on_file_request,
                F.SELECT: self._on_file_request,
                F.ORF: self._on_orf,
                F.WRITE: self._on_write,
                F.READ: self._on_read,
                F.TRANS_END: self._on_trans_end,
                F.CRF: self._on_crf,
                F.DESELECT: self._on_deselect,
                F.MSG: self._on_message,
                F.MSGFM: self._on_message,
                F.MSGDM: _ignore,
                F.MSGMM: _ignore,
            },
        )

    @property
    def settings(self) -> PesitSettings | None:
        """The settings the application accepted the CONNECT with."""
        return self._settings

    # -- decisions of the application ------------------------------------------------------

    def answer_preconnection(self, settings: PesitSettings | None, *, now: float) -> None:
        """ACK0 if `settings` expects exactly this caller id and password, else NAK0."""
        if self._pre is None:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, "no pre-connection to answer")
        pre, self._pre = self._pre, None
        expected = settings.preconnection if settings else None
        if (
            expected
            and expected.caller_id == pre.caller_id
            and _same(expected.password, pre.password)
        ):
            self._send_raw(ACK0)
            self._drain(now)
            return
        self._send_raw(NAK0)
        self._machine.close()
        self._emit(ConnectionRefused(Diagnostic.NOT_AUTHORISED.code, "NAK0"))
        self._closing()
        self._arm(now)

    def accept_connection(self, settings: PesitSettings, *, now: float) -> None:
        """ACONNECT if the CONNECT matches `settings` (ids, password), else RCONNECT 3/301|304."""
        request = self._connect
        if request is None or self.state is not State.CN02B:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, "no CONNECT to accept")
        refusal = _check_credentials(request, settings)
        if refusal is not None:
            self._refuse_connect(refusal.code, "credentials do not match the connection")
        else:
            self._settings = settings
            ours = SyncPoints(settings.sync_interval_kb, settings.sync_window)
            self._sync = negotiate_sync(self._proposed, ours)
            params = Params.of((PI.VERSION, VERSION_E), (PI.SYNC_POINTS, self._sync))
            self._send(Fpdu(F.ACONNECT, self._peer_id, self._local_id, params))
        self._arm(now)

    def refuse(self, diagnostic: Diagnostic, *, now: float) -> None:
        """Say no to the pending CONNECT, CREATE, SELECT or READ."""
        kind = _ANSWERS.get(self.state)
        if kind is None or diagnostic is Diagnostic.SUCCESS:
            raise PesitLocalError(
                Diagnostic.PROTOCOL_ERROR, f"nothing to refuse in {self.state.name}"
            )
        if kind is F.RCONNECT:
            self._refuse_connect(diagnostic.code, "refused by the application")
        else:
            params = Params.of((PI.DIAGNOSTIC, diagnostic.code))
            self._send(Fpdu(kind, self._peer_id, params=params), ok=False)
        self._arm(now)

    def accept_create(self, *, resume: Position | None = None, now: float) -> None:
        """Take the push; `resume`: the last durable point of this transfer id, for a restart."""
        params = Params.of(
            (PI.DIAGNOSTIC, _SUCCESS),
            (PI.TRANSFER_ID, self._file.transfer_id),
            (PI.MAX_ENTITY_SIZE, self._file.entity_size),
        )
        self._send(Fpdu(F.ACK_CREATE, self._peer_id, params=params))
        self._resume = resume or Position()
        self._arm(now)

    def accept_select(self, file: FileInfo, *, now: float) -> None:
        """Serve the pull described by `file` (name, transfer id, article size, size, date)."""
        if self.state is not State.SF02B:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, f"no SELECT in {self.state.name}")
        assert self._settings is not None
        self._file = replace(
            file,
            file_name=file.file_name or self._file.file_name,
            entity_size=self._file.entity_size,
            article_size=file.article_size or self._settings.article_size,
        )
        self._send(Fpdu(F.ACK_SELECT, self._peer_id, params=ack_select_params(self._file)))
        self._arm(now)

    def accept_read(self, *, resume: Position | None = None, now: float) -> None:
        """Start sending after `resume`, which must be the restart point the READ asked for."""
        start = resume or Position()
        if start.point != self._restart_point:
            raise PesitLocalError(
                Diagnostic.RESTART_NEGOTIATION_FAILED,
                f"READ asked for point {self._restart_point}, resume is {start.point}",
            )
        self._send(Fpdu(F.ACK_READ, self._peer_id, params=Params.of((PI.DIAGNOSTIC, _SUCCESS))))
        file = self._file
        self._start_sending(
            entity_size=file.entity_size, max_article=file.article_size, start=start
        )
        self._arm(now)

    def end_data(self, *, now: float) -> None:
        """Pull served: DTF.END; the requester answers with TRANS.END."""
        params = Params.of((PI.DIAGNOSTIC, _SUCCESS))
        self._send(Fpdu(F.DTF_END, self._peer_id, params=params))
        self._arm(now)

    def confirm_end(self, *, now: float) -> None:
        """The pushed file is durable: ACK(TRANS.END) may go (now, or when TRANS.END comes)."""
        if self.state not in {State.TDE07B, State.TDE08B} or self._end_confirmed:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, f"no ended write in {self.state.name}")
        self._flush_sync_acks()
        self._end_confirmed = True
        if self._trans_end is not None:
            self._answer_trans_end(_SUCCESS)
        self._arm(now)

    # -- the requester's FPDUs -------------------------------------------------------------

    def _pump_one(self) -> bool:
        if self._pre is not None:
            return False  # the requester must wait for ACK0; keep its bytes until we answer
        if self._connect is not None:
            return super()._pump_one()
        opening = self._reader.next_opening()
        if opening is None:
            return False
        is_preconnection, unit = opening
        if is_preconnection:
            pre = decode_preconnection(unit)
            self._pre = PreConnectionRequested(pre.caller_id, pre.password)
            self._emit(self._pre)
        else:
            self._handle_unit(unit)
        return True

    def _timer_for(self, state: State) -> Timer | None:
        if state is State.CN01:
            return Timer.TC
        if state is State.CN03:
            return Timer.TD
        return super()._timer_for(state)

    def _on_connect(self, fpdu: Fpdu) -> None:
        if not fpdu.src:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, "CONNECT with requester id 0")
        self._peer_id = fpdu.src
        try:
            self._connect = read_connect(fpdu.params)
        except PesitError as error:
            self._refuse_connect(error.diagnostic.code, error.reason)
            return
        self._proposed = fpdu.params.sync_points()
        self._emit(self._connect)

    def _refuse_connect(self, diagnostic: DiagnosticCode, reason: str) -> None:
        params = Params.of((PI.DIAGNOSTIC, diagnostic))
        self._send(Fpdu(F.RCONNECT, self._peer_id, self._local_id, params))
        self._emit(ConnectionRefused(diagnostic, reason))
        self._closing()

    def _on_release(self, fpdu: Fpdu) -> None:
        del fpdu
        self._send(Fpdu(F.RELCONF, self._peer_id, self._local_id))
        self._emit(Released())
        self._closing()

    def _on_file_request(self, fpdu: Fpdu) -> None:
        assert self._settings is not None
        kind = F.ACK_CREATE if fpdu.kind is F.CREATE else F.ACK_SELECT
        file = read_file(fpdu.params)
        try:
            entity = negotiate_entity(file.entity_size or None, self._settings.max_entity_size)
        except PesitError as error:
            params = Params.of((PI.DIAGNOSTIC, error.diagnostic.code))
            self._send(Fpdu(kind, self._peer_id, params=params), ok=False)
            return
        self._file = replace(file, entity_size=entity)
        if kind is F.ACK_CREATE:
            self._emit(CreateRequested(self._file))
        else:
            self._emit(SelectRequested(self._file))

    def _on_orf(self, fpdu: Fpdu) -> None:
        asked = fpdu.params.get(PI.COMPRESSION)
        refusal = NO_COMPRESSION if asked not in {None, NO_COMPRESSION} else None
        params = Params.of((PI.DIAGNOSTIC, _SUCCESS), (PI.COMPRESSION, refusal))
        self._send(Fpdu(F.ACK_ORF, self._peer_id, params=params))
        self._emit(FileOpened())

    def _on_write(self, fpdu: Fpdu) -> None:
        del fpdu
        assert self._settings is not None
        params = Params.of((PI.DIAGNOSTIC, _SUCCESS), (PI.RESTART_POINT, self._resume.point))
        self._send(Fpdu(F.ACK_WRITE, self._peer_id, params=params))
        max_article = max(self._file.article_size, self._settings.article_size)
        self._start_receiving(max_article=max_article, start=self._resume)
        self._end_confirmed, self._trans_end = False, None
        self._emit(WriteStarted(self._resume))

    def _on_read(self, fpdu: Fpdu) -> None:
        self._restart_point = fpdu.params.number(PI.RESTART_POINT, 0)
        self._emit(ReadRequested(self._restart_point))

    def _on_trans_end(self, fpdu: Fpdu) -> None:
        announced = fpdu.params.number(PI.BYTE_COUNT)
        byte_count, _ = self._counts()
        if announced is None:
            verdict = Diagnostic.SUCCESS
        elif self._sender is not None:  # a pull: the requester says what it received
            verdict = count_verdict(sent=byte_count, received=announced)
        else:
            verdict = count_verdict(sent=announced, received=byte_count)
        if verdict is not Diagnostic.SUCCESS or self._sender is not None or self._end_confirmed:
            self._answer_trans_end(verdict.code)
        else:
            self._trans_end = fpdu

    def _answer_trans_end(self, diagnostic: DiagnosticCode) -> None:
        byte_count, article_count = self._counts()
        self._send(Fpdu(F.ACK_TRANS_END, self._peer_id, params=self._count_params(diagnostic)))
        self._drop_data_phase()
        self._trans_end = None
        self._emit(TransferEnded(diagnostic, byte_count, article_count))

    def _on_crf(self, fpdu: Fpdu) -> None:
        del fpdu
        self._send(Fpdu(F.ACK_CRF, self._peer_id, params=Params.of((PI.DIAGNOSTIC, _SUCCESS))))
        self._emit(FileClosed())

    def _on_deselect(self, fpdu: Fpdu) -> None:
        del fpdu
        params = Params.of((PI.DIAGNOSTIC, _SUCCESS))
        self._send(Fpdu(F.ACK_DESELECT, self._peer_id, params=params))
        self._emit(FileDeselected())

    def _on_message(self, fpdu: Fpdu) -> None:
        """Messages are not part of the gateway's use of PeSIT: refuse them politely (2/209)."""
        del fpdu
        params = Params.of((PI.DIAGNOSTIC, Diagnostic.MESSAGE_TYPE_REFUSED.code))
        self._send(Fpdu(F.ACK_MSG, self._peer_id, params=params), ok=False)


def _check_credentials(request: ConnectionRequested, settings: PesitSettings) -> Diagnostic | None:
    """3/301 for ids that are not this connection's, 3/304 for a wrong password."""
    ids = (request.requester_id, request.server_id or settings.server_id.rstrip())
    if ids != (settings.requester_id.rstrip(), settings.server_id.rstrip()):
        return Diagnostic.ID_UNKNOWN
    if not _same(request.password, settings.password):
        return Diagnostic.NOT_AUTHORISED
    return None


def _ignore(fpdu: Fpdu) -> None:
    del fpdu


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison: a password check must not leak how much matched."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
