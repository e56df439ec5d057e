"""The requester: opens the connection and drives every file operation (pesit.md §6).

Each call sends one request and returns; the answer arrives as an event. A push is
`connect, create, open_file, write, send_articles…, end_data, close_file, deselect, release`;
a pull is `connect, select, open_file, read, (ArticleReceived…), confirm_end, close_file…`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from protocols.pesit.connection import PesitConnection, Timer
from protocols.pesit.diagnostics import Diagnostic, PesitError, PesitLocalError
from protocols.pesit.events import (
    Connected,
    ConnectionRefused,
    FileClosed,
    FileDeselected,
    FileInfo,
    FileOpened,
    FileReady,
    Position,
    ReadStarted,
    Released,
    RequestRefused,
    TransferEnded,
    WriteStarted,
)
from protocols.pesit.fpdu import Fpdu, FpduType
from protocols.pesit.framing import ACK0, Framing, encode_preconnection
from protocols.pesit.negotiation import (
    NO_COMPRESSION,
    VERSION_E,
    connect_params,
    create_params,
    negotiate_entity,
    negotiate_sync,
    read_file,
    select_params,
)
from protocols.pesit.pi import PI, Params, SyncPoints
from protocols.pesit.settings import PesitSettings
from protocols.pesit.state import Role, State

__all__ = ["PesitRequester"]

F = FpduType
_SUCCESS = Params.of((PI.DIAGNOSTIC, Diagnostic.SUCCESS.code))


class PesitRequester(PesitConnection):
    """One outgoing PeSIT connection with the settings of one connection sheet."""

    def __init__(self, settings: PesitSettings) -> None:
        framing = Framing.PREFIXED if settings.prefixed else Framing.RAW
        super().__init__(
            Role.REQUESTER,
            timers=settings.timers,
            framing=framing,
            local_id=settings.connection_id,
        )
        self._settings = settings
        self._awaiting_answer = False
        self._file = FileInfo()
        self._known: dict[int, Position] = {}
        self._resume = Position()
        self._handlers.update(
            {
                F.ACONNECT: self._on_aconnect,
                F.RCONNECT: self._on_rconnect,
                F.RELCONF: self._on_relconf,
                F.ACK_CREATE: self._on_ack_file,
                F.ACK_SELECT: self._on_ack_file,
                F.ACK_ORF: self._on_ack_orf,
                F.ACK_WRITE: self._on_ack_write,
                F.ACK_READ: self._on_ack_read,
                F.ACK_TRANS_END: self._on_ack_trans_end,
                F.ACK_CRF: self._on_ack_close,
                F.ACK_DESELECT: self._on_ack_close,
            },
        )

    # -- requests --------------------------------------------------------------------------

    def connect(self, *, now: float) -> None:
        """Pre-connection first if configured (CONNECT follows its ACK0), else CONNECT."""
        if self.state is not State.CN01 or self._awaiting_answer:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, "connect() is called once, first")
        pre = self._settings.preconnection
        if pre is None:
            self._send_connect()
        else:
            self._send_raw(encode_preconnection(pre.caller_id, pre.password))
            self._awaiting_answer = True
        self._arm(now)

    def create(self, file: FileInfo, *, now: float) -> None:
        """Announce a push; for a restart, `file.restart` and the first attempt's transfer id."""
        complete = self._complete(file)
        self._request(F.CREATE, create_params(complete), now)
        self._file = complete

    def select(self, file: FileInfo, *, now: float) -> None:
        """Ask for a pull; for a restart, `file.restart` and the server's transfer id."""
        complete = self._complete(file)
        self._request(F.SELECT, select_params(complete), now)
        self._file = complete

    def open_file(self, *, now: float) -> None:
        self._request(F.ORF, Params.of((PI.COMPRESSION, NO_COMPRESSION)), now)

    def write(self, *, known: Sequence[Position] = (), now: float) -> None:
        """Start sending; `known`: the sync points sent in an earlier attempt (`SyncPointSent`).

        The server answers with the point it holds durably; the push resumes right after it.
        """
        self._request(F.WRITE, Params(), now)
        self._known = {position.point: position for position in known}

    def read(self, *, resume: Position | None = None, now: float) -> None:
        """Start receiving after `resume` (the last point made durable in an earlier attempt)."""
        start = resume or Position()
        self._request(F.READ, Params.of((PI.RESTART_POINT, start.point)), now)
        self._resume = start

    def end_data(self, *, now: float) -> None:
        """Push done: DTF.END, then TRANS.END with what was sent."""
        self._send(Fpdu(F.DTF_END, self._peer_id, params=_SUCCESS))
        self._send(Fpdu(F.TRANS_END, self._peer_id, params=self._count_params(None)))
        self._arm(now)

    def confirm_end(self, *, now: float) -> None:
        """Pull received and durable: acknowledge what is pending, then TRANS.END."""
        if self.state is not State.TDL07A:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, f"no ended read in {self.state.name}")
        self._flush_sync_acks()
        self._send(Fpdu(F.TRANS_END, self._peer_id, params=self._count_params(None)))
        self._arm(now)

    def close_file(self, *, now: float) -> None:
        self._request(F.CRF, _SUCCESS, now)

    def deselect(self, *, now: float) -> None:
        self._request(F.DESELECT, _SUCCESS, now)

    def release(self, *, now: float) -> None:
        self._send(Fpdu(F.RELEASE, self._peer_id, self._settings.connection_id, _SUCCESS))
        self._arm(now)

    def _request(self, kind: FpduType, params: Params, now: float) -> None:
        self._send(Fpdu(kind, self._peer_id, params=params))
        self._arm(now)

    def _complete(self, file: FileInfo) -> FileInfo:
        return replace(
            file,
            entity_size=self._settings.max_entity_size,
            article_size=file.article_size or self._settings.article_size,
        )

    def _send_connect(self) -> None:
        settings = self._settings
        fpdu = Fpdu(F.CONNECT, 0, settings.connection_id, connect_params(settings))
        self._send(fpdu)

    # -- answers ---------------------------------------------------------------------------

    def _pump_one(self) -> bool:
        if not self._awaiting_answer:
            return super()._pump_one()
        answer = self._reader.next_answer()
        if answer is None:
            return False
        self._awaiting_answer = False
        if answer == ACK0:
            self._send_connect()
        else:
            self._machine.close()
            self._emit(ConnectionRefused(Diagnostic.NOT_AUTHORISED.code, "NAK0"))
        return True

    def _timer_for(self, state: State) -> Timer | None:
        return Timer.TP if self._awaiting_answer else super()._timer_for(state)

    def _on_aconnect(self, fpdu: Fpdu) -> None:
        version = fpdu.params.number(PI.VERSION)
        if version != VERSION_E:
            raise PesitError(Diagnostic.VERSION_NOT_SUPPORTED, f"ACONNECT with version {version}")
        if not fpdu.src:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, "ACONNECT with server id 0")
        self._peer_id = fpdu.src
        ours = SyncPoints(self._settings.sync_interval_kb, self._settings.sync_window)
        self._sync = negotiate_sync(fpdu.params.sync_points(), ours)
        self._emit(Connected(self._sync.interval_kb, self._sync.window))

    def _on_rconnect(self, fpdu: Fpdu) -> None:
        text = fpdu.params.text(PI.DIAGNOSTIC_TEXT, "")
        self._emit(ConnectionRefused(fpdu.params.diagnostic(), text))

    def _on_relconf(self, fpdu: Fpdu) -> None:
        del fpdu
        self._emit(Released())

    def _refused(self, request: FpduType, fpdu: Fpdu) -> bool:
        """Report a negative ACK; True if it was one."""
        diagnostic = fpdu.params.diagnostic()
        if diagnostic.ok:
            return False
        text = fpdu.params.text(PI.DIAGNOSTIC_TEXT, "")
        self._emit(RequestRefused(request, diagnostic, text))
        return True

    def _on_ack_file(self, fpdu: Fpdu) -> None:
        request = F.CREATE if fpdu.kind is F.ACK_CREATE else F.SELECT
        if self._refused(request, fpdu):
            return
        entity = negotiate_entity(fpdu.params.number(PI.MAX_ENTITY_SIZE), self._file.entity_size)
        if request is F.CREATE:
            transfer_id = fpdu.params.number(PI.TRANSFER_ID, self._file.transfer_id)
            self._file = replace(self._file, transfer_id=transfer_id, entity_size=entity)
        else:
            answer = read_file(fpdu.params)
            name = answer.file_name or self._file.file_name
            self._file = replace(answer, file_name=name, entity_size=entity)
        self._emit(FileReady(self._file))

    def _on_ack_orf(self, fpdu: Fpdu) -> None:
        if self._refused(F.ORF, fpdu):
            return
        compression = fpdu.params.get(PI.COMPRESSION)
        if compression not in {None, NO_COMPRESSION}:
            raise PesitError(Diagnostic.NEGOTIATION_FAILURE, "server turned compression on")
        self._emit(FileOpened())

    def _on_ack_write(self, fpdu: Fpdu) -> None:
        if self._refused(F.WRITE, fpdu):
            return
        point = fpdu.params.number(PI.RESTART_POINT, 0)
        start = Position() if point == 0 else self._known.get(point)
        if start is None:
            raise PesitError(
                Diagnostic.RESTART_NEGOTIATION_FAILED, f"unknown restart point {point}"
            )
        file = self._file
        self._start_sending(
            entity_size=file.entity_size, max_article=file.article_size, start=start
        )
        self._emit(WriteStarted(start))

    def _on_ack_read(self, fpdu: Fpdu) -> None:
        if self._refused(F.READ, fpdu):
            return
        max_article = max(self._file.article_size, self._settings.article_size)
        self._start_receiving(max_article=max_article, start=self._resume)
        self._emit(ReadStarted(self._resume))

    def _on_ack_trans_end(self, fpdu: Fpdu) -> None:
        diagnostic = fpdu.params.diagnostic()
        byte_count, article_count = self._counts()
        theirs = fpdu.params.number(PI.BYTE_COUNT)
        if diagnostic.ok and theirs not in {None, byte_count}:
            raise PesitError(Diagnostic.WRONG_COUNTS, f"server counted {theirs}, we {byte_count}")
        self._drop_data_phase()
        self._emit(TransferEnded(diagnostic, byte_count, article_count))

    def _on_ack_close(self, fpdu: Fpdu) -> None:
        request = F.CRF if fpdu.kind is F.ACK_CRF else F.DESELECT
        if self._refused(request, fpdu):
            return
        if request is F.CRF:
            self._emit(FileClosed())
        else:
            self._emit(FileDeselected())
