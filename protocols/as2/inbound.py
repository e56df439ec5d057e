"""What the listener decides, without the listener: verdicts, receipts, reports.

Pure pieces of an inbound exchange: the journal and observer the endpoint is given, the typed
body errors, where an asynchronous MDN may be sent, which MDN answers a verdict, and the report
of each answer. The aiohttp adapter (`endpoint.py`) only moves bytes around these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from protocols.as2.answers import HTTP_STATUS, Refusal, refusal_of
from protocols.as2.envelope import Envelope
from protocols.as2.errors import As2Error, As2LimitError, Modifier
from protocols.as2.mdn import Disposition, MdnRequest
from protocols.as2.mic import Mic
from protocols.as2.partners import PartnerProfile
from protocols.as2.receipts import MdnOutcome, StoredMdn
from protocols.ports import Accepted

__all__ = [
    "INTERNAL",
    "Answered",
    "BodyBroken",
    "BodyTooLarge",
    "MdnJournal",
    "Observer",
    "Verdict",
    "handed_over",
    "mdn_content",
    "receipt_refusal",
    "report",
    "unidentified",
]

HAND_STEP = 1 << 20
INTERNAL = Refusal(
    Disposition.error(Modifier.UNEXPECTED_PROCESSING_ERROR), "internal error", 500, "internal",
    retry=True,
)  # fmt: skip


class MdnJournal(Protocol):
    """Where MDNs are remembered (the gateway's audit trail)."""

    async def recall(self, message_id: str, original_message_id: str) -> StoredMdn | None: ...

    async def remember(self, message_id: str, mdn: StoredMdn) -> None: ...

    async def receipt(self, connection: str, outcome: MdnOutcome) -> bool:
        """An MDN for one of our messages that no sender waited for; False when unknown."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """One answer given (an MDN we sent, or a refusal) or one MDN received."""

    connection: str | None
    direction: Literal["sent", "received"]
    disposition: Disposition
    reason: str
    status: int
    kind: str = ""  # bounded: modifier or inbox refusal kind, "" when processed
    peer_message_id: str | None = None
    message_id: str | None = None
    duplicate: bool = False
    seconds: float = 0.0


Observer = Callable[[Answered], Awaitable[None]]


class BodyTooLarge(As2LimitError):
    """Over the connection's body cap: refused before (or while) reading it."""

    def __init__(self, cap: int) -> None:
        super().__init__(Modifier.UNEXPECTED_PROCESSING_ERROR, f"body over {cap} bytes")


class BodyBroken(As2Error):
    """The body did not arrive whole (connection lost, malformed chunked framing)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Modifier.UNEXPECTED_PROCESSING_ERROR, f"body cut short: {detail}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What processing concluded: accepted (with its MIC) or refused.

    `receipt` is the positive MDN signed while the message was opened (`opening.py`): the
    answer when the inbox accepted the message as new, and for nothing else.
    """

    accepted: Accepted | None = None
    mic: Mic | None = None
    refusal: Refusal | None = None
    receipt: StoredMdn | None = None

    @property
    def prepared(self) -> StoredMdn | None:
        """The receipt signed in advance, when it is the right answer (accepted, new)."""
        accepted = self.accepted
        if self.refusal is None and accepted is not None and not accepted.duplicate:
            return self.receipt
        return None


def receipt_refusal(asked: MdnRequest | None, profile: PartnerProfile) -> Refusal | None:
    """An async MDN goes only to a host the connection names: never wherever a peer says."""
    if asked is None or not asked.receipt_url:
        return None
    try:
        url = urlsplit(asked.receipt_url)
        host = url.hostname
    except ValueError:
        host = None
    else:
        if url.scheme in ("http", "https") and host in profile.receipt_hosts:
            return None
    return refusal_of(As2Error(
        Modifier.UNEXPECTED_PROCESSING_ERROR,
        "Receipt-Delivery-Option names a host this connection may not post to",
    ))  # fmt: skip


def mdn_content(verdict: Verdict) -> tuple[Disposition, str | None]:
    """The disposition and human text of a new MDN for `verdict`."""
    if verdict.refusal is not None:
        return verdict.refusal.disposition, f"{verdict.refusal.reason}\n"
    if verdict.accepted is not None and verdict.accepted.duplicate:
        return Disposition.warning("duplicate-document"), None
    return Disposition(), None


def report(
    profile: PartnerProfile,
    envelope: Envelope,
    verdict: Verdict,
    mdn: StoredMdn | None,
    *,
    status: int,
    seconds: float,
) -> Answered:
    """The observer's record of the answer given to one identified message."""
    refusal, accepted = verdict.refusal, verdict.accepted
    if refusal is not None:
        disposition, reason, kind = refusal.disposition, refusal.reason, refusal.kind
    else:
        disposition = Disposition.parse(mdn.disposition) if mdn else Disposition()
        reason, kind = "", ""
    return Answered(
        connection=profile.connection, direction="sent", disposition=disposition,
        reason=reason, status=status, kind=kind, peer_message_id=envelope.message_id,
        message_id=accepted.message_id if accepted else None,
        duplicate=bool(accepted and accepted.duplicate), seconds=seconds,
    )  # fmt: skip


def unidentified(exc: As2Error, peer_message_id: str | None, *, seconds: float) -> Answered:
    """The record of a message refused before any connection could be named."""
    return Answered(
        connection=None, direction="sent", disposition=Disposition.error(exc.modifier),
        reason=exc.reason, status=HTTP_STATUS[exc.modifier], kind=exc.modifier.value,
        peer_message_id=peer_message_id, seconds=seconds,
    )  # fmt: skip


def handed_over(payload: bytes | memoryview) -> bytes | AsyncIterator[bytes]:
    """The payload for the inbox: small ones whole, big ones as 1 MiB chunks copied one at a
    time, so the inbox never gets (and copies) the whole view at once."""
    if isinstance(payload, bytes):
        return payload
    if len(payload) <= HAND_STEP:
        return bytes(payload)
    return _slices(payload)


async def _slices(payload: memoryview) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), HAND_STEP):
        yield bytes(payload[start : start + HAND_STEP])
