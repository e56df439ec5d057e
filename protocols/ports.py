"""The small interfaces a protocol endpoint is given by the daemon (it never sees `gateway`).

An endpoint authenticates its peer, then hands each file to an `InboxPort` with what it knows
(`Incoming`). The port answers only once the file is durable (`Accepted`) or refuses it with a
`TransferRefused` whose `kind` the endpoint maps to its wire answer: an AS2 negative MDN, an
SFTP status, a PeSIT diagnostic.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from protocols.errors import RaccordError

FlowDirection = Literal["emission", "reception"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """What an endpoint knows about a file it is receiving."""

    protocol: str  # "as2" | "sftp" | "pesit"
    direction: FlowDirection  # emission: deposited for Chorus Pro; reception: from Chorus Pro
    source: str  # the authenticated connection or partner account
    interface_code: str
    connection: str | None = None  # reception: the connection the file arrived on
    environment: str | None = None  # emission: "qual" or "prod", when the source does not fix it
    peer_message_id: str | None = None  # AS2 Message-ID, PeSIT transfer id, SFTP path…
    file_name: str | None = None
    expected_size: int | None = None  # announced size, when the protocol announces one
    # Audit events (kind, detail) an inbox that keeps a trail records with the message in
    # the commit that accepts it, when it is new (never on a repeat), saying so in
    # `Accepted.events_recorded`. An AS2 receipt prepared in advance is one.
    events: tuple[tuple[str, Mapping[str, object]], ...] = ()


@dataclass(frozen=True, slots=True)
class Accepted:
    """A durable acceptance; a duplicate gets the original message's id and digest."""

    message_id: str
    sha256: str
    size: int
    duplicate: bool
    events_recorded: bool = False  # `Incoming.events` are in the message's trail (new only)


class RefusalKind(StrEnum):
    """Why a file was refused, in terms every protocol can map to its own answer."""

    UNKNOWN_CODE = "unknown-code"  # the interface code is not in the catalogue
    NOT_SUBSCRIBED = "not-subscribed"  # no connection carries this code here
    CONNECTION_CLOSED = "connection-closed"  # not actif, outside validity, certificate expired
    TOO_LARGE = "too-large"
    TRUNCATED = "truncated"  # fewer/more bytes than announced, or the stream broke
    WRONG_FORMAT = "wrong-format"  # the payload is not the format its code expects
    INVALID = "invalid"  # a name or identifier that cannot be accepted
    UNAVAILABLE = "unavailable"  # our side failed (disk, database): the peer should retry


class TransferRefused(RaccordError):
    """The file was not accepted; `message_id` is set when it was recorded as rejected."""

    def __init__(self, kind: RefusalKind, reason: str, *, message_id: str | None = None) -> None:
        super().__init__(f"{kind.value}: {reason}")
        self.kind = kind
        self.reason = reason
        self.message_id = message_id


class InboxPort(Protocol):
    """Durable acceptance of one file; returns only after payload and record are on disk."""

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted: ...


@runtime_checkable
class SpoolAdopter(Protocol):
    """An inbox port that also takes over a complete file an endpoint already spooled.

    `path` is complete and durable, and `size` and `sha256` (hex) describe it exactly (the
    endpoint hashed it while writing). On return the file is the inbox's (renamed into its
    own tree when on the same file system); refused (`TransferRefused`), it may or may not
    still be where it was. Endpoints use it when the port offers it and stream otherwise.
    """

    async def accept_spooled(
        self, path: Path, incoming: Incoming, *, size: int, sha256: str
    ) -> Accepted: ...
