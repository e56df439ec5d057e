"""PeSIT settings of a connection sheet (`connections[i].settings` when protocol is pesit).

The per-connection parameters of pesit.md §11. Every field has a default that makes the sandbox
work: our PeSIT id is the sheet's Part ID, AIFE's is the sheet's exchange system (`CPRO`), the
server listens on the sheet's partner host and port, PI 12 is the interface code itself, and
the transfer parameters are conservative values every PeSIT E stack accepts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from gateway.config import ConfigPath, ConnectionConfig, Frozen, InterfaceCode

__all__ = ["PesitId", "PesitSettings", "PesitTimers", "PreConnectionSettings", "VirtualName"]

_PRINTABLE = r"^[ -~]+$"
PesitId = Annotated[str, StringConstraints(min_length=1, max_length=24, pattern=_PRINTABLE)]
VirtualName = Annotated[str, StringConstraints(min_length=1, max_length=76, pattern=r"^[!-~]+$")]
CallerId = Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=r"^[!-~]+$")]
Seconds = Annotated[float, Field(gt=0, le=86400)]
PASSWORD_LIMIT = 8  # PI 5 carries 8 bytes of password, as does the pre-connection


def _check_password(value: SecretStr | None, what: str) -> SecretStr | None:
    if value is None:
        return None
    text = value.get_secret_value()
    if len(text) > PASSWORD_LIMIT or not text.isascii() or not text.isprintable():
        raise ValueError(f"{what} must be printable ASCII of at most {PASSWORD_LIMIT} characters")
    return value


class PreConnectionSettings(Frozen):
    """The 24-byte EBCDIC pre-connection (pesit.md §2): sent when we call, required when called."""

    caller_id: CallerId
    password: SecretStr | None = None
    password_file: ConfigPath | None = None

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_password(value, "password")

    @model_validator(mode="after")
    def _one_source(self) -> PreConnectionSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self


class PesitTimers(Frozen):
    """pesit.md §10, in seconds: Tp next FPDU, Td idle server, Tc CONNECT after accept, Tr close."""

    tp: Seconds = 30.0
    td: Seconds = 300.0
    tc: Seconds = 30.0
    tr: Seconds = 30.0


class PesitSettings(Frozen):
    """Identifiers, passwords, listener, transfer parameters and polling of one PeSIT connection."""

    # identifiers (PI 3 / PI 4): ours when we call is PI 3, when AIFE calls us PI 4
    local_id: PesitId | None = None  # default: network.partner.part_id
    remote_id: PesitId | None = None  # AIFE's; default: the sheet's exchange_system ("CPRO")
    # PI 5: what we send when we call AIFE, and what AIFE must send when it calls us
    password: SecretStr | None = None
    password_file: ConfigPath | None = None
    expected_password: SecretStr | None = None  # default: the same as `password`
    expected_password_file: ConfigPath | None = None
    preconnection: PreConnectionSettings | None = None
    prefixed: bool = True  # NSDU length prefix when we call (as a server we detect it)
    connection_id: Annotated[int, Field(ge=1, le=255)] = 1  # our X / Y byte
    # our server (AIFE's calls: pushes from Chorus Pro, pulls of waiting flows)
    listen: bool = True
    listen_host: str | None = None  # default: network.partner.host
    listen_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: partner port
    max_sessions: Annotated[int, Field(ge=1, le=1000)] = 16
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    # files: PI 12 per interface code (default: the code), PI 37 carries our file name
    file_names: dict[InterfaceCode, VirtualName] = Field(default_factory=dict)
    send_label: bool = True
    # transfer parameters (pesit.md §8)
    article_size: Annotated[int, Field(ge=1, le=65535)] = 4096
    entity_size: Annotated[int, Field(ge=64, le=65535)] = 8192
    sync_interval_kb: Annotated[int, Field(ge=0, le=65535)] = 32
    sync_window: Annotated[int, Field(ge=0, le=255)] = 16  # the smaller proposal wins
    timers: PesitTimers = PesitTimers()
    connect_timeout: Seconds = 30.0
    # pulls of return flows from AIFE's server (none unless an interval is given)
    pull_interval: Seconds | None = None
    pull_codes: tuple[InterfaceCode, ...] = ()  # default: the sheet's reception subscriptions

    @field_validator("password", "expected_password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_password(value, "password")

    @field_validator("file_names")
    @classmethod
    def _names_unique(cls, value: dict[str, str]) -> dict[str, str]:
        names = [name.upper() for name in value.values()]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"PI 12 names must name one code each: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _one_source_each(self) -> PesitSettings:
        for name in ("password", "expected_password"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"give {name} or {name}_file, not both")
        return self

    # -- values derived from the sheet ---------------------------------------------------

    def our_id(self, conn: ConnectionConfig) -> str:
        return self.local_id or conn.network.partner.part_id

    def aife_id(self, conn: ConnectionConfig) -> str:
        return self.remote_id or conn.exchange_system

    def listen_address(self, conn: ConnectionConfig) -> tuple[str, int]:
        partner = conn.network.partner
        return self.listen_host or partner.host, self.listen_port or partner.port

    def virtual_name(self, code: str) -> str:
        """PI 12 for `code` (domain.md §7: the interface code unless mapped)."""
        return self.file_names.get(code, code)

    def codes_by_name(self) -> dict[str, str]:
        """PI 12 (upper case) back to the interface code, for the mapped names only."""
        return {name.upper(): code for code, name in self.file_names.items()}

    def pulled_codes(self, conn: ConnectionConfig) -> tuple[str, ...]:
        return self.pull_codes or conn.subscriptions.reception
