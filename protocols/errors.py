"""The error root shared by every layer, and the protocol split by whose fault it was.

`RaccordError` lives here (not in `gateway`) because protocol packages must not import the
gateway, yet every error in the product descends from one root.
"""

from __future__ import annotations


class RaccordError(Exception):
    """Root of every error Raccord raises on purpose."""


class ProtocolError(RaccordError):
    """A protocol exchange went wrong; subclasses say whose fault it was."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; the subclass carries the wire answer."""


class SendError(RaccordError):
    """Sending a file to a peer failed; the subclass tells the outbox whether to try again.

    It lives here so that protocol senders, which never import `gateway`, can raise it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientSendError(SendError):
    """Try again later: peer unreachable, timeout, HTTP 5xx, PeSIT resource shortage."""


class PermanentSendError(SendError):
    """Sending again cannot help: refused certificate, negative MDN, file refused."""
