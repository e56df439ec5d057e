"""The endpoint registry: each protocol adds its factory here, and only here.

This is the one gateway module allowed to import every protocol endpoint (tests/test_layering.py);
the daemon asks it for the factories and never names a protocol itself.
"""

from __future__ import annotations

from gateway.services import EndpointFactory


def endpoint_factories() -> list[EndpointFactory]:
    """Factories of the listeners and outbox workers every configured protocol needs."""
    return []
