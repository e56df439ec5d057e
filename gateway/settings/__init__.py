"""Per-protocol connection settings (`connections[i].settings`), one model per protocol.

Each protocol's work owns its module here; `config_rules` validates a sheet's `settings` block
with the model of the sheet's protocol, and services read it back typed with `settings_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, overload

from pydantic import BaseModel

from gateway.config import ConnectionConfig
from gateway.model import Protocol
from gateway.settings.as2 import As2Settings
from gateway.settings.pesit import PesitSettings
from gateway.settings.sftp import SftpSettings

MODELS: Mapping[Protocol, type[BaseModel]] = {
    Protocol.AS2: As2Settings,
    Protocol.SFTP: SftpSettings,
    Protocol.PESIT: PesitSettings,
}

M = TypeVar("M", As2Settings, SftpSettings, PesitSettings)


@overload
def settings_of(conn: ConnectionConfig, model: type[M]) -> M: ...
@overload
def settings_of(conn: ConnectionConfig, model: None = None) -> BaseModel: ...
def settings_of(conn: ConnectionConfig, model: type[M] | None = None) -> M | BaseModel:
    """The sheet's settings parsed with its protocol's model (validated at load already)."""
    expected = MODELS[conn.protocol]
    if model is not None and model is not expected:
        raise TypeError(f"{conn.name} is a {conn.protocol.value} connection")
    return expected.model_validate(conn.settings.model_dump())
