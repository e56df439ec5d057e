"""SFTP settings: a connection sheet's `settings` block, and the proposed top-level `sftp:` block.

A connection's settings say how our client reaches AIFE's server (login, remote directories,
pinned host keys, polling of return flows, RFC 6187 login with our certificate) and how AIFE
reaches ours (the listener on the sheet's `network.partner` address, AIFE authenticated by its
certificate: its key, or the certificate itself per RFC 6187, or only the latter). The top-level
`SftpServerConfig` adds a listener for partner and back-office accounts that deposit flows for
Chorus Pro and collect what came back. Defaults make the sandbox work unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import asyncssh
from cryptography import x509
from pydantic import Field, StringConstraints, model_validator

from gateway.certchain import verify_chain
from gateway.certload import load_certificates
from gateway.certrevocation import Revocations
from gateway.config import (
    AccountName,
    Config,
    ConfigPath,
    ConnectionConfig,
    Frozen,
    InterfaceCode,
    NonEmpty,
    Seconds,
    SftpAccountConfig,
    SftpServerConfig,
)
from gateway.errors import CertificateError, CertificateRevoked, ConfigError
from gateway.model import Protocol
from protocols.sftp.keys import (
    KeyFileError,
    certificate_and_key,
    key_of_certificate,
    load_authorized_keys,
    wire,
)
from protocols.sftp.paths import TEMP_SUFFIXES, Jail
from protocols.sftp.ports import Account, Limits, ListenerParams
from protocols.sftp.x509auth import X509Login, der

if TYPE_CHECKING:
    from gateway.credentials import CredentialSet, LoadedCredentials

ENCRYPTION_PREFERENCE = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
RemoteDir = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00]*$")]


class SftpSettings(Frozen):
    """`connections[i].settings` of an SFTP sheet."""

    # --- our client, towards AIFE's server (network.aife) ---
    username: NonEmpty | None = None  # default: the sheet's network.partner.part_id
    remote_dir: RemoteDir = "."  # where flows go (domain.md §7: the code is the name prefix)
    remote_dirs: Mapping[InterfaceCode, RemoteDir] = Field(default_factory=dict)
    temp_suffix: Annotated[str, StringConstraints(pattern=r"^\.[A-Za-z0-9_-]{1,16}$")] = ".part"
    host_keys: tuple[NonEmpty, ...] = ()  # pinned AIFE host keys, "type base64"
    known_hosts: ConfigPath | None = None  # or a known_hosts file holding them
    client_key: ConfigPath | None = None  # default: the key of certificates.client
    client_key_passphrase_file: ConfigPath | None = None
    ciphers: tuple[NonEmpty, ...] = ENCRYPTION_PREFERENCE
    connect_timeout: Seconds = 30.0
    poll_interval: Seconds | None = None  # polling of return flows; None = AIFE pushes
    poll_dirs: Mapping[InterfaceCode, RemoteDir] = Field(default_factory=dict)
    after_poll: Literal["delete", "move"] = "delete"
    poll_archive_dir: RemoteDir = "done"
    x509_login: bool = False  # present certificates.client with its key (RFC 6187), not the key
    # --- AIFE's account on our listener (network.partner) ---
    listen: bool = True
    listen_host: NonEmpty | None = None  # default: network.partner.host
    listen_port: Annotated[int, Field(ge=0, le=65535)] | None = None  # default: partner.port
    account: AccountName | None = None  # login AIFE uses; default: the connection name
    authorized_keys: ConfigPath | None = None  # default: keys of certificates.partner
    host_key: ConfigPath | None = None  # default: <data_dir>/sftp/host_key-<port>
    x509_only: bool = False  # AIFE logs in with its certificate (RFC 6187) only, never a bare key

    def listen_address(self, conn: ConnectionConfig) -> tuple[str, int]:
        """Where AIFE's account is served: the partner address unless overridden (port 0:
        any free port, chosen when the listener binds)."""
        partner = conn.network.partner
        port = self.listen_port if self.listen_port is not None else partner.port
        return self.listen_host or partner.host, port

    @model_validator(mode="after")
    def _pins(self) -> SftpSettings:
        if self.host_keys and self.known_hosts is not None:
            raise ValueError("give host_keys or known_hosts, not both")
        if self.x509_only and self.authorized_keys is not None:
            raise ValueError(
                "x509_only: AIFE logs in with its certificate (certificates.partner); "
                "remove authorized_keys, which only gives bare keys"
            )
        if self.after_poll == "move" and self.poll_archive_dir in {".", "/"}:
            raise ValueError("poll_archive_dir must name a directory to move polled files to")
        return self


def default_host_key(data_dir: Path, port: int) -> Path:
    """Where a listener keeps its host key unless configured: one per listening port."""
    return data_dir / "sftp" / f"host_key-{port}"


def listener_limits(server: SftpServerConfig | None) -> Limits:
    """The limits of the gateway's own listener (defaults for AIFE-only listeners)."""
    if server is None:
        return Limits()
    return Limits(
        max_sessions=server.max_sessions,
        max_file_size=server.max_file_size,
        idle_timeout=server.idle_timeout,
        login_timeout=server.login_timeout,
    )


def sftp_settings(conn: ConnectionConfig) -> SftpSettings:
    """A sheet's settings read with this model (`settings_of` without the import cycle)."""
    return SftpSettings.model_validate(conn.settings.model_dump())


# --- turning the configuration into listener and client parameters ---------------------------


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """One listener's parameters, and which connections each account collects from."""

    params: ListenerParams
    collect: Mapping[str, tuple[str, ...]]  # account -> connections whose flows it downloads
    archive: bool  # fetched flows stay visible under the archive directory


@dataclass
class _Draft:
    where: str  # field path, for messages
    account: Account
    host: str
    port: int
    host_key: Path | None
    key_origin: dict[bytes, str] = field(default_factory=dict)


def server_block(config: Config) -> SftpServerConfig | None:
    """The top-level `sftp:` block (None when the gateway runs no partner listener)."""
    return config.sftp


def _wires(keys: Sequence[asyncssh.SSHKey]) -> frozenset[bytes]:
    return frozenset(wire(k) for k in keys)


def _connection_keys(
    conn: ConnectionConfig, settings: SftpSettings, creds: CredentialSet, where: str
) -> list[asyncssh.SSHKey]:
    if settings.authorized_keys is not None:
        try:
            return load_authorized_keys(settings.authorized_keys)
        except KeyFileError as exc:
            raise ConfigError(f"{where}.settings.authorized_keys", exc.reason) from exc
    found = creds.get(conn.name)
    certificates = found.partner if found is not None else ()
    return [key_of_certificate(cert) for cert in certificates]


def _connection_draft(
    index: int, conn: ConnectionConfig, creds: CredentialSet, data_dir: Path
) -> _Draft | None:
    settings = sftp_settings(conn)
    if not settings.listen:
        return None
    where = f"connections[{index}]"
    keys = _connection_keys(conn, settings, creds, where)
    if not keys:
        raise ConfigError(
            f"{where}.certificates.partner",
            "AIFE's SFTP login needs its certificate or settings.authorized_keys",
        )
    found = creds.get(conn.name)
    x509 = None
    revoked_keys: dict[bytes, str] = {}
    if settings.authorized_keys is None and found is not None:
        revoked = dict(found.revoked_partner)  # AIFE's revoked certificate: refused at login
        only = settings.x509_only
        x509 = X509Login(found.partner, found.trust_anchors, only=only, revoked=revoked)
        revoked_keys = {
            wire(key_of_certificate(cert)): why
            for cert in found.partner
            if (why := revoked.get(der(cert))) is not None
        }
    account = Account(
        name=settings.account or conn.name,
        keys=_wires(keys),
        jail=Jail(deposit_codes=frozenset(conn.subscriptions.reception), collect_codes=frozenset()),
        direction="reception",
        connection=conn.name,
        x509=x509,
        revoked_keys=revoked_keys,
    )
    host, port = settings.listen_address(conn)
    return _Draft(where, account, host, port, settings.host_key)


def _block_keys(
    account: SftpAccountConfig, where: str
) -> tuple[list[asyncssh.SSHKey], x509.Certificate | None]:
    keys: list[asyncssh.SSHKey] = []
    cert = None
    try:
        if account.authorized_keys is not None:
            keys.extend(load_authorized_keys(account.authorized_keys))
        if account.certificate is not None:
            cert, key = certificate_and_key(account.certificate)
            keys.append(key)
    except KeyFileError as exc:
        field_name = "certificate" if exc.path == account.certificate else "authorized_keys"
        raise ConfigError(f"{where}.{field_name}", exc.reason) from exc
    return keys, cert


def _block_x509(
    account: SftpAccountConfig,
    cert: x509.Certificate | None,
    anchors: Sequence[x509.Certificate],
    *,
    where: str,
    revoked: str | None,
) -> X509Login | None:
    """A certificate account logs in per RFC 6187 too, once anchors can verify its chain.

    `x509_only` is read leniently until `SftpAccountConfig` declares it (the lead's model).
    """
    only = account.x509_only
    if only and (cert is None or not anchors):
        need = "a certificate" if cert is None else "trust anchors (gateway.trust_anchors)"
        raise ConfigError(f"{where}.x509_only", f"a login by certificate only needs {need}")
    if only and (account.authorized_keys is not None or account.password_file is not None):
        reason = "a login by certificate only: remove authorized_keys and password_file"
        raise ConfigError(f"{where}.x509_only", reason)
    if not (cert and anchors):
        return None
    marked = {} if revoked is None else {der(cert): revoked}
    return X509Login((cert,), tuple(anchors), only=only, revoked=marked)


def _account_anchors(account: SftpAccountConfig, config: Config) -> list[x509.Certificate]:
    """A connection account's connection's anchors, else the gateway's."""
    conn = config.connection(account.connection or "")
    paths = conn.certificates.trust_anchors if conn is not None else ()
    anchors: list[x509.Certificate] = []
    for path in paths or config.gateway.trust_anchors:
        with contextlib.suppress(CertificateError):  # reported by the credentials check
            anchors.extend(load_certificates(path))
    return anchors


def _revocation(
    cert: x509.Certificate | None,
    anchors: Sequence[x509.Certificate],
    revocations: Revocations | None,
) -> str | None:
    """Why a CRL of `gateway.crls` lists the account's certificate (or its chain), if it does.

    A revoked certificate keeps the configuration valid (a SIGHUP bringing a new CRL is never
    refused): the listener refuses its logins, by certificate or by its key, as `x509-revoked`.
    """
    if cert is None or not anchors or revocations is None:
        return None
    now = dt.datetime.now(dt.UTC)
    try:
        verified = verify_chain(cert, anchors=anchors, now=now)
        revocations.check(verified.path, now=now, connection=None)
    except CertificateRevoked as exc:
        return exc.reason
    except CertificateError:  # an unverifiable chain is refused at login, not here
        return None
    return None


def _password(account: SftpAccountConfig, where: str) -> bytes | None:
    if account.password_file is None:
        return None
    try:
        return account.password_file.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{where}.password_file", exc.strerror or str(exc)) from exc


def _deposit_codes(account: SftpAccountConfig, config: Config) -> frozenset[str]:
    if account.deposit is not None:
        return frozenset(account.deposit)
    if account.role == "connection":
        conn = config.connection(account.connection or "")
        return frozenset(conn.subscriptions.reception) if conn is not None else frozenset()
    return frozenset(
        code
        for conn in config.connections
        if conn.environment is account.environment
        for code in conn.subscriptions.emission
    )


def _collect_codes(account: SftpAccountConfig, config: Config, where: str) -> frozenset[str]:
    codes: set[str] = set()
    for position, name in enumerate(account.collect_from):
        conn = config.connection(name)
        if conn is None:
            raise ConfigError(f"{where}.collect_from[{position}]", f"no connection {name!r}")
        codes.update(conn.subscriptions.reception)
    return frozenset(codes)


def _block_draft(
    index: int,
    account: SftpAccountConfig,
    server: SftpServerConfig,
    config: Config,
    revocations: Revocations | None,
) -> _Draft:
    where = f"sftp.accounts[{index}]"
    if account.role == "connection" and config.connection(account.connection or "") is None:
        raise ConfigError(f"{where}.connection", f"no connection {account.connection!r}")
    archive = server.archive_dir if server.after_download == "archive" else None
    jail = Jail(
        deposit_codes=_deposit_codes(account, config),
        collect_codes=_collect_codes(account, config, where),
        deposit_dir=server.deposit_dir,
        collect_dir=server.collect_dir,
        archive_dir=archive,
    )
    keys, cert = _block_keys(account, where)
    anchors = _account_anchors(account, config)
    revoked = _revocation(cert, anchors, revocations)
    revoked_keys = (
        {} if revoked is None or cert is None else {wire(key_of_certificate(cert)): revoked}
    )
    built = Account(
        name=account.name,
        keys=_wires(keys),
        jail=jail,
        direction="emission" if account.role == "deposit" else "reception",
        environment=account.environment.value if account.environment is not None else None,
        connection=account.connection,
        password=_password(account, where),
        max_sessions=account.max_sessions,
        x509=_block_x509(account, cert, anchors, where=where, revoked=revoked),
        revoked_keys=revoked_keys,
    )
    return _Draft(where, built, server.listen.host, server.listen.port, server.host_key)


def _drafts(
    config: Config, creds: LoadedCredentials, data_dir: Path
) -> tuple[list[_Draft], list[str]]:
    drafts: list[_Draft] = []
    problems: list[str] = []
    for index, conn in enumerate(config.connections):
        if conn.protocol is not Protocol.SFTP:
            continue
        try:
            draft = _connection_draft(index, conn, creds, data_dir)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if draft is not None:
            drafts.append(draft)
    server = server_block(config)
    accounts = server.accounts if server is not None else ()
    # the CRLs the credentials were checked against (none configured: nothing to look up)
    revocations = creds.revocations if config.gateway.crls else None
    for index, account in enumerate(accounts):
        try:
            draft = _block_draft(index, account, server, config, revocations)  # type: ignore[arg-type]
            drafts.append(draft)
        except ConfigError as exc:
            problems.append(str(exc))
    return drafts, problems


def _shared(drafts: list[_Draft], clients: Mapping[str, bytes]) -> tuple[list[_Draft], list[str]]:
    """Drop every account whose key another account or a connection's client also uses."""
    owners: dict[bytes, list[str]] = {}
    for draft in drafts:
        for key in draft.account.keys:
            owners.setdefault(key, []).append(draft.where)
    for connection, key in clients.items():
        owners.setdefault(key, []).append(f"connection {connection!r} (its own client key)")
    problems: list[str] = []
    bad: set[str] = set()
    for users in owners.values():
        if len(users) > 1:
            problems.append(
                f"{users[0]}: an SSH key is configured for {', '.join(users)}: "
                "one key per account or connection"
            )
            bad.update(users)
    return [d for d in drafts if d.where not in bad], problems


def _group(
    drafts: list[_Draft], config: Config, data_dir: Path
) -> tuple[list[ListenerPlan], list[str]]:
    server = server_block(config)
    groups: dict[tuple[str, int], list[_Draft]] = {}
    for draft in drafts:
        groups.setdefault((draft.host, draft.port), []).append(draft)
    plans: list[ListenerPlan] = []
    problems: list[str] = []
    for (host, port), members in groups.items():
        names = [d.account.name for d in members]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            problems.append(f"{members[0].where}: account name(s) {clash} used twice on {port}")
            continue
        own = server is not None and (server.listen.host, server.listen.port) == (host, port)
        host_key = next((d.host_key for d in members if d.host_key is not None), None)
        limits = listener_limits(server if own else None)
        params = ListenerParams(
            host=host,
            port=port,
            host_key=host_key or default_host_key(data_dir, port),
            accounts=tuple(d.account for d in members),
            limits=limits,
            password_login=bool(own and server is not None and server.password_login),
            temp_suffixes=server.temp_suffixes if server is not None else TEMP_SUFFIXES,
            name=f"sftp-listener-{port}",
        )
        collect = _collect_map(server)
        archive = server is not None and server.after_download == "archive"
        plans.append(ListenerPlan(params, collect, archive))
    return plans, problems


def _collect_map(server: SftpServerConfig | None) -> dict[str, tuple[str, ...]]:
    if server is None:
        return {}
    return {a.name: a.collect_from for a in server.accounts if a.collect_from}


def plan_listeners(
    config: Config, creds: LoadedCredentials, *, client_keys: Mapping[str, bytes] | None = None
) -> tuple[list[ListenerPlan], list[str]]:
    """Every listener the configuration asks for, and every problem found on the way."""
    data_dir = config.gateway.data_dir
    drafts, problems = _drafts(config, creds, data_dir)
    kept, shared = _shared(drafts, client_keys or {})
    plans, clashes = _group(kept, config, data_dir)
    return plans, problems + shared + clashes
