"""Emission routing of accepted messages: interface code + environment -> the connection's outbox.

Used twice: inline by the inbox port (so a submitter hears the refusal reason at once) and at
start-up by `sweep()`, which routes any emission message a crash left `accepted` between its
durable acceptance and its routing — so an acknowledged file is never stranded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import PurePosixPath

from gateway import offload
from gateway.connections import ConnectionRegistry
from gateway.errors import RoutingError
from gateway.interfaces import Catalogue, PayloadFormat
from gateway.logging import get_logger
from gateway.model import Direction, Environment, MessageState
from gateway.routing import route
from gateway.sniff import SniffResult, sniff_file
from gateway.store import Message, Store
from gateway.wakeups import CORRELATE, Wakeups

log = get_logger(__name__)

_FORMAT_SUFFIX = {PayloadFormat.FACTURX.value: ".pdf"}


def outbound_name(code: str, message_id: str, original: str | None, fmt: str) -> str:
    """The protocol-level file name (domain.md §7 default): `<code>_<id>.<ext>`."""
    suffix = PurePosixPath(original).suffix.lower() if original else ""
    if not suffix or len(suffix) > 8 or not suffix[1:].isalnum():
        suffix = _FORMAT_SUFFIX.get(fmt, ".xml")
    return f"{code}_{message_id}{suffix}"


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

    async def route_message(
        self, message: Message, *, environment: Environment, sniffed: SniffResult | None
    ) -> Message:
        """ACCEPTED -> QUEUED on the one subscribed connection, or REJECTED with the reason."""
        if sniffed is None:
            sniffed = await offload.run_blocking(sniff_file, self._store.payload_path(message))
        try:
            view, spec = route(
                self._registry,
                self._catalogue,
                code=message.interface_code,
                direction=Direction.EMISSION,
                environment=environment,
                now=self._clock(),
                sniffed=sniffed,
                size=message.size,
            )
        except RoutingError as exc:
            await self._store.reject(message.id, reason=exc.reason)
            log.warning(
                "routing_refused",
                message_id=message.id,
                interface_code=message.interface_code,
                reason=exc.reason,
            )
            raise
        name = outbound_name(spec.code, message.id, message.file_name, spec.format.value)
        routed = await self._store.route(
            message.id, connection=view.config.name, environment=environment, file_name=name
        )
        log.info(
            "routed",
            message_id=message.id,
            interface_code=message.interface_code,
            connection=view.config.name,
            file_name=name,
        )
        self._wakeups.notify(view.config.name)
        self._wakeups.notify(CORRELATE)
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
