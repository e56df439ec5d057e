"""What the PeSIT adapters are given by the gateway, as small frozen objects and protocols.

The adapters never see the configuration or the store: a `ServerProfile` or a `Peer` says how
one connection speaks PeSIT, `Admission` and `OutgoingFiles` answer the questions only the
gateway can answer, and an `Observer` receives what metrics count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode
from protocols.pesit.settings import PesitSettings
from protocols.ports import RefusalKind, TransferRefused

__all__ = [
    "REFUSAL_DIAGNOSTICS",
    "Admission",
    "NullObserver",
    "Observer",
    "Offload",
    "OutgoingFile",
    "OutgoingFiles",
    "Peer",
    "ServerProfile",
    "bare_name",
    "diagnostic_for",
]

P = ParamSpec("P")
T = TypeVar("T")


class Offload(Protocol):
    """Runs blocking work (fsync, file reads) off the event loop: `gateway.offload.run_blocking`."""

    def __call__(
        self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...


def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
    """The default `Offload` when no pool is injected (tests, the benchmark)."""
    return asyncio.to_thread(func, *args, **kwargs)


# Each inbox refusal as the PeSIT diagnostic the peer gets (negative ACK or IDT).
REFUSAL_DIAGNOSTICS: Mapping[RefusalKind, Diagnostic] = {
    RefusalKind.UNKNOWN_CODE: Diagnostic.FILE_NOT_FOUND,
    RefusalKind.NOT_SUBSCRIBED: Diagnostic.TRANSFER_REFUSED,
    RefusalKind.CONNECTION_CLOSED: Diagnostic.TRANSFER_REFUSED,
    RefusalKind.TOO_LARGE: Diagnostic.QUOTA_EXCEEDED,
    RefusalKind.TRUNCATED: Diagnostic.ABNORMAL_END,
    RefusalKind.WRONG_FORMAT: Diagnostic.TRANSFER_REFUSED,
    RefusalKind.INVALID: Diagnostic.TRANSFER_REFUSED,
    RefusalKind.UNAVAILABLE: Diagnostic.APPLICATION_CONGESTED,
}


def diagnostic_for(refusal: TransferRefused) -> Diagnostic:
    return REFUSAL_DIAGNOSTICS.get(refusal.kind, Diagnostic.TRANSFER_REFUSED)


def bare_name(label: str | None) -> str | None:
    """PI 37 as a file name the inbox takes: its last path part, printable ASCII, or None.

    A label is informational: a peer's path in it must not get the whole file refused.
    """
    if label is None:
        return None
    name = label.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in {"", ".", ".."} or not name.isascii() or not name.isprintable():
        return None
    return name[:255]


class Observer(Protocol):
    """Counts what happens on the wire; `direction` is "sent" or "received"."""

    def session(self, role: str, delta: int) -> None: ...

    def auth_failure(self, reason: str) -> None: ...

    def diagnostic(self, direction: str, code: DiagnosticCode) -> None: ...

    def sync_point(self, direction: str) -> None: ...

    def refused(self, kind: RefusalKind) -> None: ...


class NullObserver:
    """Counts nothing (tests and the benchmark)."""

    def session(self, role: str, delta: int) -> None:
        del role, delta

    def auth_failure(self, reason: str) -> None:
        del reason

    def diagnostic(self, direction: str, code: DiagnosticCode) -> None:
        del direction, code

    def sync_point(self, direction: str) -> None:
        del direction

    def refused(self, kind: RefusalKind) -> None:
        del kind


class Admission(Protocol):
    """May this connection carry `interface_code` now? None, or the refusal to answer."""

    def admit(self, interface_code: str) -> TransferRefused | None: ...


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """A received flow waiting for the peer to fetch it (SELECT/READ on our server)."""

    message_id: str
    path: Path
    size: int
    interface_code: str
    created: dt.datetime
    file_name: str | None = None


class OutgoingFiles(Protocol):
    """The flows of one connection waiting for its peer, oldest first."""

    async def waiting(self, interface_code: str) -> list[OutgoingFile]: ...

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerProfile:
    """How one connection's server answers AIFE.

    `settings` are seen from the requester's side, as the core compares them with the CONNECT:
    `requester_id` is AIFE's id, `server_id` ours, `password` the one AIFE must send.
    `names` maps a PI 12 (upper case) to its interface code; unmapped names are codes already.
    `served_dir` keeps what a READ restarted after a gateway restart needs (`served`).
    """

    connection: str
    settings: PesitSettings
    names: Mapping[str, str]
    max_size: int
    spool_dir: Path
    served_dir: Path | None = None  # where pulls keep their sync grid; None: memory only

    def code_of(self, virtual_name: str) -> str:
        name = virtual_name.strip().upper()
        return self.names.get(name, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """How to call AIFE's server for one connection; `pins` are its certificates (DER)."""

    connection: str
    host: str
    port: int
    ssl_context: ssl.SSLContext
    pins: frozenset[bytes]
    settings: PesitSettings
    connect_timeout: float = 30.0
