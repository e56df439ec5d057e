"""Chorus Pro's reception desk: judge each deposited flow and schedule what is owed back.

The desk is the simulator's `InboxPort` for every protocol, so the protocol endpoints it reuses
authenticate the gateway exactly as they authenticate AIFE (AS2: only that connection's
certificate may have signed). Then, as Chorus Pro does:

* a code the connection does not subscribe to (in emission) is refused at the transfer
  (negative MDN / SFTP status / PeSIT diagnostic) — nothing is integrated;
* every accepted deposit gets an integration report: REJETE with a reason when the payload is
  not well-formed XML or not the format its code promises (sniffed by `gateway.sniff`), INTEGRE
  otherwise — but only if the connection subscribes to the report code (in reception);
* an integrated B2G deposit then gets lifecycle flows over time, per invoice, in the lifecycle
  code the connection subscribes to (FEN1200A, else FEN1201A: the simulator writes one shape).

A transfer Chorus Pro already took is answered as a duplicate, never integrated twice: AS2 and
PeSIT name it (Message-ID, transfer id); SFTP does not, so a file name the connection already
deposited is that file again (the gateway's names carry its message id; a real server would
still list the file, which the gateway's sender checks before uploading again).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import secrets
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config, ConnectionConfig
from gateway.correlation_xml import facts_from_bytes
from gateway.interfaces import Catalogue, PayloadFormat, report_code_for
from gateway.logging import get_logger
from gateway.model import Circuit
from gateway.offload import run_blocking
from gateway.simulator import flows
from gateway.simulator.state import Deposit, Owed, SimulatorState
from gateway.sniff import format_matches, sniff_bytes
from protocols.ports import Accepted, Incoming, RefusalKind, TransferRefused

__all__ = ["Desk", "Timing", "new_flow_id"]

log = get_logger(__name__)
LIFECYCLE_CODE = "FEN1200A"
LIFECYCLE_CODES = (LIFECYCLE_CODE, "FEN1201A")  # Chorus Pro format, then CPP V1


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How Chorus Pro paces its answers here (the real pace is not public: seconds, not days)."""

    report_delay: float = 2.0  # seconds from deposit to integration report
    status_interval: float = 4.0  # seconds between two lifecycle statuses
    reject_share: float = 0.15  # share of invoices that end REJETEE
    suspend_share: float = 0.10  # share that end SUSPENDUE
    g2b_invoice_code: str = "XGB0001A"  # sandbox placeholders (config/sandbox/raccord.yaml)
    g2b_report_code: str = "XGB0003A"
    happy_path: tuple[str, ...] = flows.HAPPY_PATH  # the statuses of an invoice that is paid

    def __post_init__(self) -> None:
        if len(self.happy_path) < 2:
            raise ValueError("happy_path: a lifecycle has at least two statuses")


def lifecycle_code(conn: ConnectionConfig) -> str | None:
    """The lifecycle code this connection receives, if any (domain.md §5)."""
    return next((c for c in LIFECYCLE_CODES if c in conn.subscriptions.reception), None)


def _transfer_key(incoming: Incoming) -> str | None:
    """What names a repeated transfer: the protocol's id, or an SFTP file's name."""
    if incoming.peer_message_id is not None:
        return incoming.peer_message_id
    return incoming.file_name if incoming.protocol == "sftp" else None


def new_flow_id() -> str:
    """The simulator's flow ids: never mistaken for a gateway message id (26 characters)."""
    return "SIM" + secrets.token_hex(10).upper()


def _flow_name(code: str) -> tuple[str, str]:
    flow_id = new_flow_id()
    return flow_id, f"{code}_{flow_id}.xml"


def judge(
    payload: bytes, expected: PayloadFormat | None
) -> tuple[str, str | None, tuple[str, ...]]:
    """(INTEGRE | REJETE, reason, invoice numbers) for one deposited payload."""
    sniffed = sniff_bytes(payload)
    if expected is not None and not format_matches(expected, sniffed):
        found = sniffed.format.value if sniffed.format else "unrecognised"
        return flows.REJECTED, f"format {found} ({sniffed.detail}) is not {expected.value}", ()
    if payload.lstrip()[:5] == b"%PDF-":
        return flows.INTEGRATED, None, ()
    facts = facts_from_bytes(payload)
    if facts.problem is not None:
        return flows.REJECTED, f"XML mal formé: {facts.problem}", ()
    return flows.INTEGRATED, None, facts.invoices


async def _collect(data: bytes | AsyncIterable[bytes], cap: int) -> bytes:
    if isinstance(data, bytes):
        if len(data) > cap:
            raise TransferRefused(RefusalKind.TOO_LARGE, f"over {cap} bytes")
        return data
    body = bytearray()
    async for chunk in data:
        body += chunk
        if len(body) > cap:
            raise TransferRefused(RefusalKind.TOO_LARGE, f"over {cap} bytes")
    return bytes(body)


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)


class Desk:
    """Judges deposits, stores them, and records the flows owed back (an `InboxPort`)."""

    def __init__(
        self,
        *,
        config: Config,
        catalogue: Catalogue,
        state: SimulatorState,
        folder: Path,
        timing: Timing,
        clock: Callable[[], dt.datetime],
        draw: random.Random,
    ) -> None:
        self._connections = {conn.name: conn for conn in config.connections}
        self._catalogue, self._state, self._folder = catalogue, state, folder
        self._timing, self._clock, self._draw = timing, clock, draw
        self._armed: dict[str, tuple[bool, Callable[[], None]]] = {}
        self._answering: dict[str, Callable[[], None]] = {}

    def on_next_deposit(
        self, connection: str, action: Callable[[], None], *, after_answer: bool = False
    ) -> None:
        """One shot: run `action` once the next deposit on `connection` is durable here, before
        the transfer is answered (or, `after_answer`, once the side reports its answer out:
        see `answered`). A crash campaign kills the gateway there: the file is with Chorus
        Pro, the gateway has not recorded so, and must not make it two deposits."""
        self._armed[connection] = (after_answer, action)

    def disarm(self, connection: str) -> bool:
        """Forget an action that has not run; False when it already ran."""
        armed = self._armed.pop(connection, None)
        return (self._answering.pop(connection, None) or armed) is not None

    def answered(self, connection: str) -> None:
        """A side's answer to the last transfer on `connection` is out (the PeSIT side: the
        session that carried it ended): run the action armed `after_answer`, if any."""
        action = self._answering.pop(connection, None)
        if action is not None:
            action()

    def _deposited(self, connection: str) -> None:
        armed = self._armed.pop(connection, None)
        if armed is None:
            return
        after_answer, action = armed
        if after_answer:
            self._answering[connection] = action
        else:
            action()

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        conn = self._connections.get(incoming.connection or incoming.source)
        if conn is None:
            raise TransferRefused(RefusalKind.INVALID, f"no connection {incoming.source!r}")
        if incoming.interface_code not in conn.subscriptions.emission:
            raise TransferRefused(
                RefusalKind.NOT_SUBSCRIBED,
                f"{incoming.interface_code} is not subscribed by {conn.name}",
            )
        payload = await _collect(data, conn.max_size)
        key = _transfer_key(incoming)
        if key is not None:
            known = await run_blocking(self._state.find_deposit, conn.name, key)
            if known is not None:
                log.info("simulator.repeated_deposit", connection=conn.name,
                         file_name=known.file_name, flow_id=known.flow_id)  # fmt: skip
                return Accepted(known.flow_id, known.sha256, known.size, duplicate=True)
        deposit = self._deposit(conn, incoming, payload)
        path = self._folder / conn.name / f"{deposit.flow_id}_{deposit.file_name}"
        await run_blocking(_write_durably, path, payload)
        await run_blocking(self._state.record_deposit, deposit, self._owed(conn, deposit))
        log.info("simulator.deposit", connection=conn.name, interface_code=deposit.code,
                 file_name=deposit.file_name, result=deposit.result,
                 reason=deposit.reason)  # fmt: skip
        self._deposited(conn.name)
        return Accepted(deposit.flow_id, deposit.sha256, deposit.size, duplicate=False)

    def _deposit(self, conn: ConnectionConfig, incoming: Incoming, payload: bytes) -> Deposit:
        spec = self._catalogue.get(incoming.interface_code)
        result, reason, invoices = judge(payload, spec.format if spec else None)
        return Deposit(
            flow_id=new_flow_id(), connection=conn.name, code=incoming.interface_code,
            file_name=incoming.file_name or f"{incoming.interface_code}_unnamed",
            peer_message_id=_transfer_key(incoming), size=len(payload),
            sha256=hashlib.sha256(payload).hexdigest(),
            received_at=self._clock().timestamp(), result=result, reason=reason,
            invoices=invoices,
        )  # fmt: skip

    @property
    def g2b_invoice_code(self) -> str:
        return self._timing.g2b_invoice_code

    def report_code(self, conn: ConnectionConfig, code: str) -> str:
        """CSO… for a B2G deposit (the documented default), the G2B report code otherwise."""
        if conn.circuit is Circuit.B2G:
            return report_code_for(code)
        return self._timing.g2b_report_code

    def _owed(self, conn: ConnectionConfig, deposit: Deposit) -> list[Owed]:
        owed: list[Owed] = []
        now = self._clock()
        at = deposit.received_at + self._timing.report_delay
        code = self.report_code(conn, deposit.code)
        if code in conn.subscriptions.reception:
            flow_id, name = _flow_name(code)
            body = flows.integration_report(
                deposited_name=deposit.file_name, flow_id=flow_id, result=deposit.result,
                reason=deposit.reason, now=now,
            )  # fmt: skip
            owed.append((code, name, "report", deposit.flow_id, body, at))
        lifecycle = lifecycle_code(conn)
        b2g = conn.circuit is Circuit.B2G
        if b2g and lifecycle is not None and deposit.result == flows.INTEGRATED:
            owed.extend(self._statuses(deposit, at, code=lifecycle))
        return owed

    def _statuses(self, deposit: Deposit, start: float, *, code: str) -> list[Owed]:
        """One lifecycle flow per step, listing every invoice still moving at that step."""
        invoices: list[str | None] = list(deposit.invoices) or [None]
        t = self._timing
        paths = {
            number: flows.plan_lifecycle(self._draw, reject_share=t.reject_share,
                                         suspend_share=t.suspend_share, happy_path=t.happy_path)
            for number in invoices
        }  # fmt: skip
        owed: list[Owed] = []
        for step in range(max(len(path) for path in paths.values())):
            moving = [(n, path[step]) for n, path in paths.items() if step < len(path)]
            _, name = _flow_name(code)
            due = start + (step + 1) * self._timing.status_interval
            when = dt.datetime.fromtimestamp(due, dt.UTC)
            body = flows.lifecycle_flow(deposited_name=deposit.file_name, statuses=moving, now=when)
            owed.append((code, name, "status", deposit.flow_id, body, due))
        return owed

    def issue_g2b_invoice(self, conn: ConnectionConfig, number: str) -> bool:
        """Owe the gateway one G2B invoice (blocking); False if the connection cannot carry it."""
        code = self._timing.g2b_invoice_code
        if conn.circuit is not Circuit.G2B or code not in conn.subscriptions.reception:
            return False
        _, name = _flow_name(code)
        now = self._clock()
        body = flows.g2b_invoice(number, now=now)
        self._state.owe(conn.name, [(code, name, "invoice", number, body, now.timestamp())])
        return True
