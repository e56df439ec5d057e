"""What a PeSIT connection tells its application, one frozen dataclass per happening.

Events report what the peer did, what a timer decided, or what the core chose on its own
(where a SYN went); calls the application makes (accept, send, confirm) are not echoed.
Two events ask for an answer before the protocol can go on: `SyncPointReached` (make the
data durable, then `confirm_durable`) and `DataEnded` (make the file durable, then
`confirm_end`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.pesit.diagnostics import DiagnosticCode
from protocols.pesit.fpdu import FpduType

__all__ = [
    "Aborted",
    "ArticleReceived",
    "Connected",
    "ConnectionClosed",
    "ConnectionRefused",
    "ConnectionRequested",
    "CreateRequested",
    "DataEnded",
    "Event",
    "FileClosed",
    "FileDeselected",
    "FileInfo",
    "FileOpened",
    "FileReady",
    "Position",
    "PreConnectionRequested",
    "ReadRequested",
    "ReadStarted",
    "Released",
    "RequestRefused",
    "SelectRequested",
    "SyncPointAcknowledged",
    "SyncPointReached",
    "SyncPointSent",
    "TransferEnded",
    "TransferInterrupted",
    "WriteStarted",
]


@dataclass(frozen=True, slots=True)
class Position:
    """A sync point and how much of the file precedes it: what a restart resumes from."""

    point: int = 0
    byte_offset: int = 0
    article_offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FileInfo:
    """What CREATE, SELECT and ACK(SELECT) say about a file (pesit.md §5, PGIs 9/30/40/50).

    `file_name` is PI 12, the virtual file (for Chorus Pro: the interface code); `max_size_kb`
    is PI 42; `created` is PI 51 as `YYMMDDhhmmss`.
    """

    file_name: str = ""
    transfer_id: int = 0
    restart: bool = False
    data_code: int = 2
    priority: int = 1
    entity_size: int = 0
    article_format: int = 0x80
    article_size: int = 0
    max_size_kb: int = 0
    created: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class PreConnectionRequested:
    """Server: answer with `answer_preconnection(settings or None)`."""

    caller_id: str
    password: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionRequested:
    """Server: look the partner up by `requester_id`, then `accept_connection` or `refuse`."""

    requester_id: str
    server_id: str
    password: str
    access_type: int


@dataclass(frozen=True, slots=True)
class Connected:
    """Requester: ACONNECT arrived; the sync interval and window are the negotiated ones."""

    sync_interval_kb: int
    sync_window: int


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """Requester: NAK0 or RCONNECT; the connection is over."""

    diagnostic: DiagnosticCode
    text: str = ""


@dataclass(frozen=True, slots=True)
class CreateRequested:
    """Server: a push is announced; `accept_create(resume=...)` or `refuse(diagnostic)`."""

    file: FileInfo


@dataclass(frozen=True, slots=True)
class SelectRequested:
    """Server: a pull is asked; `accept_select(...)` or `refuse(diagnostic)`."""

    file: FileInfo


@dataclass(frozen=True, slots=True)
class FileReady:
    """Requester: CREATE or SELECT accepted; `file` carries the server's answer."""

    file: FileInfo


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """Requester: a negative ACK; the state went back to where it was before `request`."""

    request: FpduType
    diagnostic: DiagnosticCode
    text: str = ""


@dataclass(frozen=True, slots=True)
class FileOpened:
    """ORF acknowledged (requester) or received and accepted (server)."""


@dataclass(frozen=True, slots=True)
class WriteStarted:
    """Data may flow to the server from `position` (the restart point the server holds)."""

    position: Position


@dataclass(frozen=True, slots=True)
class ReadRequested:
    """Server: send from `restart_point`; `accept_read(resume=...)` or `refuse(diagnostic)`."""

    restart_point: int


@dataclass(frozen=True, slots=True)
class ReadStarted:
    """Requester: ACK(READ) arrived; data will come from `position`."""

    position: Position


@dataclass(frozen=True, slots=True)
class ArticleReceived:
    """One whole article (segments already joined)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SyncPointReached:
    """Receiver: make everything before `position` durable, then `confirm_durable(point)`."""

    position: Position


@dataclass(frozen=True, slots=True)
class SyncPointSent:
    """Sender: a SYN was placed at `position`; keep it, the peer may restart from there."""

    position: Position


@dataclass(frozen=True, slots=True)
class SyncPointAcknowledged:
    """Sender: the peer holds everything before `position` durably; a restart may resume here."""

    position: Position


@dataclass(frozen=True, slots=True)
class DataEnded:
    """Receiver: DTF.END arrived; make the file durable, then `confirm_end()`."""

    diagnostic: DiagnosticCode
    byte_count: int
    article_count: int


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """TRANS.END answered; a negative `diagnostic` means the file must not be kept."""

    diagnostic: DiagnosticCode
    byte_count: int
    article_count: int


@dataclass(frozen=True, slots=True)
class TransferInterrupted:
    """IDT: the transfer stopped, both sides are back to the open file (OF02)."""

    diagnostic: DiagnosticCode
    end_code: int
    by_peer: bool


@dataclass(frozen=True, slots=True)
class FileClosed:
    """CRF acknowledged (requester) or answered (server)."""


@dataclass(frozen=True, slots=True)
class FileDeselected:
    """DESELECT acknowledged (requester) or answered (server)."""


@dataclass(frozen=True, slots=True)
class Released:
    """Orderly end: RELEASE/RELCONF done; close the transport."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """The connection ended abnormally; `by_peer` says who sent the ABORT (or closed)."""

    diagnostic: DiagnosticCode
    text: str
    by_peer: bool


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A timer says the transport must now be closed (Tc, or Tr after ABORT/RELCONF)."""

    reason: str


Event = (
    PreConnectionRequested
    | ConnectionRequested
    | Connected
    | ConnectionRefused
    | CreateRequested
    | SelectRequested
    | FileReady
    | RequestRefused
    | FileOpened
    | WriteStarted
    | ReadRequested
    | ReadStarted
    | ArticleReceived
    | SyncPointReached
    | SyncPointSent
    | SyncPointAcknowledged
    | DataEnded
    | TransferEnded
    | TransferInterrupted
    | FileClosed
    | FileDeselected
    | Released
    | Aborted
    | ConnectionClosed
)
