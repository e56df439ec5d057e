"""AS2 and the store: the MDN journal over the store's events, and answers as metrics and logs.

Events `as2.sending`, `as2.mdn_sent` and `as2.mdn_received` make the store the journal the
listener and the senders share (`protocols.as2.inbound.MdnJournal`): the MDN a repeated
Message-ID gets again, and the MDN of ours that arrives when no sender waits for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

from gateway import metrics
from gateway.logging import get_logger
from gateway.model import Direction, MessageState
from gateway.store import IllegalTransition, Message, RetryPolicy, Store, UnknownMessage
from protocols.as2.answers import disposition_labels
from protocols.as2.endpoint import Answered
from protocols.as2.mic import Mic
from protocols.as2.receipts import MDN_RECEIVED, MdnOutcome, StoredMdn, Trail, sent_event

__all__ = ["StoreJournal", "emission_seconds", "observe", "settle"]

log = get_logger("gateway.plug_as2")
_AUTH_MODIFIERS = frozenset({"authentication-failed", "unknown-trading-partner"})


class StoreJournal:
    """`MdnJournal` over the store's append-only events."""

    def __init__(
        self, store: Store, *, signed_mdn: Callable[[str], bool], clock: Callable[[], dt.datetime]
    ) -> None:
        self._store, self._signed_mdn, self._clock = store, signed_mdn, clock

    async def recall(self, message_id: str, original_message_id: str) -> StoredMdn | None:
        return Trail(await self._store.events(message_id)).sent_mdn(original_message_id)

    async def remember(self, message_id: str, mdn: StoredMdn) -> None:
        kind, detail = sent_event(mdn)
        await self._store.record_event(message_id, kind=kind, detail=detail)

    async def receipt(self, connection: str, outcome: MdnOutcome) -> bool:
        message = await self._ours(connection, outcome.original_message_id)
        if message is None:
            return False
        await self._store.record_event(message.id, kind=MDN_RECEIVED, detail=outcome.to_detail())
        if message.state is MessageState.SENT:  # else the sender or the sweep settles it
            trail = Trail(await self._store.events(message.id))
            await settle(self._store, message, outcome, trail.expected_mic,
                         signed_mdn=self._signed_mdn(connection), now=self._clock())  # fmt: skip
        return True

    async def _ours(self, connection: str, as2_id: str) -> Message | None:
        """The message we sent with this Message-ID (it starts with the store's id)."""
        found = await self._store.find_by_peer_id(source=connection, peer_message_id=as2_id)
        if found is None or found.direction is not Direction.EMISSION:
            try:
                found = await self._store.get(as2_id.lstrip("<").split(".", 1)[0])
            except UnknownMessage:
                return None
        if found.connection != connection or found.direction is not Direction.EMISSION:
            return None
        sent = Trail(await self._store.events(found.id)).message_id
        return found if as2_id in (sent, found.sent_message_id) else None


async def settle(
    store: Store,
    message: Message,
    outcome: MdnOutcome,
    mic: Mic | None,
    *,
    signed_mdn: bool,
    now: dt.datetime,
) -> None:
    """A `sent` message meets its MDN: acknowledged, or rejected with the MDN's reason."""
    reason = outcome.verdict(expected_mic=mic, signature_required=signed_mdn)
    with contextlib.suppress(IllegalTransition):  # settled meanwhile by the sender or sweep
        if reason is None:
            await store.record_acknowledged(message.id, detail={"mdn": outcome.to_detail()})
            emission_seconds(message, now)
        else:
            await store.record_failure(message.id, reason=reason, retryable=False,
                                       policy=RetryPolicy())  # fmt: skip
    log.info("as2.mdn_settled", message_id=message.id, connection=message.connection,
             accepted=reason is None, reason=reason)  # fmt: skip


def emission_seconds(message: Message, now: dt.datetime) -> None:
    seconds = max((now - message.created_at).total_seconds(), 0.0)
    metrics.PROCESSING_SECONDS.labels("as2", "emission").observe(seconds)


async def observe(answered: Answered) -> None:
    """Count every MDN sent or received (and every refusal) with bounded labels; log it.

    One call per log line (no `bind`): below the configured level it costs nothing, and this
    runs for every message.
    """
    label, modifier = disposition_labels(answered.disposition)
    connection = answered.connection or metrics.UNKNOWN
    metrics.AS2_MDN.labels(connection, answered.direction, label, modifier).inc()
    fields = {"connection": answered.connection, "peer_message_id": answered.peer_message_id,
              "message_id": answered.message_id, "disposition": label, "modifier": modifier,
              "status": answered.status}  # fmt: skip
    if answered.direction == "received":
        log.info("as2.mdn_received", reason=answered.reason or None, **fields)
        return
    metrics.PROCESSING_SECONDS.labels("as2", "reception").observe(answered.seconds)
    if not answered.kind:
        log.info("as2.message_answered", duplicate=answered.duplicate, **fields)
        return
    metrics.REFUSED.labels("as2", "reception", answered.kind).inc()
    if answered.kind in _AUTH_MODIFIERS:
        metrics.AUTH_FAILURES.labels("as2", answered.kind).inc()
    log.warning("as2.message_refused", kind=answered.kind, reason=answered.reason, **fields)
