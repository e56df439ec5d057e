"""Pure routing: (interface code, direction, environment) -> the one connection carrying it.

Config validation guarantees at most one connection per (environment, code, direction); this
module turns a request into that connection or a RoutingError saying precisely why not.
"""

from __future__ import annotations

import datetime as dt

from gateway import metrics
from gateway.connections import ConnectionRegistry, ConnectionView
from gateway.errors import ConnectionStateError, RoutingError
from gateway.interfaces import CODE_PATTERN, Catalogue, InterfaceSpec
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


def _shown(code: str) -> str:
    """A code as it may be echoed back: itself when well-formed, else escaped and short."""
    if CODE_PATTERN.match(code):
        return code
    return ascii(code[:40]) + ("..." if len(code) > 40 else "")


def _spec(catalogue: Catalogue, code: str, direction: Direction) -> InterfaceSpec:
    spec = catalogue.get(code)
    if spec is None:
        shown = _shown(code)
        raise RoutingError(
            shown, f"{shown} is not in the interface catalogue", kind=RefusalKind.UNKNOWN_CODE
        )
    if spec.direction is not direction:
        raise RoutingError(
            code, f"{code} is a {spec.direction.value} code", kind=RefusalKind.NOT_SUBSCRIBED
        )
    return spec


def _open_connection(
    registry: ConnectionRegistry,
    code: str,
    *,
    direction: Direction,
    environment: Environment,
    now: dt.datetime,
) -> ConnectionView:
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
    return view


def _check_payload(
    spec: InterfaceSpec, view: ConnectionView, *, sniffed: SniffResult | None, size: int | None
) -> None:
    limit = min(spec.max_size or view.config.max_size, view.config.max_size)
    if size is not None and size > limit:
        raise RoutingError(
            spec.code,
            f"{size} bytes is over the {limit}-byte limit for {spec.code}",
            kind=RefusalKind.TOO_LARGE,
        )
    if sniffed is not None and not format_matches(spec.format, sniffed):
        raise RoutingError(
            spec.code,
            f"payload is not {spec.format.value}: {sniffed.detail}",
            kind=RefusalKind.WRONG_FORMAT,
        )


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
    """Choose the connection for a flow, or raise RoutingError with the reason to return.

    Checked in this order, the first failure being the answer: the code is catalogued and of
    this direction; one connection carries it here; that connection may carry traffic now
    (actif, inside its validity, certificate valid); the size; the payload's sniffed format.
    """
    label = metrics.code_label(code, catalogue)
    try:
        spec = _spec(catalogue, code, direction)
        view = _open_connection(
            registry, code, direction=direction, environment=environment, now=now
        )
        _check_payload(spec, view, sniffed=sniffed, size=size)
    except RoutingError as exc:
        metrics.ROUTING.labels(label, exc.kind).inc()
        raise
    metrics.ROUTING.labels(label, "routed").inc()
    return view, spec
