"""How protocol listeners and outbox workers plug into the daemon without editing it.

A protocol package contributes an `EndpointFactory` (registered in `gateway/endpoints.py`): given
the gateway's context, it returns the services to run. The daemon starts them, asks them whether
they are ready, and stops them on SIGTERM or before a reload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aiohttp import web

from gateway.config import Config
from gateway.connections import ConnectionRegistry
from gateway.credentials import LoadedCredentials
from gateway.inbox import Inbox
from gateway.interfaces import Catalogue
from gateway.router import Router
from gateway.store import Store
from gateway.wakeups import Wakeups
from protocols.ports import InboxPort


@runtime_checkable
class Service(Protocol):
    """Something the daemon runs: a listener or a worker."""

    @property
    def name(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, *, timeout: float) -> None: ...


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """Everything a service may use; each service takes only the parts it needs."""

    config: Config
    registry: ConnectionRegistry
    catalogue: Catalogue
    credentials: LoadedCredentials  # with the CRLs they were checked against
    store: Store
    inbox: Inbox  # the store-level inbox (durable accept, duplicates)
    inbox_port: InboxPort  # what protocol endpoints get: traffic, subscription and routing rules
    router: Router
    wakeups: Wakeups
    clock: Callable[[], dt.datetime]


EndpointFactory = Callable[[GatewayContext], Sequence[Service]]
# Adds routes to the admin application before it starts; handlers read the *current* context
# through `gateway.admin.current_context(request)`, so a reload needs no new routes.
AdminExtension = Callable[[web.Application], None]
