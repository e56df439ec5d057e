"""A message's whole story: its own events and those of the messages correlated with it.

For an emitted invoice flow that reads accepted → routed → sent → acknowledged (MDN/ACK) →
correlated with the integration report → integration_report (integrated / rejected) →
lifecycle_status … ; for a return flow, the flows it answers with their own histories.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.store import Event, Message, Store, UnknownMessage

__all__ = ["Chain", "Link", "chain_json", "event_json", "message_chain", "message_json"]

MAX_RELATED = 50
_RELATION_KINDS = frozenset({"correlated", "lifecycle_status", "integration_report"})


@dataclass(frozen=True, slots=True)
class Link:
    """One message of a chain with its events and references."""

    message: Message
    events: tuple[Event, ...]
    references: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Chain:
    """The message asked for, then every message it is correlated with."""

    root: Link
    related: tuple[Link, ...]

    def timeline(self) -> list[tuple[Message, Event]]:
        """Every event of the chain in time order (ties keep the store's order)."""
        pairs = [(link.message, e) for link in (self.root, *self.related) for e in link.events]
        return sorted(pairs, key=lambda pair: (pair[1].at, pair[1].seq))


def related_ids(events: tuple[Event, ...] | list[Event], own: str) -> list[str]:
    """Ids named by correlation events: the other side of each link."""
    found: dict[str, None] = {}
    for event in events:
        if event.kind not in _RELATION_KINDS:
            continue
        named = event.detail.get("message_id")
        if isinstance(named, str) and named != own:
            found.setdefault(named)
        related = event.detail.get("related")
        if isinstance(related, dict):
            for key in related:
                if isinstance(key, str) and key != own:
                    found.setdefault(key)
    return list(found)[:MAX_RELATED]


async def _link(store: Store, message_id: str) -> Link:
    message = await store.get(message_id)
    events = tuple(await store.events(message_id))
    return Link(message, events, await store.references(message_id))


async def message_chain(store: Store, message_id: str) -> Chain:
    """The chain of `message_id`; UnknownMessage when there is no such message."""
    root = await _link(store, message_id)
    related: list[Link] = []
    for other in related_ids(root.events, message_id):
        try:
            related.append(await _link(store, other))
        except UnknownMessage:
            continue
    return Chain(root, tuple(related))


def _when(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def message_json(message: Message) -> dict[str, object]:
    """A message as JSON-able data (the API and the CLI print the same fields)."""
    return {
        "id": message.id,
        "direction": message.direction.value,
        "source": message.source,
        "connection": message.connection,
        "interface_code": message.interface_code,
        "environment": message.environment.value if message.environment else None,
        "protocol": message.protocol,
        "file_name": message.file_name,
        "sha256": message.sha256,
        "size": message.size,
        "state": message.state.value,
        "attempts": message.attempts,
        "next_attempt_at": _when(message.next_attempt_at),
        "last_error": message.last_error,
        "sent_message_id": message.sent_message_id,
        "created_at": _when(message.created_at),
        "updated_at": _when(message.updated_at),
    }


def event_json(event: Event) -> dict[str, object]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "state": event.state.value if event.state else None,
        "detail": dict(event.detail),
    }


def _link_json(link: Link) -> dict[str, object]:
    return {
        "message": message_json(link.message),
        "events": [event_json(e) for e in link.events],
        "references": link.references,
    }


def chain_json(chain: Chain) -> dict[str, object]:
    """The chain as the API returns it: the message, its events, then the related ones."""
    return {**_link_json(chain.root), "related": [_link_json(link) for link in chain.related]}
