"""The configuration as a frozen pydantic tree. Loading and cross-field rules live beside it.

One YAML file describes the gateway and every connection sheet (domain.md §3). Per-field rules
are validators here; rules that look across connections live in `config_rules.py`, file and
environment handling in `config_load.py`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.identifiers import email_problem, normalise_phone, phone_problem, siret_problem
from gateway.model import Circuit, ConnectionStatus, Environment, Protocol


class Frozen(BaseModel):
    """Base of every config node: immutable, unknown keys are errors (typos never pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _check(problem: str | None) -> None:
    if problem is not None:
        raise ValueError(problem)


def _siret(value: str) -> str:
    _check(siret_problem(value))
    return value


def _email(value: str) -> str:
    _check(email_problem(value))
    return value


def _phone(value: str) -> str:
    _check(phone_problem(value))
    return normalise_phone(value)


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are read from the configuration file's folder, not the process's."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if value.is_absolute() or base is None:
        return value
    return Path(base) / value


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
Siret = Annotated[str, AfterValidator(_siret)]
Email = Annotated[str, AfterValidator(_email)]
Phone = Annotated[str, AfterValidator(_phone)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
InterfaceCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}\d{4}[A-Z]$")]


class Validity(Frozen):
    """Validity period of a sheet; both dates required, start strictly before end."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Validity:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    def contains(self, day: dt.date) -> bool:
        """True when traffic may flow on `day` (both ends inclusive)."""
        return self.start <= day <= self.end


class Contact(Frozen):
    """Technical contact: every field is required by the portal."""

    first_names: NonEmpty
    name: NonEmpty
    email: Email
    phone: Phone


class Endpoint(Frozen):
    """A host and port (AIFE's server, or ours as the partner declares it)."""

    host: NonEmpty
    port: Port


class PartnerEndpoint(Endpoint):
    """The partner (PA) side of the sheet's network block: address, port and Part ID."""

    part_id: NonEmpty


class Network(Frozen):
    aife: Endpoint
    partner: PartnerEndpoint


class KeyPair(Frozen):
    """A certificate (with its chain) and its private key; the passphrase never inline-only."""

    certificate: ConfigPath
    key: ConfigPath
    key_passphrase: SecretStr | None = None
    key_passphrase_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _one_passphrase_source(self) -> KeyPair:
        if self.key_passphrase is not None and self.key_passphrase_file is not None:
            raise ValueError("give key_passphrase or key_passphrase_file, not both")
        return self


class Certificates(Frozen):
    """Our certificates for this connection (never shared) and the partner's public ones."""

    client: KeyPair | None = None  # "serveur de type client": TLS client, AS2 sign/decrypt, SFTP
    server: KeyPair | None = None  # TLS server (AS2 HTTPS listener, PeSIT server)
    next_client: KeyPair | None = None  # rollover: accepted for decryption before the switch
    partner: tuple[ConfigPath, ...] = ()  # AIFE's public certificates for this connection
    trust_anchors: tuple[ConfigPath, ...] = ()  # overrides gateway.trust_anchors

    def own(self) -> dict[str, KeyPair]:
        """Our key pairs by role name, for uniqueness checks and loading."""
        pairs = {"client": self.client, "server": self.server, "next_client": self.next_client}
        return {role: pair for role, pair in pairs.items() if pair is not None}


class Subscriptions(Frozen):
    """Interface codes this connection carries, per direction (emission codes differ)."""

    emission: tuple[InterfaceCode, ...] = ()
    reception: tuple[InterfaceCode, ...] = ()


class RetrySettings(Frozen):
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 10
    base_delay: Annotated[float, Field(gt=0)] = 30.0
    max_delay: Annotated[float, Field(gt=0)] = 3600.0


class ProtocolSettings(Frozen):
    """Protocol parameters; each protocol's work narrows this (AS2 ids, SFTP paths, PeSIT ids)."""

    model_config = ConfigDict(frozen=True, extra="allow")


class ConnectionConfig(Frozen):
    """One connection sheet (raccordement)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    structure: Siret
    exchange_system: NonEmpty = "CPRO"
    environment: Environment
    circuit: Circuit
    protocol: Protocol
    status: ConnectionStatus = ConnectionStatus.BROUILLON
    validity: Validity
    contact: Contact
    network: Network
    certificates: Certificates = Certificates()
    subscriptions: Subscriptions = Subscriptions()
    retry: RetrySettings = RetrySettings()
    max_size: Annotated[int, Field(gt=0)] = 1 << 30
    settings: ProtocolSettings = ProtocolSettings()

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("name must not contain control characters")
        return value


class ExtraInterface(Frozen):
    """An interface code the operator declares (the portal lists 16; not all are public)."""

    code: InterfaceCode
    description: NonEmpty
    circuits: tuple[Circuit, ...] = Field(min_length=1)
    direction: Literal["emission", "reception"]
    format: NonEmpty = "any"
    flow_type: str | None = None
    max_size: int | None = None


Seconds = Annotated[float, Field(gt=0, le=86_400)]


class WebhookSettings(Frozen):
    """An HTTP endpoint of the back office; every POST is signed with HMAC-SHA256."""

    url: NonEmpty
    secret: SecretStr | None = None
    secret_file: ConfigPath | None = None
    timeout: Seconds = 30.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = urlsplit(value)
            host = url.hostname
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if url.scheme not in {"http", "https"} or not host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret or secret_file (bodies are signed)")
        return self


class DeliverySettings(Frozen):
    """Where received flows go: a folder per interface code and/or a webhook."""

    codes: tuple[InterfaceCode, ...] = ()
    folder: ConfigPath | None = None
    webhook: WebhookSettings | None = None
    retry: RetrySettings = RetrySettings(base_delay=10.0)
    poll_interval: Seconds = 5.0

    @property
    def enabled(self) -> bool:
        """Delivery runs only when it has somewhere to deliver."""
        return self.folder is not None or self.webhook is not None


class IntakeSettings(Frozen):
    """The top-level `intake:` section: drop folder, delivery to the back office; off by default."""

    drop_dir: ConfigPath | None = None
    poll_interval: Seconds = 2.0
    settle_seconds: Annotated[float, Field(ge=0, le=3600)] = 1.0
    correlation_interval: Seconds = 5.0
    delivery: DeliverySettings = DeliverySettings()


AccountName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
DirName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class SftpAccountConfig(Frozen):
    """One partner or back-office login on the gateway's SFTP listener."""

    name: AccountName
    role: Literal["deposit", "connection"]  # emission deposits, or a connection's AIFE side
    environment: Environment | None = None  # deposit: where its flows are routed
    connection: NonEmpty | None = None  # connection: the sheet it delivers reception flows for
    authorized_keys: ConfigPath | None = None
    certificate: ConfigPath | None = None  # X.509: its key, and the certificate per RFC 6187
    x509_only: bool = False  # log in with `certificate` per RFC 6187 only (no bare key/password)
    password_file: ConfigPath | None = None  # only with sftp.password_login: true
    deposit: tuple[InterfaceCode, ...] | None = None  # default: every code it may deposit
    collect_from: tuple[NonEmpty, ...] = ()  # connections whose reception flows it downloads
    max_sessions: Annotated[int, Field(ge=1, le=1000)] = 10

    @model_validator(mode="after")
    def _role(self) -> SftpAccountConfig:
        if self.role == "deposit" and self.environment is None:
            raise ValueError("a deposit account needs an environment (qual or prod)")
        if self.role == "connection" and self.connection is None:
            raise ValueError("a connection account names its connection")
        if self.authorized_keys is None and self.certificate is None and not self.password_file:
            raise ValueError("give authorized_keys, certificate or password_file")
        return self


class ListenAddress(Frozen):
    host: NonEmpty = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 2222


class SftpServerConfig(Frozen):
    """The top-level `sftp:` block: the gateway's own listener for partners and its accounts."""

    listen: ListenAddress = ListenAddress()
    host_key: ConfigPath | None = None  # default: <data_dir>/sftp/host_key-<port>
    max_sessions: Annotated[int, Field(ge=1, le=10000)] = 100
    max_file_size: Annotated[int, Field(gt=0)] = 1 << 30
    idle_timeout: Seconds = 300.0
    login_timeout: Seconds = 30.0
    password_login: bool = False
    deposit_dir: DirName = "out"
    collect_dir: DirName = "in"
    after_download: Literal["remove", "archive"] = "remove"
    archive_dir: DirName = "archive"
    temp_suffixes: tuple[
        Annotated[str, StringConstraints(pattern=r"^\.[A-Za-z0-9_-]{1,16}$")], ...
    ] = (
        ".part",
        ".filepart",
    )
    accounts: tuple[SftpAccountConfig, ...] = ()

    @model_validator(mode="after")
    def _accounts(self) -> SftpServerConfig:
        names = [a.name for a in self.accounts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"account names must be unique: {', '.join(duplicates)}")
        if self.deposit_dir == self.collect_dir:
            raise ValueError("deposit_dir and collect_dir must differ")
        if not self.password_login and any(a.password_file for a in self.accounts):
            raise ValueError("password_file needs password_login: true (passwords are off)")
        return self


class AdminConfig(Frozen):
    host: NonEmpty = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8480
    api_token: SecretStr | None = None
    api_token_file: ConfigPath | None = None


class GatewayConfig(Frozen):
    data_dir: ConfigPath = Path("var/data")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Annotated[float, Field(gt=0)] = 30.0
    housekeeping_interval: Annotated[float, Field(gt=0, le=3600)] = 15.0
    trust_anchors: tuple[ConfigPath, ...] = ()
    crls: tuple[ConfigPath, ...] = ()  # CRL files (PEM or DER); re-read on SIGHUP or change
    # how often the CRL files are looked at (inode, size, mtime); a change reloads as SIGHUP does
    crl_check_interval: Annotated[float, Field(gt=0, le=86400)] = 60.0
    admin: AdminConfig = AdminConfig()


class Config(Frozen):
    """The whole configuration. Built only by `config_load.load`, which also runs the rules."""

    gateway: GatewayConfig = GatewayConfig()
    interfaces: tuple[ExtraInterface, ...] = ()
    intake: IntakeSettings = IntakeSettings()
    sftp: SftpServerConfig | None = None
    connections: tuple[ConnectionConfig, ...] = ()

    def connection(self, name: str) -> ConnectionConfig | None:
        """The sheet named `name`, or None."""
        return next((c for c in self.connections if c.name == name), None)
