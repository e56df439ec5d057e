"""What the PeSIT adapters ask the gateway, answered from its registry, store and metrics.

The adapters of `protocols.pesit.endpoint` see small protocols (`Observer`, `Admission`,
`OutgoingFiles`); these are the gateway's implementations, one connection each.
"""

from __future__ import annotations

from gateway import metrics
from gateway.errors import ConnectionStateError
from gateway.logging import get_logger
from gateway.model import Direction, MessageState
from gateway.services import GatewayContext
from gateway.store import IllegalTransition
from protocols.pesit.diagnostics import DiagnosticCode
from protocols.pesit.endpoint import OutgoingFile
from protocols.ports import RefusalKind, TransferRefused

log = get_logger(__name__)
__all__ = ["MetricsObserver", "RegistryAdmission", "StoreOutgoing"]


class MetricsObserver:
    """The adapters' observations as `raccord_*` metrics (bounded labels only)."""

    def __init__(self, connection: str) -> None:
        self._connection = connection

    def session(self, role: str, delta: int) -> None:
        metrics.SESSIONS.labels("pesit", role).inc(delta)

    def auth_failure(self, reason: str) -> None:
        metrics.AUTH_FAILURES.labels("pesit", reason).inc()

    def diagnostic(self, direction: str, code: DiagnosticCode) -> None:
        label = str(code) if code.known is not None else metrics.UNKNOWN
        metrics.PESIT_DIAGNOSTICS.labels(self._connection, direction, label).inc()

    def sync_point(self, direction: str) -> None:
        metrics.SYNC_POINTS.labels(self._connection, direction).inc()

    def refused(self, kind: RefusalKind) -> None:
        metrics.REFUSED.labels("pesit", "reception", kind.value).inc()


class RegistryAdmission:
    """Before a byte is spooled: the connection carries traffic and this reception code."""

    def __init__(self, context: GatewayContext, connection: str) -> None:
        self._context = context
        self._connection = connection

    def admit(self, interface_code: str) -> TransferRefused | None:
        context = self._context
        try:
            view = context.registry.check_traffic(self._connection, now=context.clock())
        except ConnectionStateError as exc:
            return TransferRefused(RefusalKind.CONNECTION_CLOSED, exc.reason)
        if interface_code not in context.catalogue:
            return TransferRefused(RefusalKind.UNKNOWN_CODE, f"{interface_code} is not known")
        if interface_code not in view.config.subscriptions.reception:
            reason = f"{self._connection} does not receive {interface_code}"
            return TransferRefused(RefusalKind.NOT_SUBSCRIBED, reason)
        return None


class StoreOutgoing:
    """Received flows of one connection not yet delivered: what AIFE may SELECT."""

    def __init__(self, context: GatewayContext, connection: str) -> None:
        self._context = context
        self._connection = connection

    async def waiting(self, interface_code: str) -> list[OutgoingFile]:
        store = self._context.store
        messages = await store.list_messages(
            state=MessageState.ACCEPTED,
            interface_code=interface_code,
            connection=self._connection,
            direction=Direction.RECEPTION,
            limit=20,
        )
        return [
            OutgoingFile(
                message_id=m.id,
                path=store.payload_path(m),
                size=m.size,
                interface_code=m.interface_code,
                created=m.created_at,
                file_name=m.file_name,
            )
            for m in messages
        ]

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None:
        code = metrics.code_label(file.interface_code, self._context.catalogue)
        detail = {"protocol": "pesit", "transfer_id": transfer_id, "by": "select"}
        try:
            await self._context.store.mark_delivered(file.message_id, detail=detail)
        except IllegalTransition as exc:  # delivered meanwhile by another path: keep the first
            log.warning("pesit.already_delivered", message_id=file.message_id, reason=str(exc))
            return
        metrics.DELIVERIES.labels("pesit", code, "delivered").inc()
