"""What the SFTP listener is given besides the inbox port: accounts, a mailbox, an observer.

The listener never sees the store or the metrics: the daemon injects a `Mailbox` (the reception
flows an account may download, and what to do once one was fetched) and an `SftpObserver`
(counters and audit of sessions, authentication failures and refusals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from protocols.ports import FlowDirection
from protocols.sftp.paths import TEMP_SUFFIXES, Jail
from protocols.sftp.ranges import DEFAULT_WINDOW
from protocols.sftp.x509auth import X509Login

AuthFailure = Literal[
    "unknown-account",
    "unknown-key",
    "bad-password",
    "session-limit",
    "x509-unknown-certificate",  # not one of the account's certificates (or none configured)
    "x509-expired",
    "x509-not-yet-valid",
    "x509-untrusted-chain",  # does not reach the account's trust anchors
    "x509-bad-signature",  # a known certificate, but no valid signature with its key followed
    "x509-required",  # plain key or password on an account that logs in by certificate only
    "x509-revoked",  # the account's certificate (or its key, plainly) is listed by a CRL
]


@dataclass(frozen=True, slots=True)
class Account:
    """One SSH login: its keys, its jail and what its deposits are.

    `direction` "emission": a partner or back office deposits flows for Chorus Pro in
    `environment`; "reception": the Chorus Pro side of `connection` delivers flows to us.
    `keys` holds the OpenSSH wire encoding of each authorized public key (a configured
    certificate's key among them); `x509`, when set, also lets the account log in with one of
    its certificates per RFC 6187, or only that way.
    """

    name: str
    keys: frozenset[bytes]
    jail: Jail
    direction: FlowDirection
    environment: str | None = None
    connection: str | None = None
    password: bytes | None = None  # only honoured when the listener enables password login
    max_sessions: int = 10
    x509: X509Login | None = None
    # Wire keys of the account's certificates a CRL revoked, with why: refused, even plainly.
    revoked_keys: Mapping[bytes, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one listener; every one of them protects the gateway from one peer."""

    max_sessions: int = 100
    max_file_size: int = 1 << 30
    idle_timeout: float = 300.0
    login_timeout: float = 30.0
    reorder_window: int = DEFAULT_WINDOW
    stream_buffer: int = 4 << 20  # bytes of an upload queued for the store before writes wait


@dataclass(frozen=True, slots=True)
class ListenerParams:
    """One listening socket and the accounts behind it."""

    host: str
    port: int
    host_key: Path
    accounts: tuple[Account, ...]
    limits: Limits = field(default_factory=Limits)
    password_login: bool = False
    temp_suffixes: tuple[str, ...] = TEMP_SUFFIXES
    name: str = "sftp"


@dataclass(frozen=True, slots=True)
class Offered:
    """A reception flow an account may download, as its collect directory lists it."""

    name: str
    size: int
    mtime: float
    path: Path  # the payload on disk (read-only)
    message_id: str


class Mailbox(Protocol):
    """The flows waiting for an account, and the record that one was fetched."""

    async def offered(self, account: str, code: str, *, archived: bool) -> Sequence[Offered]: ...

    async def fetched(self, account: str, offered: Offered) -> None: ...


class SftpObserver(Protocol):
    """Counts and records what happens at the listener (metrics and logs live in the daemon)."""

    def session_opened(self, account: str) -> None: ...

    def session_closed(self, account: str) -> None: ...

    def auth_failed(self, reason: AuthFailure) -> None: ...

    def refused(self, direction: FlowDirection, kind: str) -> None: ...

    def accepted(self, direction: FlowDirection, seconds: float) -> None: ...


class NullObserver:
    """An observer that records nothing (tests and tools)."""

    def session_opened(self, account: str) -> None:
        del account

    def session_closed(self, account: str) -> None:
        del account

    def auth_failed(self, reason: AuthFailure) -> None:
        del reason

    def refused(self, direction: FlowDirection, kind: str) -> None:
        del direction, kind

    def accepted(self, direction: FlowDirection, seconds: float) -> None:
        del direction, seconds


class EmptyMailbox:
    """A mailbox with nothing to collect (accounts that only deposit)."""

    async def offered(self, account: str, code: str, *, archived: bool) -> Sequence[Offered]:
        del account, code, archived
        return ()

    async def fetched(self, account: str, offered: Offered) -> None:
        del account, offered
