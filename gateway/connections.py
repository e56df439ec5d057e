"""The connection registry: sheets from the config, their lifecycle status from the store.

The configuration describes each sheet; the store remembers its status (the operator mirrors
what the portal answered with `raccord connections set-status`) and every change as history.
At start-up and on reload, `synchronise` compares each sheet with the last one recorded and
applies the modification rules of `lifecycle.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import metrics
from gateway.config import Config, ConnectionConfig
from gateway.config_load import ConfigErrors
from gateway.credentials import CredentialSet
from gateway.errors import ConfigError, ConnectionStateError
from gateway.lifecycle import check_modification, check_transition, diff, sheet_snapshot
from gateway.logging import get_logger
from gateway.model import ConnectionStatus

log = get_logger(__name__)


class ConnectionChangeRecord(Protocol):
    """What the registry reads back from the store's sheet history."""

    @property
    def change(self) -> Mapping[str, object]: ...


class StatusStore(Protocol):
    """The slice of the store the registry needs (lets tests and tools pass a real store)."""

    async def connection_status(self, name: str) -> ConnectionStatus | None: ...

    async def set_connection_status(
        self, name: str, *, status: ConnectionStatus, actor: str, change: Mapping[str, object]
    ) -> Any: ...

    async def connection_history(self, name: str) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """A sheet with its current status."""

    config: ConnectionConfig
    status: ConnectionStatus


class ConnectionRegistry:
    """Read-only lookups over the connections of one loaded configuration."""

    def __init__(
        self,
        config: Config,
        statuses: Mapping[str, ConnectionStatus],
        credentials: CredentialSet | None = None,
    ) -> None:
        self._credentials = credentials or {}
        self._views = {
            c.name: ConnectionView(c, statuses.get(c.name, c.status)) for c in config.connections
        }
        self._publish()

    def _publish(self) -> None:
        for view in self._views.values():
            for status in ConnectionStatus:
                metrics.CONNECTION_STATUS.labels(view.config.name, status.value).set(
                    1 if status is view.status else 0
                )

    def refresh(self, statuses: Mapping[str, ConnectionStatus | None]) -> list[str]:
        """Take statuses the operator recorded meanwhile (CLI); returns the names that changed."""
        changed = [
            name
            for name, status in statuses.items()
            if status is not None and name in self._views and self._views[name].status is not status
        ]
        for name in changed:
            status = statuses[name]
            assert status is not None
            self._views[name] = ConnectionView(self._views[name].config, status)
        if changed:
            self._publish()
        return changed

    def __iter__(self) -> Iterator[ConnectionView]:
        return iter(self._views.values())

    def __len__(self) -> int:
        return len(self._views)

    def get(self, name: str) -> ConnectionView:
        """The connection named `name`; ConnectionStateError when unknown."""
        view = self._views.get(name)
        if view is None:
            raise ConnectionStateError(name, "no such connection")
        return view

    def check_traffic(self, name: str, *, now: dt.datetime) -> ConnectionView:
        """Refuse traffic unless the connection is actif and inside its validity period."""
        view = self.get(name)
        if view.status is not ConnectionStatus.ACTIF:
            self._refuse(name, "status", f"status is {view.status.value}; traffic needs actif")
        if not view.config.validity.contains(now.astimezone(dt.UTC).date()):
            period = f"{view.config.validity.start}..{view.config.validity.end}"
            self._refuse(name, "validity", f"{now.date()} is outside the validity period {period}")
        creds = self._credentials.get(name)
        if creds is not None and (reason := creds.unusable_reason(now)) is not None:
            self._refuse(name, "certificate", reason)
        return view

    @staticmethod
    def _refuse(name: str, reason: str, text: str) -> None:
        metrics.TRAFFIC_REFUSED.labels(name, reason).inc()
        log.warning("traffic_refused", connection=name, reason=reason, detail=text)
        raise ConnectionStateError(name, text)


def _last_sheet(history: list[Any]) -> dict[str, Any] | None:
    for record in reversed(history):
        sheet = record.change.get("sheet")
        if isinstance(sheet, dict):
            return sheet
    return None


async def synchronise(
    config: Config,
    store: StatusStore,
    *,
    actor: str,
    credentials: CredentialSet | None = None,
) -> ConnectionRegistry:
    """Record new sheets, apply modification rules to changed ones, and build the registry.

    Raises ConfigErrors when a sheet was modified in a way the lifecycle forbids; nothing is
    recorded then, so a refused reload leaves the store as it was.
    """
    plans: list[tuple[ConnectionConfig, ConnectionStatus, dict[str, Any], dict[str, Any]]] = []
    errors: list[ConfigError] = []
    statuses: dict[str, ConnectionStatus] = {}
    for index, conn in enumerate(config.connections):
        snapshot = sheet_snapshot(conn)
        current = await store.connection_status(conn.name)
        if current is None:
            plans.append((conn, conn.status, {"event": "created", "sheet": snapshot}, {}))
            continue
        statuses[conn.name] = current
        previous = _last_sheet(await store.connection_history(conn.name))
        changes = diff(previous or {}, snapshot)
        if previous is None or not changes:
            continue
        try:
            new_status = check_modification(conn.name, current, changes)
        except ConnectionStateError as exc:
            errors.append(ConfigError(f"connections[{index}]", exc.reason))
            continue
        plans.append((conn, new_status, {"event": "modified", "sheet": snapshot}, changes))
    if errors:
        raise ConfigErrors(errors)
    for conn, status, change, changes in plans:
        await store.set_connection_status(
            conn.name, status=status, actor=actor, change={**change, "changes": changes}
        )
        statuses[conn.name] = status
        log.info(
            "connection_sheet_recorded",
            connection=conn.name,
            status=status.value,
            changed=sorted(changes),
        )
    return ConnectionRegistry(config, statuses, credentials)


async def set_status(
    registry: ConnectionRegistry,
    store: StatusStore,
    name: str,
    target: ConnectionStatus,
    *,
    actor: str,
    now: dt.datetime,
) -> str:
    """Apply an operator's status change after checking the transition table."""
    view = registry.get(name)
    reason = check_transition(name, view.status, target)
    if target is ConnectionStatus.ACTIF and not view.config.validity.contains(now.date()):
        raise ConnectionStateError(name, "cannot be actif outside its validity period")
    await store.set_connection_status(
        name,
        status=target,
        actor=actor,
        change={"event": "status", "from": view.status.value, "to": target.value, "reason": reason},
    )
    return reason
