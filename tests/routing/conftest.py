"""The routing tests' world: a real store, a config built as data, the real inbox port."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config
from gateway.config_rules import catalogue_for
from gateway.connections import ConnectionRegistry
from gateway.credentials import ConnectionCredentials, LoadedCredentials
from gateway.inbox import StoreInbox
from gateway.intake import GatewayInbox
from gateway.interfaces import Catalogue
from gateway.model import ConnectionStatus
from gateway.router import Router
from gateway.services import GatewayContext
from gateway.store import open_store
from gateway.store.sqlite import SQLiteStore
from gateway.wakeups import Wakeups

NOW = dt.datetime(2026, 9, 1, 10, 0, tzinfo=dt.UTC)
PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
G2B_CODES: list[dict[str, Any]] = [
    {"code": "XGB0001A", "description": "G2B invoice", "circuits": ["g2b"],
     "direction": "reception", "format": "any"},
    {"code": "XGB0002A", "description": "G2B status", "circuits": ["g2b"],
     "direction": "emission", "format": "invoice-status"},
    {"code": "XGB0003A", "description": "G2B status report", "circuits": ["g2b"],
     "direction": "reception", "format": "integration-report"},
]  # fmt: skip
B2G_EMISSION = [
    "FSO1100A", "FSO1106A", "FSO1110A", "FSO1113A", "FSO1116A", "FSO1117A", "FSO1120A",
    "FSO1130A", "FSO1150A",
]  # fmt: skip
B2G_RECEPTION = ["FEN1200A", "FEN1201A", *(f"CSO{c[3:]}" for c in B2G_EMISSION)]


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def sheet(name: str, **overrides: Any) -> dict[str, Any]:
    """A valid, actif connection sheet as data (no certificate files: rules are not run)."""
    data: dict[str, Any] = {
        "name": name,
        "structure": "98765432400019",
        "environment": "qual",
        "circuit": "b2g",
        "protocol": "as2",
        "status": "actif",
        "validity": {"start": "2026-01-01", "end": "2028-12-31"},
        "contact": {
            "first_names": "Camille",
            "name": "Martin",
            "email": "edi@example.fr",
            "phone": "+33 1 23 45 67 89",
        },
        "network": {
            "aife": {"host": "127.0.0.1", "port": 4080},
            "partner": {"host": "127.0.0.1", "port": 5080, "part_id": f"PA-{name}"},
        },
        "subscriptions": {"emission": B2G_EMISSION, "reception": B2G_RECEPTION},
    }
    data.update(copy.deepcopy(overrides))
    return data


def standard_sheets() -> list[dict[str, Any]]:
    """B2G and G2B on QUAL, B2G on PROD: every catalogued code has a connection."""
    return [
        sheet("b2g-qual"),
        sheet(
            "g2b-qual",
            circuit="g2b",
            protocol="sftp",
            subscriptions={"emission": ["XGB0002A"], "reception": ["XGB0001A", "XGB0003A"]},
        ),
        sheet("b2g-prod", environment="prod", protocol="pesit"),
    ]


def make_config(sheets: list[dict[str, Any]] | None = None, **top: Any) -> Config:
    data = {"interfaces": G2B_CODES, "connections": standard_sheets() if sheets is None else sheets}
    data.update(top)
    return Config.model_validate(data)


@dataclass
class World:
    """A gateway without listeners: store, registry, router and inbox port, all real."""

    config: Config
    store: SQLiteStore
    registry: ConnectionRegistry
    catalogue: Catalogue
    wakeups: Wakeups
    router: Router
    port: GatewayInbox
    clock: Callable[[], dt.datetime]

    def context(self) -> GatewayContext:
        return GatewayContext(
            config=self.config,
            registry=self.registry,
            catalogue=self.catalogue,
            credentials=LoadedCredentials(),
            store=self.store,
            inbox=StoreInbox(self.store, known_codes=self.catalogue),
            inbox_port=self.port,
            router=self.router,
            wakeups=self.wakeups,
            clock=self.clock,
        )


def build_world(
    config: Config,
    store: SQLiteStore,
    *,
    statuses: Mapping[str, ConnectionStatus] | None = None,
    credentials: Mapping[str, ConnectionCredentials] | None = None,
    now: dt.datetime = NOW,
) -> World:
    registry = ConnectionRegistry(config, statuses or {}, credentials)
    catalogue = catalogue_for(config)
    wakeups = Wakeups()

    def clock() -> dt.datetime:
        return now

    router = Router(
        store=store, registry=registry, catalogue=catalogue, wakeups=wakeups, clock=clock
    )
    port = GatewayInbox(
        inbox=StoreInbox(store, known_codes=catalogue),
        store=store,
        registry=registry,
        catalogue=catalogue,
        router=router,
        clock=clock,
    )
    return World(config, store, registry, catalogue, wakeups, router, port, clock)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await open_store(tmp_path / "store")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def world(store: SQLiteStore) -> World:
    return build_world(make_config(), store)
