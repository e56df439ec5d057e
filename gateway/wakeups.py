"""Wake a worker as soon as there is work for it (instead of at its next poll).

Keys are connection names (outbox workers) or one of the reserved keys below, used by the
return-flow workers. A reserved key starts with a control character, which a connection name
can never hold (config validation refuses it), so the two can never collide.
"""

from __future__ import annotations

from collections.abc import Callable

CORRELATE = "\x00correlate"  # a message was accepted: its references may need extracting
DELIVER = "\x00deliver"  # a flow from Chorus Pro was accepted: the back office awaits it


class Wakeups:
    """Callbacks per key; workers register, the router and the inbox port notify."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[], None]]] = {}

    def register(self, connection: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Register `callback`; returns the function that unregisters it."""
        self._callbacks.setdefault(connection, []).append(callback)

        def unregister() -> None:
            callbacks = self._callbacks.get(connection, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unregister

    def notify(self, connection: str) -> None:
        """Wake everything waiting on `connection` (a no-op when nothing is registered)."""
        for callback in list(self._callbacks.get(connection, [])):
            callback()
