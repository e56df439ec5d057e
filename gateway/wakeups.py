"""Wake a connection's outbox worker as soon as work is routed to it (instead of at next poll)."""

from __future__ import annotations

from collections.abc import Callable


class Wakeups:
    """Callbacks per connection; workers register, the router notifies."""

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
