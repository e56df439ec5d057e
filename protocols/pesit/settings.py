"""The per-connection settings the PeSIT core needs (pesit.md §11), as one frozen object.

The gateway builds one from its configuration; the core never sees the rest of the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.pesit.diagnostics import Diagnostic, PesitLocalError
from protocols.pesit.framing import PreConnection

__all__ = ["MIN_ENTITY_SIZE", "PesitSettings", "PreConnection", "Timers"]

MIN_ENTITY_SIZE = 64  # below this an entity carries more header than data


@dataclass(frozen=True, slots=True, kw_only=True)
class Timers:
    """Seconds. Tp: next expected FPDU; Td: server idle; Tc: CONNECT after accept; Tr: close."""

    tp: float = 30.0
    td: float = 300.0
    tc: float = 30.0
    tr: float = 30.0

    def __post_init__(self) -> None:
        for name in ("tp", "td", "tc", "tr"):
            if not getattr(self, name) > 0:
                raise _invalid(f"timer {name} must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class PesitSettings:
    """One connection sheet's PeSIT side. Ids are the sheet's Part IDs (PI 3 / PI 4)."""

    requester_id: str
    server_id: str
    password: str = ""
    preconnection: PreConnection | None = None
    prefixed: bool = True
    connection_id: int = 1
    sync_interval_kb: int = 32
    sync_window: int = 2
    max_entity_size: int = 4096
    article_size: int = 1024
    timers: Timers = field(default_factory=Timers)

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("requester_id", self.requester_id, 24),
            ("server_id", self.server_id, 24),
            ("password", self.password, 8),
        ):
            if len(value) > limit or not value.isascii() or not value.isprintable():
                raise _invalid(f"{name} must be printable ASCII of at most {limit} characters")
        if not self.requester_id or not self.server_id:
            raise _invalid("requester_id and server_id are required")
        _check_range("connection_id", self.connection_id, 1, 0xFF)
        _check_range("sync_interval_kb", self.sync_interval_kb, 0, 0xFFFF)
        _check_range("sync_window", self.sync_window, 0, 0xFF)
        _check_range("max_entity_size", self.max_entity_size, MIN_ENTITY_SIZE, 0xFFFF)
        _check_range("article_size", self.article_size, 1, 0xFFFF)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise _invalid(f"{name} must be within {low}..{high}, got {value}")


def _invalid(reason: str) -> PesitLocalError:
    return PesitLocalError(Diagnostic.PARAMETER_ERROR, reason)
