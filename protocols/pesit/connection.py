"""The sans-IO PeSIT connection: what both roles share (`PesitRequester`, `PesitServer`).

Bytes go in with `receive_data`, come out with `data_to_send`; what happened comes out of
`next_event`. Every FPDU, in or out, goes through the role's transition table first. A peer
that breaks the protocol gets an ABORT carrying the diagnostic of the error, queued in the
output like any automatic answer (h2 style). Time is only ever passed in: each call takes
`now`, and `next_deadline` / `handle_timeout` drive the timers of pesit.md §10.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum

from protocols.pesit.datapath import FAST_STATES, encode_data, plain_events, sync_unit
from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode, PesitError, PesitLocalError
from protocols.pesit.events import (
    Aborted,
    ConnectionClosed,
    DataEnded,
    Event,
    Position,
    SyncPointAcknowledged,
    SyncPointSent,
    TransferInterrupted,
)
from protocols.pesit.fpdu import DATA_FAMILY, Fpdu, FpduType, encode_parts, split_fpdus
from protocols.pesit.framing import Framing, UnitReader, frame, prefix
from protocols.pesit.output import Output
from protocols.pesit.pi import PI, Params, SyncPoints
from protocols.pesit.settings import Timers
from protocols.pesit.state import Direction, Machine, Role, State, awaits_peer
from protocols.pesit.transfer import DataReceiver, DataSender

__all__ = ["ACK_KINDS", "PesitConnection", "Timer"]

F = FpduType
ACK_KINDS = frozenset(
    {
        F.ACK_CREATE, F.ACK_SELECT, F.ACK_DESELECT, F.ACK_ORF, F.ACK_CRF, F.ACK_READ,
        F.ACK_WRITE, F.ACK_TRANS_END, F.ACK_MSG,
    },
)  # fmt: skip
_UNADDRESSED = frozenset({F.CONNECT, F.RCONNECT, F.ABORT})  # ID.DST may be 0 or unknown
END_CODE_SUSPENDED = 8

Handler = Callable[[Fpdu], None]


class Timer(Enum):
    TP = "Tp: next expected FPDU"
    TD = "Td: idle connection"
    TC = "Tc: CONNECT after accept"
    TR = "Tr: transport close"


class PesitConnection:
    """Framing, the table, timers, ABORT, IDT and the data phase; roles add their FPDUs."""

    def __init__(self, role: Role, *, timers: Timers, framing: Framing, local_id: int) -> None:
        self._machine = Machine(role)
        self._fast = FAST_STATES[role]
        self._reader = UnitReader(framing)
        self._timers = timers
        self._local_id = local_id
        self._peer_id = 0
        self._events: deque[Event] = deque()
        self._out = Output()
        self._alarm: tuple[Timer, float] | None = None  # the one running timer, its deadline
        self._sync = SyncPoints(0, 0)
        self._sender: DataSender | None = None
        self._receiver: DataReceiver | None = None
        self._interrupt: tuple[DiagnosticCode, int] | None = None
        self._hangup = False  # we spoke last: the transport closes after Tr
        self._handlers: dict[FpduType, Handler] = {
            F.ABORT: self._on_abort,
            F.IDT: self._on_idt,
            F.ACK_IDT: self._on_ack_idt,
            F.SYN: self._on_syn,
            F.ACK_SYN: self._on_ack_syn,
            F.DTF_END: self._on_dtf_end,
            **dict.fromkeys(DATA_FAMILY, self._on_data),
        }

    # -- what the application sees ---------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._machine.role

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def sync_points(self) -> SyncPoints:
        """The negotiated interval (KB) and window; (0, 0) until connected or if none."""
        return self._sync

    @property
    def can_send(self) -> bool:
        """True when `send_articles` will take at least one article right now."""
        return (
            self._sender is not None
            and self._sender.can_send
            and self._machine.allows(Direction.SEND, F.DTF)
        )

    @property
    def pending_sync_points(self) -> tuple[Position, ...]:
        """Sync points received and not yet confirmed durable (receiver side)."""
        return () if self._receiver is None else self._receiver.pending

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        """Everything queued, joined once (the only copy the core makes of sent articles)."""
        return b"".join(self._out.take())

    def next_deadline(self) -> float | None:
        return None if self._alarm is None else self._alarm[1]

    def receive_data(self, data: bytes, *, now: float) -> None:
        """Feed bytes from the transport; `b""` means the peer closed it."""
        if self.state is State.CLOSED:
            if not data:
                self._alarm = None  # the peer hung up as it should: no Tr to wait for
            return
        if not data:
            self._machine.close()
            self._drop_data_phase()
            self._emit(Aborted(Diagnostic.CONNECTION_OTHER.code, "transport closed", by_peer=True))
            self._arm(now)
            return
        self._reader.feed(data)
        self._drain(now)

    def handle_timeout(self, now: float) -> None:
        if self._alarm is None or now < self._alarm[1]:
            return
        timer, self._alarm = self._alarm[0], None
        if timer is Timer.TD:
            self._abort_for(PesitError(Diagnostic.IDLE_TIMEOUT, "Td expired"))
        elif timer is Timer.TP:
            self._abort_for(PesitError(Diagnostic.TIMER_EXPIRED, "Tp expired"))
        else:
            self._machine.close()
            self._emit(ConnectionClosed(f"{timer.value} expired"))
        self._arm(now)

    def abort(self, diagnostic: Diagnostic = Diagnostic.CONNECTION_OTHER, *, now: float) -> None:
        """End the connection at once; the transport closes after Tr."""
        if self.state is State.CLOSED:
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, "connection already closed")
        self._send_abort(diagnostic.code)
        self._arm(now)

    def interrupt(
        self,
        *,
        diagnostic: Diagnostic = Diagnostic.VOLUNTARY_STOP,
        end_code: int = END_CODE_SUSPENDED,
        now: float,
    ) -> None:
        """IDT: stop the transfer, keep the file open (pesit.md §8)."""
        params = Params.of((PI.DIAGNOSTIC, diagnostic.code), (PI.END_CODE, end_code))
        self._send(Fpdu(F.IDT, self._peer_id, params=params))
        self._interrupt = (diagnostic.code, end_code)
        self._arm(now)

    def send_articles(self, articles: Sequence[bytes], *, now: float) -> int:
        """Queue articles for the peer; returns how many were taken (the rest wait for ACK(SYN))."""
        if self._sender is None or not self._machine.allows(Direction.SEND, F.DTF):
            raise PesitLocalError(
                Diagnostic.PROTOCOL_ERROR, f"no data to send in {self.state.name}"
            )
        batch = self._sender.articles(articles)
        self._send_data(batch.fpdus)
        self._events.extend(SyncPointSent(position) for position in batch.sync_points)
        self._arm(now)
        return batch.taken

    def confirm_durable(self, sync_point: int, *, now: float) -> None:
        """Everything before `sync_point` is durable: answer ACK(SYN) up to it (pesit.md §8)."""
        if self._receiver is None:
            raise PesitLocalError(
                Diagnostic.PROTOCOL_ERROR, f"no data received in {self.state.name}"
            )
        if self._sync.window and not self._machine.allows(Direction.SEND, F.ACK_SYN):
            raise PesitLocalError(
                Diagnostic.PROTOCOL_ERROR, f"ACK(SYN) not allowed in {self.state.name}"
            )
        self._acknowledge(self._receiver.confirm(sync_point))
        self._arm(now)

    # -- machinery for the roles -------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _send(self, fpdu: Fpdu, *, ok: bool = True) -> None:
        """Encode, check the table, then queue: a refused FPDU leaves no trace."""
        parts = encode_parts(fpdu)
        self._machine.send(fpdu.kind, ok=ok)
        parts[0] = prefix(sum(map(len, parts)), self._reader.framing) + parts[0]
        for part in parts:
            self._out.add(part)

    def _send_data(self, fpdus: list[Fpdu]) -> None:
        """DTFs and SYNs: the table checked once for the batch where it keeps the state."""
        if self._machine.state in self._fast.data_out:
            encode_data(fpdus, self._out, dst=self._peer_id, framing=self._reader.framing)
            return
        for fpdu in fpdus:
            self._send(fpdu)

    def _send_raw(self, unit: bytes) -> None:
        self._out.add(frame(unit, self._reader.framing))

    def _drain(self, now: float) -> None:
        try:
            while self._machine.state is not State.CLOSED and self._pump_one():
                pass
        except PesitError as error:
            self._abort_for(error)
        self._arm(now)

    def _pump_one(self) -> bool:
        """Handle the units the reader holds whole; False when it holds none."""
        units = self._reader.next_views()
        for unit in units:
            self._handle_unit(unit)
            if self._machine.state is State.CLOSED:
                break
        return bool(units)

    def _handle_unit(self, unit: bytes | memoryview) -> None:
        events = plain_events(
            unit, local_id=self._local_id, state=self._machine.state, fast=self._fast,
            receiver=self._receiver, sender=self._sender,
        )  # fmt: skip
        if events is not None:  # the data phase's fast path (`datapath`)
            self._events.extend(events)
            return
        for fpdu in split_fpdus(unit):
            self._on_fpdu(fpdu)
            if self._machine.state is State.CLOSED:
                return

    def _on_fpdu(self, fpdu: Fpdu) -> None:
        if fpdu.kind not in _UNADDRESSED and fpdu.dst != self._local_id:
            raise PesitError(
                Diagnostic.PROTOCOL_ERROR,
                f"{fpdu.kind.name} for id {fpdu.dst}, we are {self._local_id}",
            )
        ok = fpdu.params.diagnostic().ok if fpdu.kind in ACK_KINDS else True
        if not self._machine.receive(fpdu.kind, ok=ok).ignore:
            self._handlers[fpdu.kind](fpdu)

    def _abort_for(self, error: PesitError) -> None:
        """The peer broke the protocol (or a watchdog fired): ABORT with the error's code."""
        self._emit(Aborted(error.diagnostic.code, error.reason, by_peer=False))
        self._send_abort(error.diagnostic.code)

    def _send_abort(self, diagnostic: DiagnosticCode) -> None:
        self._drop_data_phase()
        if self._reader.framing is Framing.AUTO:  # not one PeSIT unit understood: hang up now
            self._machine.close()
            self._emit(ConnectionClosed("no PeSIT unit recognised"))
            return
        params = Params.of((PI.DIAGNOSTIC, diagnostic))
        self._send(Fpdu(F.ABORT, self._peer_id, self._local_id, params))
        self._closing()

    def _closing(self) -> None:
        """We spoke last (ABORT, RELCONF, RCONNECT, NAK0): the peer should hang up within Tr."""
        self._hangup = True

    def _arm(self, now: float) -> None:
        """Set the one deadline that matters now; called at the end of every public call."""
        if self.state is State.CLOSED:
            if self._hangup:  # armed once, by the call that closed
                self._hangup = False
                self._alarm = (Timer.TR, now + self._timers.tr)
            else:
                self._alarm = None
            return
        timer = self._timer_for(self.state)
        if timer is Timer.TC:
            return  # armed once, when the transport was accepted
        self._alarm = None if timer is None else (timer, now + self._duration(timer))

    def _timer_for(self, state: State) -> Timer | None:
        if self._receiver is not None and self._receiver.window_full:
            return None  # the sender waits for our ACK(SYN), not we for it
        if self._sender is not None and not self._sender.can_send:
            return Timer.TP
        return Timer.TP if awaits_peer(self.role, state) else None

    def _duration(self, timer: Timer) -> float:
        return self._timers.td if timer is Timer.TD else self._timers.tp

    def _drop_data_phase(self) -> None:
        self._sender = self._receiver = None
        self._interrupt = None

    def _start_sending(self, *, entity_size: int, max_article: int, start: Position) -> None:
        self._sender = DataSender(
            dst=self._peer_id,
            entity_size=entity_size,
            max_article=max_article,
            sync=self._sync,
            start=start,
        )

    def _start_receiving(self, *, max_article: int, start: Position) -> None:
        self._receiver = DataReceiver(sync=self._sync, start=start, max_article=max_article)

    def _flush_sync_acks(self) -> None:
        """Before ending, every sync point still pending is durable too: acknowledge them."""
        assert self._receiver is not None
        pending = self._receiver.pending
        if pending:
            self._acknowledge(self._receiver.confirm(pending[-1].point))

    def _acknowledge(self, positions: list[Position]) -> None:
        """ACK(SYN) each durable point, unless the window is 0 (never acknowledged)."""
        if not self._sync.window:
            return
        prefixed = self._reader.framing is Framing.PREFIXED
        fast = self._machine.state in self._fast.ack_out
        for position in positions:
            unit = sync_unit(F.ACK_SYN, self._peer_id, position.point, prefixed=prefixed)
            if fast and unit is not None:
                self._out.add(unit)
            else:
                params = Params.of((PI.SYNC_NUMBER, position.point))
                self._send(Fpdu(F.ACK_SYN, self._peer_id, params=params))

    def _counts(self) -> tuple[int, int]:
        """(bytes, articles) of the current data phase, whichever way it flows."""
        phase = self._sender if self._sender is not None else self._receiver
        assert phase is not None
        return phase.byte_count, phase.article_count

    def _count_params(self, diagnostic: DiagnosticCode | None) -> Params:
        byte_count, article_count = self._counts()
        return Params.of(
            (PI.DIAGNOSTIC, diagnostic),
            (PI.BYTE_COUNT, byte_count),
            (PI.ARTICLE_COUNT, article_count),
        )

    # -- FPDUs both roles handle ---------------------------------------------------------------

    def _on_abort(self, fpdu: Fpdu) -> None:
        self._drop_data_phase()
        text = fpdu.params.text(PI.DIAGNOSTIC_TEXT, "")
        self._emit(Aborted(fpdu.params.diagnostic(), text, by_peer=True))

    def _on_idt(self, fpdu: Fpdu) -> None:
        self._send(Fpdu(F.ACK_IDT, self._peer_id))
        self._drop_data_phase()
        end_code = fpdu.params.number(PI.END_CODE, 0)
        self._emit(TransferInterrupted(fpdu.params.diagnostic(), end_code, by_peer=True))

    def _on_ack_idt(self, fpdu: Fpdu) -> None:
        del fpdu
        assert self._interrupt is not None
        diagnostic, end_code = self._interrupt
        self._drop_data_phase()
        self._emit(TransferInterrupted(diagnostic, end_code, by_peer=False))

    def _on_data(self, fpdu: Fpdu) -> None:
        assert self._receiver is not None
        self._events.extend(self._receiver.data(fpdu))

    def _on_syn(self, fpdu: Fpdu) -> None:
        assert self._receiver is not None
        self._emit(self._receiver.syn(fpdu.params.require_number(PI.SYNC_NUMBER)))

    def _on_ack_syn(self, fpdu: Fpdu) -> None:
        assert self._sender is not None
        for position in self._sender.acknowledge(fpdu.params.require_number(PI.SYNC_NUMBER)):
            self._emit(SyncPointAcknowledged(position))

    def _on_dtf_end(self, fpdu: Fpdu) -> None:
        assert self._receiver is not None
        diagnostic = fpdu.params.diagnostic()
        self._receiver.end(diagnostic)
        receiver = self._receiver
        self._emit(DataEnded(diagnostic, receiver.byte_count, receiver.article_count))
