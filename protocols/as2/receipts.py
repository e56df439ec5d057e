"""MDNs as records: the one we sent (replayed byte for byte) and the outcome of one we received.

Both travel through the gateway's audit trail as plain JSON-able mappings, so a repeated
Message-ID gets the very MDN it got the first time, and an asynchronous MDN that arrives when no
sender is waiting for it can still be judged later against the MIC we recorded before sending.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocols.as2.errors import As2Error
from protocols.as2.mdn import BuiltMdn, Disposition, ReceivedMdn
from protocols.as2.mic import Mic

__all__ = [
    "MDN_RECEIVED", "MDN_SENT", "SENDING",
    "MdnOutcome", "Noted", "StoredMdn", "Trail", "sent_event",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredMdn:
    """An MDN we sent: exactly its HTTP headers and body, and what it answered."""

    original_message_id: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    disposition: str  # the Disposition field, for the audit trail

    @classmethod
    def of(
        cls, built: BuiltMdn, *, original_message_id: str, disposition: Disposition
    ) -> StoredMdn:
        return cls(
            original_message_id,
            tuple(built.headers.items()),
            built.body,
            disposition.header_value(),
        )

    def to_detail(self) -> dict[str, object]:
        return {
            "original_message_id": self.original_message_id,
            "disposition": self.disposition,
            "headers": [[name, value] for name, value in self.headers],
            "body": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_detail(cls, detail: Mapping[str, object]) -> StoredMdn | None:
        """Read back what `to_detail` wrote; None for anything else (never a crash)."""
        original, disposition = detail.get("original_message_id"), detail.get("disposition")
        headers, body = detail.get("headers"), detail.get("body")
        if not (isinstance(original, str) and isinstance(disposition, str)):
            return None
        if not isinstance(headers, list) or not isinstance(body, str):
            return None
        pairs: list[tuple[str, str]] = []
        for item in headers:
            if not (
                isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
            ):
                return None
            pairs.append((item[0], item[1]))
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
        return cls(original, tuple(pairs), raw, disposition)


@dataclass(frozen=True, slots=True)
class MdnOutcome:
    """What a partner's MDN said about one of our messages (already signature-checked)."""

    original_message_id: str
    disposition: str  # the Disposition field as received
    mic: str | None  # the Received-Content-MIC field as received
    signed: bool
    mdn_message_id: str | None = None

    @classmethod
    def of(cls, mdn: ReceivedMdn) -> MdnOutcome:
        return cls(
            mdn.original_message_id,
            mdn.disposition.header_value(),
            mdn.mic.header_value() if mdn.mic else None,
            mdn.signed,
            mdn.message_id,
        )

    def to_detail(self) -> dict[str, object]:
        return {
            "original_message_id": self.original_message_id,
            "disposition": self.disposition,
            "mic": self.mic,
            "signed": self.signed,
            "mdn_message_id": self.mdn_message_id,
        }

    @classmethod
    def from_detail(cls, detail: Mapping[str, object]) -> MdnOutcome | None:
        original, disposition = detail.get("original_message_id"), detail.get("disposition")
        mic, signed, mdn_id = detail.get("mic"), detail.get("signed"), detail.get("mdn_message_id")
        if not (isinstance(original, str) and isinstance(disposition, str)):
            return None
        if not (mic is None or isinstance(mic, str)) or not isinstance(signed, bool):
            return None
        return cls(original, disposition, mic, signed, mdn_id if isinstance(mdn_id, str) else None)

    def verdict(self, *, expected_mic: Mic | None, signature_required: bool) -> str | None:
        """None when the MDN acknowledges the message; else why it does not (final)."""
        if signature_required and not self.signed:
            return "insufficient-message-security: the MDN is not signed"
        try:
            disposition = Disposition.parse(self.disposition)
        except As2Error as exc:
            return f"unreadable disposition: {exc.reason}"
        if not disposition.ok:
            return f"negative MDN: {self.disposition}"
        return None if expected_mic is None else self._mic_problem(expected_mic)

    def _mic_problem(self, expected: Mic) -> str | None:
        if self.mic is None:
            return "the MDN carries no Received-Content-MIC"
        try:
            received = Mic.parse(self.mic)
        except As2Error as exc:
            return f"unreadable MIC: {exc.reason}"
        if not received.matches(expected):
            return f"MIC mismatch: sent {expected.header_value()}, receipt says {self.mic}"
        return None


SENDING, MDN_SENT, MDN_RECEIVED = "as2.sending", "as2.mdn_sent", "as2.mdn_received"


def sent_event(mdn: StoredMdn) -> tuple[str, dict[str, object]]:
    """The audit event (kind, detail) saying `mdn` was sent: what `Trail.sent_mdn` reads."""
    return MDN_SENT, mdn.to_detail()


class Noted(Protocol):
    """One fact of a message's audit trail, as the gateway's store keeps it."""

    @property
    def kind(self) -> str: ...

    @property
    def detail(self) -> Mapping[str, object]: ...


@dataclass(frozen=True, slots=True)
class Trail:
    """A message's AS2 facts read back from its audit trail (newest wins)."""

    events: Sequence[Noted]

    def _latest(self, kind: str) -> Iterator[Mapping[str, object]]:
        return (event.detail for event in reversed(self.events) if event.kind == kind)

    @staticmethod
    def sending(*, message_id: str, mic: Mic, url: str, attempt: int) -> dict[str, object]:
        """What is recorded before a POST: the Message-ID every attempt reuses, the MIC."""
        return {"message_id": message_id, "mic": mic.header_value(), "url": url,
                "attempt": attempt}  # fmt: skip

    @property
    def message_id(self) -> str | None:
        """Our Message-ID for this message, fixed before its first POST."""
        value = next(self._latest(SENDING), {}).get("message_id")
        return value if isinstance(value, str) else None

    @property
    def expected_mic(self) -> Mic | None:
        value = next(self._latest(SENDING), {}).get("mic")
        try:
            return Mic.parse(value) if isinstance(value, str) else None
        except As2Error:
            return None

    def outcome(self, message_id: str) -> MdnOutcome | None:
        """An MDN already received for this Message-ID (async, while no sender waited)."""
        for detail in self._latest(MDN_RECEIVED):
            outcome = MdnOutcome.from_detail(detail)
            if outcome is not None and outcome.original_message_id == message_id:
                return outcome
        return None

    def sent_mdn(self, original_message_id: str) -> StoredMdn | None:
        """The MDN we answered `original_message_id` with, to send again byte for byte."""
        for detail in self._latest(MDN_SENT):
            stored = StoredMdn.from_detail(detail)
            if stored is not None and stored.original_message_id == original_message_id:
                return stored
        return None
