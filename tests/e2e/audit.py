"""The auditor's view once a campaign settled: both sides' records, read, never written.

`snapshot` reads the gateway's store (query-only SQLite), the simulator's state, the drop
folder's receipts and the back office's delivery folder; the checks in `checks.py` compare them.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.simulator.state import Deposit
from tests.e2e.campaign import World, read_store
from tests.e2e.gateway_process import log_events

__all__ = ["SimFlow", "Snapshot", "StoredEvent", "StoredMessage", "snapshot"]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    direction: str
    source: str
    connection: str | None
    interface_code: str
    protocol: str
    peer_message_id: str | None
    file_name: str | None
    state: str
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    message_id: str
    at: str
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SimFlow:
    """A flow the simulator owed the gateway; `sent` once the gateway acknowledged it."""

    connection: str
    code: str
    file_name: str
    kind: str
    about: str
    body: bytes
    sent: bool
    attempts: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    messages: dict[str, StoredMessage]
    events: dict[str, list[StoredEvent]]
    deposits: list[Deposit]
    flows: list[SimFlow]
    receipts: dict[str, dict[str, Any]]  # dropped file name -> its receipt
    rejected: list[Path]
    delivered: list[str]  # file names in the delivery folder
    logs: list[dict[str, Any]]

    def received(self) -> list[StoredMessage]:
        return [m for m in self.messages.values() if m.direction == "reception"]

    def emitted(self) -> list[StoredMessage]:
        return [m for m in self.messages.values() if m.direction == "emission"]


def _gateway(store: Path) -> tuple[dict[str, StoredMessage], dict[str, list[StoredEvent]]]:
    with read_store(store) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, direction, source, connection, interface_code, protocol, peer_message_id,"
            " file_name, state, attempts FROM messages"
        ).fetchall()
        found = db.execute("SELECT message_id, at, kind, detail FROM events ORDER BY seq")
        events: dict[str, list[StoredEvent]] = defaultdict(list)
        for e in found.fetchall():
            events[e["message_id"]].append(
                StoredEvent(e["message_id"], e["at"], e["kind"], json.loads(e["detail"]))
            )
    messages = {r["id"]: StoredMessage(**dict(r)) for r in rows}
    return messages, dict(events)


def _simulator(path: Path) -> list[SimFlow]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT connection, code, file_name, kind, about, body, sent_at IS NOT NULL, attempts"
            " FROM outbox ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    return [
        SimFlow(c, k, f, kind, a, bytes(b), bool(s), int(n)) for c, k, f, kind, a, b, s, n in rows
    ]


def _receipts(drop: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((drop / "done").rglob("*.receipt.json")):
        name = path.name.removesuffix(".receipt.json")
        assert name not in found, f"two receipts for {name}"
        found[name] = json.loads(path.read_text())
    return found


def snapshot(world: World) -> Snapshot:
    """Blocking: everything the checks need, read once the campaign settled."""
    messages, events = _gateway(world.store)
    rejected = sorted(p for p in (world.drop / "rejected").rglob("*") if p.is_file())
    delivered = sorted(  # hidden names are the delivery's own temporary files
        p.name for p in world.outgoing.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    logs = [e for log in world.gateway.logs() for e in log_events(log)]
    return Snapshot(
        messages=messages, events=events, deposits=world.sim.state.deposits(),
        flows=_simulator(world.sim.state.path), receipts=_receipts(world.drop),
        rejected=rejected, delivered=delivered, logs=logs,
    )  # fmt: skip
