"""Small shared vocabulary: the enums every gateway module speaks."""

from __future__ import annotations

from enum import StrEnum


class Environment(StrEnum):
    """Chorus Pro environment a connection targets."""

    QUAL = "qual"
    PROD = "prod"


class Circuit(StrEnum):
    """B2G: the PA's clients invoice public entities. G2B: public entities invoice them."""

    B2G = "b2g"
    G2B = "g2b"


class Protocol(StrEnum):
    """EDI protocols Chorus Pro accepts."""

    AS2 = "as2"
    SFTP = "sftp"
    PESIT = "pesit"


class Direction(StrEnum):
    """Seen from the PA: emission goes to Chorus Pro, reception comes from it."""

    EMISSION = "emission"
    RECEPTION = "reception"


class ConnectionStatus(StrEnum):
    """Lifecycle of a connection sheet (domain.md §3)."""

    BROUILLON = "brouillon"
    EN_COURS = "en_cours"
    PARTIELLE = "partielle"
    ERREUR = "erreur"
    ACTIF = "actif"
    INACTIF = "inactif"


class MessageState(StrEnum):
    """Where a message stands. Every change is also an event in the store."""

    ACCEPTED = "accepted"  # durable in the inbox, not yet routed
    QUEUED = "queued"  # in a connection's outbox, due at next_attempt_at
    SENDING = "sending"  # claimed by a sender (crash here -> queued again at start-up)
    SENT = "sent"  # handed over, waiting for the protocol acknowledgement (async MDN...)
    ACKNOWLEDGED = "acknowledged"  # the peer confirmed receipt
    DELIVERED = "delivered"  # a received flow handed to the back office
    REJECTED = "rejected"  # refused for good (routing, format, negative MDN)
    DEAD = "dead"  # retries exhausted; `raccord messages retry ID` revives it


TERMINAL_STATES = frozenset(
    {MessageState.ACKNOWLEDGED, MessageState.DELIVERED, MessageState.REJECTED, MessageState.DEAD}
)
