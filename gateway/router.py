"""Emission routing of accepted messages: interface code + environment -> the connection's outbox.

Inline, the inbox port asks for a `plan` before the bytes arrive: its `decide` runs once they
are all in (sniffed), and the store records the message routed — or rejected with the reason
the submitter hears at once — in the very commit that accepts it. At start-up, `sweep()` routes
any emission message still `accepted` (a repeat of one left unrouted, a message accepted
without a plan), so an acknowledged file is never stranded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from pathlib import PurePosixPath

from gateway import offload
from gateway.connections import ConnectionRegistry, ConnectionView
from gateway.errors import RoutingError
from gateway.interfaces import Catalogue, InterfaceSpec, PayloadFormat
from gateway.logging import get_logger
from gateway.model import Direction, Environment, MessageState
from gateway.routing import route
from gateway.sniff import SniffResult, sniff_file
from gateway.store import Disposition, Message, Receipt, RejectWith, RouteTo, Store
from gateway.wakeups import CORRELATE, Wakeups

log = get_logger(__name__)

_FORMAT_SUFFIX = {PayloadFormat.FACTURX.value: ".pdf"}


def outbound_name(code: str, message_id: str, original: str | None, fmt: str) -> str:
    """The protocol-level file name (domain.md §7 default): `<code>_<id>.<ext>`."""
    suffix = PurePosixPath(original).suffix.lower() if original else ""
    if not suffix or len(suffix) > 8 or not suffix[1:].isalnum():
        suffix = _FORMAT_SUFFIX.get(fmt, ".xml")
    return f"{code}_{message_id}{suffix}"


class EmissionPlan:
    """One emission's routing: decided when its last byte is in, applied by the accept commit."""

    def __init__(
        self,
        router: Router,
        *,
        code: str,
        environment: Environment,
        sniffed: Callable[[], SniffResult],
        original: str | None,
    ) -> None:
        self._router = router
        self._code = code
        self._environment = environment
        self._sniffed = sniffed
        self._original = original
        self._decided: Disposition | None = None
        self._refusal: RoutingError | None = None

    def decide(self, size: int) -> Disposition:
        """`Submission.decide`: the connection for these bytes, or the reason to reject them."""
        try:
            view, spec = self._router.choose(
                self._code, self._environment, sniffed=self._sniffed(), size=size
            )
        except RoutingError as exc:
            self._refusal = exc
            self._decided = RejectWith(exc.reason)
        else:
            name = partial(_name_for, spec.code, original=self._original, fmt=spec.format.value)
            self._decided = RouteTo(view.config.name, self._environment, name)
        return self._decided

    def announce(self, receipt: Receipt) -> None:
        """The new message is committed: wake its outbox, or raise the refusal it recorded."""
        if self._refusal is not None:
            self._router.refused(receipt.message_id, self._code, self._refusal)
            raise self._refusal
        routed = self._decided
        assert isinstance(routed, RouteTo)
        assert routed.file_name is not None
        name = routed.file_name(receipt.message_id)
        self._router.routed(receipt.message_id, self._code, routed.connection, file_name=name)


def _name_for(code: str, message_id: str, *, original: str | None, fmt: str) -> str:
    return outbound_name(code, message_id, original, fmt)


class Router:
    """Routes emission messages; refusals are recorded on the message and raised."""

    def __init__(
        self,
        *,
        store: Store,
        registry: ConnectionRegistry,
        catalogue: Catalogue,
        wakeups: Wakeups,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._store = store
        self._registry = registry
        self._catalogue = catalogue
        self._wakeups = wakeups
        self._clock = clock

    @property
    def wakeups(self) -> Wakeups:
        """Where routing announces new work (the inbox port uses it for received flows)."""
        return self._wakeups

    def plan(
        self,
        *,
        code: str,
        environment: Environment,
        sniffed: Callable[[], SniffResult],
        original: str | None,
    ) -> EmissionPlan:
        """The routing of one emission about to be accepted (see `EmissionPlan`)."""
        return EmissionPlan(
            self, code=code, environment=environment, sniffed=sniffed, original=original
        )

    def choose(
        self,
        code: str,
        environment: Environment,
        *,
        sniffed: SniffResult | None = None,
        size: int | None = None,
    ) -> tuple[ConnectionView, InterfaceSpec]:
        """The connection and interface for these bytes now, or RoutingError (without
        `sniffed`: whether the code can route at all, before anything is stored)."""
        return route(
            self._registry,
            self._catalogue,
            code=code,
            direction=Direction.EMISSION,
            environment=environment,
            now=self._clock(),
            sniffed=sniffed,
            size=size,
        )

    def routed(self, message_id: str, code: str, connection: str, *, file_name: str) -> None:
        """A message was queued on `connection`: say so, wake its outbox and the correlator."""
        log.info(
            "routed",
            message_id=message_id,
            interface_code=code,
            connection=connection,
            file_name=file_name,
        )
        self._wakeups.notify(connection)
        self._wakeups.notify(CORRELATE)

    def refused(self, message_id: str, code: str, exc: RoutingError) -> None:
        """A message was recorded rejected because it cannot be routed."""
        log.warning(
            "routing_refused", message_id=message_id, interface_code=code, reason=exc.reason
        )

    async def route_message(
        self, message: Message, *, environment: Environment, sniffed: SniffResult | None
    ) -> Message:
        """ACCEPTED -> QUEUED on the one subscribed connection, or REJECTED with the reason."""
        if sniffed is None:
            sniffed = await offload.run_blocking(sniff_file, self._store.payload_path(message))
        try:
            view, spec = self.choose(
                message.interface_code, environment, sniffed=sniffed, size=message.size
            )
        except RoutingError as exc:
            await self._store.reject(message.id, reason=exc.reason)
            self.refused(message.id, message.interface_code, exc)
            raise
        name = outbound_name(spec.code, message.id, message.file_name, spec.format.value)
        routed = await self._store.route(
            message.id, connection=view.config.name, environment=environment, file_name=name
        )
        self.routed(message.id, message.interface_code, view.config.name, file_name=name)
        return routed

    async def sweep(self) -> int:
        """Route every emission message left `accepted` (crash between accept and route)."""
        stranded = await self._store.list_messages(
            state=MessageState.ACCEPTED, direction=Direction.EMISSION, limit=10_000
        )
        routed = 0
        for message in stranded:
            if message.environment is None:
                await self._store.reject(message.id, reason="no environment to route in")
                continue
            try:
                await self.route_message(message, environment=message.environment, sniffed=None)
            except RoutingError:
                continue
            routed += 1
        return routed
