"""Typed errors of the gateway layer; each carries what an operator needs to act on it."""

from __future__ import annotations

from protocols.errors import RaccordError

__all__ = [
    "CertificateError",
    "CertificateRevoked",
    "ConfigError",
    "ConnectionStateError",
    "RaccordError",
    "RoutingError",
    "StoreError",
]


class ConfigError(RaccordError):
    """One configuration problem, named by its field path (`connections[2].structure`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class CertificateError(RaccordError):
    """A certificate or key is unusable for a connection; the reason says why."""

    def __init__(self, connection: str | None, reason: str) -> None:
        where = connection if connection is not None else "certificate"
        super().__init__(f"{where}: {reason}")
        self.connection = connection
        self.reason = reason


class CertificateRevoked(CertificateError):
    """A CRL in force lists the certificate: its connection's traffic stops (not the gateway)."""


class RoutingError(RaccordError):
    """A flow cannot be routed: unknown code, no connection, wrong format, connection closed.

    `kind` is one of the `protocols.ports.RefusalKind` values, so endpoints can map it to
    their wire answer and metrics can count it with a bounded label.
    """

    def __init__(self, interface_code: str, reason: str, *, kind: str = "not-subscribed") -> None:
        super().__init__(f"{interface_code}: {reason}")
        self.interface_code = interface_code
        self.reason = reason
        self.kind = kind


class ConnectionStateError(RaccordError):
    """A connection refuses traffic or a lifecycle change (not actif, outside validity...)."""

    def __init__(self, connection: str, reason: str) -> None:
        super().__init__(f"{connection}: {reason}")
        self.connection = connection
        self.reason = reason


class StoreError(RaccordError):
    """The durable store could not record something; nothing was acknowledged."""
