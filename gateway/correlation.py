"""Correlation: link each return flow to the emitted message it answers, and index invoices.

Every message is read once (`correlated_at` marks it, durably): an emitted invoice flow has its
invoice numbers indexed; a flow from Chorus Pro (integration report, lifecycle) is linked to the
emitted messages it names — by our outbound file name `<code>_<message id>` (the best handle),
by the id a protocol gave our transfer, or by invoice number — and each status it carries is
recorded as an event on the emitted message, so that message's history reads accepted → sent →
acknowledged → integration report → lifecycle statuses. A received G2B invoice is indexed the
same way, so the status the back office later emits about it is linked back to it.

All writes for one message (its references, the events on every linked message and its own
`correlated`/`uncorrelated` event) are one transaction: a crash never records a status twice.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway import metrics
from gateway.connections import ConnectionRegistry
from gateway.correlation_xml import OUTBOUND_NAME, FlowFacts, StatusRecord, read_facts
from gateway.interfaces import Catalogue, PayloadFormat
from gateway.logging import get_logger
from gateway.model import Circuit, Direction, MessageState
from gateway.offload import run_blocking
from gateway.polling import PollingService
from gateway.store import InvalidSubmission, Message, Store, StoreError, UnknownMessage
from gateway.wakeups import CORRELATE, Wakeups

__all__ = [
    "INTEGRATED",
    "KNOWN_STATUSES",
    "REJECTED",
    "CorrelationService",
    "Correlator",
    "integration_result",
    "normalise_status",
    "status_label",
]

log = get_logger(__name__)

INTEGRATED, REJECTED, OTHER = "integrated", "rejected", "other"
KNOWN_STATUSES = frozenset(
    {
        "DEPOSEE", "EN_COURS_ACHEMINEMENT", "MISE_A_DISPOSITION", "SUSPENDUE", "REJETEE",
        "SERVICE_FAIT", "MANDATEE", "COMPTABILISEE", "MISE_EN_PAIEMENT",
        *(str(code) for code in range(200, 214)),  # the reform's CDAR lifecycle codes
    }
)  # fmt: skip
_REJECTED_WORDS = ("REJET", "KO", "ERREUR", "ERROR", "REFUS", "ANOMALIE", "ECHEC")
_INTEGRATED_WORDS = ("INTEGRE", "OK", "ACCEPTE", "SUCCES", "DEPOSE", "TRAITE")
_MAX_LINKED_IDS = 50  # flow identifiers looked up per return flow
_MAX_SHOWN = 100  # ids listed in one event detail
_CANDIDATES = 10  # messages sharing one invoice number looked at


def normalise_status(raw: str) -> str:
    """`Mise à disposition` and `MISE_A_DISPOSITION` are the same status."""
    plain = unicodedata.normalize("NFKD", raw)
    ascii_only = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return "_".join(ascii_only.upper().replace("-", " ").split())


def status_label(status: str) -> str:
    """A bounded metric label: a known status, a report result, or `other`."""
    return status if status in KNOWN_STATUSES or status in (INTEGRATED, REJECTED) else OTHER


def integration_result(raw: str) -> str:
    """An integration report's flow status, read as integrated or rejected (or other)."""
    words = normalise_status(raw).replace("_", " ").split()
    if any(w.startswith(_REJECTED_WORDS) for w in words):
        return REJECTED
    if any(w.startswith(_INTEGRATED_WORDS) for w in words):
        return INTEGRATED
    return OTHER


@dataclass(slots=True)
class _Plan:
    """What one correlation will write, built before the single transaction."""

    targets: dict[str, str] = field(default_factory=dict)  # message id -> how it was found
    linked: list[tuple[str, str, Mapping[str, object]]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def link(self, target: str, kind: str, detail: Mapping[str, object]) -> None:
        self.linked.append((target, kind, detail))


class Correlator:
    """Reads one message's payload and records what it says about other messages."""

    def __init__(self, *, store: Store, catalogue: Catalogue, registry: ConnectionRegistry) -> None:
        self._store = store
        self._catalogue = catalogue
        self._registry = registry

    async def process(self, message: Message) -> bool:
        """Correlate `message` once; False when it had already been (nothing written)."""
        if message.correlated_at is not None:
            return False
        path = self._store.payload_path(message)
        try:
            facts = await run_blocking(read_facts, path)
        except OSError as exc:
            facts = FlowFacts(problem=f"payload unreadable: {exc.strerror or exc}")
        if facts.is_invoice:
            return await self._index_only(message, facts)
        if message.direction is Direction.RECEPTION:
            return await self._return_flow(message, facts)
        if facts.records and self._is_g2b(message):
            return await self._emitted_status(message, facts)
        return await self._index_only(message, facts)

    async def _index_only(self, message: Message, facts: FlowFacts) -> bool:
        """An invoice (or a flow saying nothing about others): keep its invoice numbers."""
        detail: dict[str, object] = {"invoices": list(facts.invoices[:_MAX_SHOWN])}
        if facts.problem:
            detail["problem"] = facts.problem
        refs = {"invoice": list(facts.invoices)} if facts.invoices else {}
        quiet = not facts.invoices and message.direction is Direction.EMISSION
        return await self._store.record_correlation(
            message.id, kind=None if quiet else "indexed", detail=detail, references=refs
        )

    async def _return_flow(self, message: Message, facts: FlowFacts) -> bool:
        """A flow from Chorus Pro: link it to what we emitted and record each status there."""
        plan = _Plan()
        await self._targets_by_identifier(message, facts, plan)
        await self._statuses(message, facts, plan, report=self._is_report(message))
        return await self._finish(message, facts, plan)

    async def _emitted_status(self, message: Message, facts: FlowFacts) -> bool:
        """A G2B status the back office emits: link it to the received invoice it is about."""
        plan = _Plan()
        await self._statuses(message, facts, plan, report=False)
        return await self._finish(message, facts, plan)

    async def _statuses(
        self, message: Message, facts: FlowFacts, plan: _Plan, *, report: bool
    ) -> None:
        """An invoice's status goes to that invoice's message (or, unmatched, to the flows the
        document names); a flow-level status to the flows it names, else to every invoice's."""
        named = list(plan.targets)
        found = [
            await self._by_invoice(message, r.invoice, plan) if r.invoice else []
            for r in facts.records
        ]
        everyone = list(plan.targets)
        for record, targets in zip(facts.records, found, strict=True):
            if record.invoice is None:
                self._apply(message, record, named or everyone, plan, report=report)
            else:
                self._apply(message, record, targets or named, plan, report=report)

    def _is_g2b(self, message: Message) -> bool:
        spec = self._catalogue.get(message.interface_code)
        return spec is not None and Circuit.G2B in spec.circuits

    def _is_report(self, message: Message) -> bool:
        spec = self._catalogue.get(message.interface_code)
        if spec is not None and spec.format is PayloadFormat.INTEGRATION_REPORT:
            return True
        return message.interface_code.startswith("CSO")

    async def _targets_by_identifier(self, message: Message, facts: FlowFacts, plan: _Plan) -> None:
        """Our file names and transfer ids quoted by the flow (or in its own file name)."""
        ids = list(facts.message_ids)
        if message.file_name:
            ids.extend(m.group(2) for m in OUTBOUND_NAME.finditer(message.file_name))
        for candidate in dict.fromkeys(ids):
            try:
                found = await self._store.get(candidate)
            except UnknownMessage:
                continue
            if self._answers(message, found):
                plan.targets.setdefault(found.id, "file-name")
        connections = [
            v.config.name for v in self._registry if v.config.environment is message.environment
        ]
        for ident in facts.identifiers[:_MAX_LINKED_IDS]:
            for name in connections:
                sent = await self._store.find_by_peer_id(source=name, peer_message_id=ident)
                if sent is not None and self._answers(message, sent):
                    plan.targets.setdefault(sent.id, "transfer-id")

    @staticmethod
    def _answers(message: Message, other: Message) -> bool:
        """Only a message of the other direction, in the same environment, can be answered."""
        if other.id == message.id or other.direction is message.direction:
            return False
        return message.environment is None or other.environment in (None, message.environment)

    def _apply(
        self,
        message: Message,
        record: StatusRecord,
        targets: list[str],
        plan: _Plan,
        *,
        report: bool,
    ) -> None:
        """Count one status and record it on every message it is about."""
        status = normalise_status(record.status)
        flow_level = record.invoice is None
        kind = "integration_report" if report and flow_level else "lifecycle_status"
        shown = integration_result(record.status) if kind == "integration_report" else status
        code = metrics.code_label(message.interface_code, self._catalogue)
        metrics.LIFECYCLE_STATUSES.labels(code, status_label(shown)).inc()
        detail: dict[str, object] = {
            "status": shown,
            "raw_status": record.status,
            "invoice": record.invoice,
            "reason": record.reason,
            "at": record.at,
            "interface_code": message.interface_code,
            "message_id": message.id,
            "direction": message.direction.value,
        }
        for target in targets:
            plan.link(target, kind, detail)

    async def _by_invoice(self, message: Message, invoice: str, plan: _Plan) -> list[str]:
        """The newest message of the other direction carrying `invoice` that went anywhere:
        one refused before it left (wrong format, negative MDN) cannot be what a status is about.
        """
        found = await self._store.find_by_reference(
            kind="invoice",
            value=invoice,
            direction=Direction.EMISSION
            if message.direction is Direction.RECEPTION
            else Direction.RECEPTION,
            environment=message.environment,
            limit=_CANDIDATES,
        )
        live = [m for m in found if m.state is not MessageState.REJECTED]
        if not live:
            if invoice not in plan.unmatched:
                plan.unmatched.append(invoice)
            return []
        plan.targets.setdefault(live[0].id, "invoice")
        return [live[0].id]

    async def _finish(self, message: Message, facts: FlowFacts, plan: _Plan) -> bool:
        """One transaction: a `correlated` event on both sides, every status, the mark."""
        for target, via in plan.targets.items():
            plan.linked.insert(
                0,
                (
                    target,
                    "correlated",
                    {
                        "message_id": message.id,
                        "interface_code": message.interface_code,
                        "direction": message.direction.value,
                        "via": via,
                    },
                ),
            )
        detail: dict[str, object] = {
            "related": dict(list(plan.targets.items())[:_MAX_SHOWN]),
            "statuses": len(facts.records),
            "unmatched_invoices": plan.unmatched[:_MAX_SHOWN],
        }
        if facts.problem:
            detail["problem"] = facts.problem
        kind = "correlated" if plan.targets else "uncorrelated"
        done = await self._store.record_correlation(
            message.id, kind=kind, detail=detail, linked=plan.linked
        )
        log.info(
            kind,
            message_id=message.id,
            interface_code=message.interface_code,
            related=sorted(plan.targets),
            statuses=len(facts.records),
            unmatched=len(plan.unmatched),
        )
        return done


class CorrelationService(PollingService):
    """Correlates every message not yet correlated, oldest first (also after a crash)."""

    def __init__(
        self,
        *,
        store: Store,
        catalogue: Catalogue,
        registry: ConnectionRegistry,
        wakeups: Wakeups,
        interval: float = 5.0,
        batch: int = 100,
    ) -> None:
        super().__init__(name="correlation", interval=interval, wakeups=wakeups, keys=[CORRELATE])
        self._store = store
        self._batch = batch
        self._correlator = Correlator(store=store, catalogue=catalogue, registry=registry)

    async def cycle(self) -> float | None:
        pending = await self._store.uncorrelated(limit=self._batch)
        for message in pending:
            await self._one(message)
        return 0.0 if len(pending) == self._batch else None

    async def _one(self, message: Message) -> None:
        try:
            await self._correlator.process(message)
        except (InvalidSubmission, UnknownMessage) as exc:  # this message, for good: mark it
            await self._give_up(message, str(exc))
        except StoreError:
            raise  # the store itself: the next cycle tries again
        except Exception as exc:  # a poisonous payload must not block the queue
            log.exception("correlation_crashed", message_id=message.id)
            await self._give_up(message, f"unexpected {type(exc).__name__}")

    async def _give_up(self, message: Message, reason: str) -> None:
        await self._store.record_correlation(
            message.id, kind="uncorrelated", detail={"problem": reason}
        )
