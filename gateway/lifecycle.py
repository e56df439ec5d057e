"""The connection sheet's lifecycle (domain.md §3) as one transition table, plus edit rules.

Pure: no store, no clock. The registry applies these decisions and records them as history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config import ConnectionConfig
from gateway.errors import ConnectionStateError
from gateway.model import ConnectionStatus as S

# (from, to) pairs the portal's lifecycle allows, with who normally causes them.
TRANSITIONS: Mapping[tuple[S, S], str] = {
    (S.BROUILLON, S.EN_COURS): "the user submits the sheet",
    (S.EN_COURS, S.ACTIF): "the target system answered OK, inside the validity period",
    (S.EN_COURS, S.INACTIF): "the target system answered OK, outside the validity period",
    (S.EN_COURS, S.ERREUR): "the target system answered KO",
    (S.ERREUR, S.EN_COURS): "an administrator resubmits after a KO",
    (S.ACTIF, S.INACTIF): "the partner deactivates, or the validity period ended",
    (S.INACTIF, S.ACTIF): "the partner reactivates inside the validity period",
    (S.ACTIF, S.PARTIELLE): "support marks one or more subscribed interfaces inactive",
    (S.PARTIELLE, S.ACTIF): "support reactivates every subscribed interface",
    (S.ACTIF, S.EN_COURS): "a modification was saved",
    (S.INACTIF, S.EN_COURS): "a modification was saved",
}

MODIFIABLE = frozenset({S.ACTIF, S.INACTIF, S.BROUILLON})
IMMUTABLE_FIELDS = ("exchange_system", "structure", "protocol", "name")


def check_transition(name: str, current: S, target: S) -> str:
    """Why `current -> target` is allowed, or ConnectionStateError naming both statuses."""
    if current is target:
        raise ConnectionStateError(name, f"already {target.value}")
    reason = TRANSITIONS.get((current, target))
    if reason is None:
        allowed = sorted(t.value for (f, t) in TRANSITIONS if f is current)
        raise ConnectionStateError(
            name,
            f"cannot go from {current.value} to {target.value} "
            f"(allowed from {current.value}: {', '.join(allowed) or 'none'})",
        )
    return reason


def sheet_snapshot(conn: ConnectionConfig) -> dict[str, Any]:
    """The sheet as JSON-able data for history (secrets stay masked by pydantic's SecretStr)."""
    data = conn.model_dump(mode="json", exclude={"status"})
    return dict(data)


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields that changed, as {field: {"from": old, "to": new}}."""
    keys = sorted(set(old) | set(new))
    return {k: {"from": old.get(k), "to": new.get(k)} for k in keys if old.get(k) != new.get(k)}


def check_modification(name: str, status: S, changes: Mapping[str, Any]) -> S:
    """The status a saved modification leads to, or ConnectionStateError if it is refused.

    Only an actif or inactif sheet may be modified (a draft may be edited freely and stays a
    draft); saving puts it back to en_cours. Exchange system, structure, protocol and name never
    change: that is a new sheet.
    """
    frozen = [field for field in IMMUTABLE_FIELDS if field in changes]
    if frozen:
        raise ConnectionStateError(
            name, f"{', '.join(frozen)} cannot be modified: declare a new connection sheet"
        )
    if status not in MODIFIABLE:
        raise ConnectionStateError(
            name, f"a {status.value} sheet cannot be modified (only actif or inactif)"
        )
    return S.BROUILLON if status is S.BROUILLON else S.EN_COURS
