"""Pure routing: (interface code, direction, environment) -> the one connection carrying it.

Config validation guarantees at most one connection per (environment, code, direction); this
module turns a request into that connection or a RoutingError saying precisely why not.
"""

from __future__ import annotations

import datetime as dt

from gateway import metrics
from gateway.connections import ConnectionRegistry, ConnectionView
from gateway.errors import ConnectionStateError, RoutingError
from gateway.interfaces import Catalogue, InterfaceSpec
from gateway.model import Direction, Environment
from gateway.sniff import SniffResult, format_matches
from protocols.ports import RefusalKind


def subscribed(
    registry: ConnectionRegistry, *, code: str, direction: Direction, environment: Environment
) -> ConnectionView | None:
    """The connection subscribed to `code` in that direction and environment, if any."""
    for view in registry:
        conn = view.config
        if conn.environment is environment and code in getattr(conn.subscriptions, direction.value):
            return view
    return None


def route(
    registry: ConnectionRegistry,
    catalogue: Catalogue,
    *,
    code: str,
    direction: Direction,
    environment: Environment,
    now: dt.datetime,
    sniffed: SniffResult | None = None,
    size: int | None = None,
) -> tuple[ConnectionView, InterfaceSpec]:
    """Choose the connection for a flow, or raise RoutingError with the reason to return."""
    label = metrics.code_label(code, catalogue)
    try:
        spec = catalogue.get(code)
        if spec is None:
            raise RoutingError(
                code, f"{code} is not in the interface catalogue", kind=RefusalKind.UNKNOWN_CODE
            )
        if spec.direction is not direction:
            raise RoutingError(
                code, f"{code} is a {spec.direction.value} code", kind=RefusalKind.NOT_SUBSCRIBED
            )
        view = subscribed(registry, code=code, direction=direction, environment=environment)
        if view is None:
            raise RoutingError(
                code,
                f"no connection subscribed to {code} in {environment.value}",
                kind=RefusalKind.NOT_SUBSCRIBED,
            )
        try:
            registry.check_traffic(view.config.name, now=now)
        except ConnectionStateError as exc:
            raise RoutingError(
                code,
                f"connection {exc.connection!r}: {exc.reason}",
                kind=RefusalKind.CONNECTION_CLOSED,
            ) from exc
        limit = min(spec.max_size or view.config.max_size, view.config.max_size)
        if size is not None and size > limit:
            raise RoutingError(
                code,
                f"{size} bytes is over the {limit}-byte limit for {code}",
                kind=RefusalKind.TOO_LARGE,
            )
        if sniffed is not None and not format_matches(spec.format, sniffed):
            raise RoutingError(
                code,
                f"payload is not {spec.format.value}: {sniffed.detail}",
                kind=RefusalKind.WRONG_FORMAT,
            )
    except RoutingError as exc:
        metrics.ROUTING.labels(label, exc.kind).inc()
        raise
    metrics.ROUTING.labels(label, "routed").inc()
    return view, spec
