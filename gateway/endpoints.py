"""The endpoint registry: each protocol adds its factory here, and only here.

This is the one gateway module allowed to import every protocol endpoint (tests/test_layering.py);
the daemon asks it for the factories and never names a protocol itself.
"""

from __future__ import annotations

from gateway import plug_as2, plug_intake, plug_pesit, plug_sftp
from gateway.services import AdminExtension, EndpointFactory


def endpoint_factories() -> list[EndpointFactory]:
    """Factories of the listeners and outbox workers every configured protocol needs."""
    return [plug_intake.factory, plug_as2.factory, plug_sftp.factory, plug_pesit.factory]


def admin_extensions() -> list[AdminExtension]:
    """Routes protocols and intake add to the admin server (HTTP API, async MDN URL…)."""
    return [plug_intake.admin_routes, plug_as2.admin_routes]
