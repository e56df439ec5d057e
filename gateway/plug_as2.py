"""Wires the as2 work into the daemon: services built from the gateway context."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.services import GatewayContext, Service


def factory(context: GatewayContext) -> Sequence[Service]:
    """The as2 listeners and workers the configuration asks for (none yet)."""
    del context
    return []


def admin_routes(app: web.Application) -> None:
    """Routes the as2 work adds to the admin server (none yet)."""
    del app
