"""The inbox port endpoints are given: authenticate-then-accept rules shared by every protocol.

Reception (a flow from Chorus Pro on a connection): the connection must carry traffic and be
subscribed to the code; the file is made durable and later delivered to the back office.
Emission (a partner or the back office deposits a flow for Chorus Pro): the code must route
to an open connection before a byte is stored; the payload is sniffed while it streams to disk,
then routed — or recorded as rejected with the reason, which the endpoint returns — in the
same commit that accepts it, so the acknowledgement waits for one commit, not two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path

from gateway import metrics
from gateway.connections import ConnectionRegistry
from gateway.errors import ConnectionStateError, RoutingError
from gateway.inbox import Inbox
from gateway.interfaces import Catalogue
from gateway.model import Direction, Environment, MessageState
from gateway.offload import read_blocks
from gateway.router import Router
from gateway.sniff import Sniffer
from gateway.store import (
    ConflictingRepeat,
    IllegalTransition,
    InvalidSubmission,
    PayloadTooLarge,
    Receipt,
    Store,
    StoreError,
    Submission,
    TruncatedPayload,
)
from gateway.wakeups import CORRELATE, DELIVER
from protocols.ports import Accepted, Incoming, RefusalKind, TransferRefused


@dataclass(frozen=True, slots=True)
class _Spooled:
    """A complete file an endpoint spooled and hashed (`accept_spooled`)."""

    path: Path
    size: int
    sha256: str


Data = bytes | AsyncIterable[bytes] | _Spooled


def _refusal(exc: StoreError) -> TransferRefused:
    if isinstance(exc, PayloadTooLarge):
        return TransferRefused(RefusalKind.TOO_LARGE, str(exc))
    if isinstance(exc, TruncatedPayload):
        return TransferRefused(RefusalKind.TRUNCATED, str(exc))
    if isinstance(exc, InvalidSubmission | ConflictingRepeat):
        return TransferRefused(RefusalKind.INVALID, str(exc))
    return TransferRefused(RefusalKind.UNAVAILABLE, "the gateway could not store the file")


def _accepted(receipt: Receipt) -> Accepted:
    """The endpoint's view of a receipt: a new message's accept commit held `Incoming.events`."""
    duplicate = receipt.duplicate
    return Accepted(receipt.message_id, receipt.sha256, receipt.size, duplicate,
                    events_recorded=not duplicate)  # fmt: skip


def _routing_refusal(exc: RoutingError, *, message_id: str | None = None) -> TransferRefused:
    return TransferRefused(RefusalKind(exc.kind), exc.reason, message_id=message_id)


class GatewayInbox:
    """`protocols.ports.InboxPort` over the store, the registry and the router."""

    def __init__(
        self,
        *,
        inbox: Inbox,
        store: Store,
        registry: ConnectionRegistry,
        catalogue: Catalogue,
        router: Router,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._inbox = inbox
        self._store = store
        self._registry = registry
        self._catalogue = catalogue
        self._router = router
        self._clock = clock

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        """Durable acceptance, or TransferRefused with the kind the endpoint maps to its wire."""
        if incoming.direction == "reception":
            receipt = await self._reception(data, incoming)
        else:
            receipt = await self._emission(data, incoming)
        return _accepted(receipt)

    async def accept_spooled(
        self, path: Path, incoming: Incoming, *, size: int, sha256: str
    ) -> Accepted:
        """`protocols.ports.SpoolAdopter`: a received file is renamed into the store (no
        second copy); an emission is streamed from `path`, its format being sniffed."""
        if incoming.direction == "reception":
            receipt = await self._reception(_Spooled(path, size, sha256), incoming)
        else:
            receipt = await self._emission(read_blocks(path), incoming)
        return _accepted(receipt)

    async def _durable(
        self, data: Data, submission: Submission, sniffer: Sniffer | None
    ) -> Receipt:
        try:
            if isinstance(data, _Spooled):
                return await self._inbox.adopt(
                    data.path, submission, sha256=data.sha256, size=data.size
                )
            return await self._inbox.accept(
                data, submission, on_chunk=sniffer.feed if sniffer is not None else None
            )
        except StoreError as exc:
            raise _refusal(exc) from exc

    async def _reception(self, data: Data, incoming: Incoming) -> Receipt:
        name = incoming.connection or incoming.source
        try:
            view = self._registry.check_traffic(name, now=self._clock())
        except ConnectionStateError as exc:
            raise TransferRefused(RefusalKind.CONNECTION_CLOSED, exc.reason) from exc
        code = incoming.interface_code
        if code not in self._catalogue:
            raise TransferRefused(RefusalKind.UNKNOWN_CODE, f"{code} is not in the catalogue")
        if code not in view.config.subscriptions.reception:
            raise TransferRefused(
                RefusalKind.NOT_SUBSCRIBED, f"{name} is not subscribed to {code} in reception"
            )
        submission = Submission(
            source=incoming.source,
            direction=Direction.RECEPTION,
            interface_code=code,
            protocol=incoming.protocol,
            environment=view.config.environment,
            connection=name,
            peer_message_id=incoming.peer_message_id,
            file_name=incoming.file_name,
            max_size=view.config.max_size,
            expected_size=incoming.expected_size,
            events=incoming.events,
        )
        receipt = await self._durable(data, submission, None)
        self._count(incoming, name, receipt)
        if not receipt.duplicate:
            self._router.wakeups.notify(DELIVER)
            self._router.wakeups.notify(CORRELATE)
        return receipt

    async def _emission(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Receipt:
        try:
            environment = Environment(incoming.environment or "")
        except ValueError:
            raise TransferRefused(
                RefusalKind.INVALID, "no environment (qual or prod) given"
            ) from None
        code = incoming.interface_code
        try:  # refuse before storing anything when the code cannot route at all
            view, spec = self._router.choose(code, environment, size=incoming.expected_size)
        except RoutingError as exc:
            raise _routing_refusal(exc) from exc
        limit = min(spec.max_size or view.config.max_size, view.config.max_size)
        sniffer = Sniffer()
        plan = self._router.plan(
            code=code, environment=environment, sniffed=sniffer.result, original=incoming.file_name
        )
        submission = Submission(
            source=incoming.source,
            direction=Direction.EMISSION,
            interface_code=code,
            protocol=incoming.protocol,
            environment=environment,
            peer_message_id=incoming.peer_message_id,
            file_name=incoming.file_name,
            max_size=limit,
            expected_size=incoming.expected_size,
            events=incoming.events,
            decide=plan.decide,  # routed or rejected in the commit that accepts it
        )
        receipt = await self._durable(data, submission, sniffer)
        if not receipt.duplicate:
            try:
                plan.announce(receipt)
            except RoutingError as exc:
                raise _routing_refusal(exc, message_id=receipt.message_id) from exc
        elif receipt.state is MessageState.ACCEPTED:
            await self._route_repeat(receipt, environment)
        self._count(incoming, view.config.name, receipt)
        return receipt

    async def _route_repeat(self, receipt: Receipt, environment: Environment) -> None:
        """A repeat of a message left unrouted (accepted without a plan, a crash): route it."""
        try:
            message = await self._store.get(receipt.message_id)
            if message.state is not MessageState.ACCEPTED:
                return
            await self._router.route_message(
                message, environment=message.environment or environment, sniffed=None
            )
        except RoutingError as exc:
            raise _routing_refusal(exc, message_id=receipt.message_id) from exc
        except IllegalTransition:  # a concurrent repeat routed (or refused) it first
            return
        except StoreError as exc:  # durable but unrouted: the start-up sweep or a repeat routes it
            raise TransferRefused(
                RefusalKind.UNAVAILABLE,
                "the file is stored but could not be routed yet; submit it again or wait",
                message_id=receipt.message_id,
            ) from exc

    def _count(self, incoming: Incoming, connection: str, receipt: Receipt) -> None:
        code = metrics.code_label(incoming.interface_code, self._catalogue)
        outcome = "duplicate" if receipt.duplicate else "accepted"
        metrics.MESSAGES.labels(
            incoming.protocol, incoming.direction, code, connection, outcome
        ).inc()
        if not receipt.duplicate:
            metrics.BYTES.labels(incoming.protocol, incoming.direction, code, connection).inc(
                receipt.size
            )
