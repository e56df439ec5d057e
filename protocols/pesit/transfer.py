"""The data phase (pesit.md §8): articles into DTFs, sync points, and the counts at the end.

`DataSender` cuts articles into entities (packing small ones into multi-article DTFs,
segmenting long ones) and places SYNs; `DataReceiver` does the reverse and keeps the sync
points that wait for the application to say the data is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode, PesitError, PesitLocalError
from protocols.pesit.events import ArticleReceived, Position, SyncPointReached
from protocols.pesit.fpdu import HEADER_SIZE, Fpdu, FpduType
from protocols.pesit.pi import PI, Params, SyncPoints

__all__ = ["Batch", "DataReceiver", "DataSender", "count_verdict"]

_MAX_ARTICLES = 0xFF
_SYNC_NUMBER = int(PI.SYNC_NUMBER)  # a plain int code, as `Params.of` stores it
_PREFIX = 2  # the length before each article of a multi-article DTF


def count_verdict(*, sent: int, received: int) -> Diagnostic:
    """Byte counts only (vendors disagree on article counts): more than sent is 2/224."""
    if received == sent:
        return Diagnostic.SUCCESS
    if received > sent:
        return Diagnostic.LARGER_THAN_ANNOUNCED
    return Diagnostic.WRONG_COUNTS


@dataclass(frozen=True, slots=True)
class Batch:
    """What one `DataSender.articles` call produced; `sync_points`: the SYNs placed in it."""

    taken: int
    fpdus: list[Fpdu]
    sync_points: tuple[Position, ...]


@dataclass(slots=True)
class _Counts:
    point: int
    bytes: int
    articles: int
    since_sync: int = 0

    def position(self) -> Position:
        return Position(self.point, self.bytes, self.articles)


class DataSender:
    """Turns articles into FPDUs for peer `dst`, within `entity_size`, honouring the window."""

    def __init__(
        self, *, dst: int, entity_size: int, max_article: int, sync: SyncPoints, start: Position
    ) -> None:
        self._dst = dst
        self._entity = entity_size
        self._max_article = max_article
        self._sync = sync
        self._counts = _Counts(start.point, start.byte_offset, start.article_offset)
        self._unacked: list[Position] = []

    @property
    def byte_count(self) -> int:
        return self._counts.bytes

    @property
    def article_count(self) -> int:
        return self._counts.articles

    @property
    def can_send(self) -> bool:
        """False while `window` sync points wait for their ACK(SYN): the next one may not go."""
        window = self._sync.window
        return not (self._sync.interval_kb and window and len(self._unacked) >= window)

    def articles(self, articles: Sequence[bytes]) -> Batch:
        """The FPDUs carrying as many of `articles` as the window lets through."""
        fpdus: list[Fpdu] = []
        batch: list[bytes] = []
        points = len(self._unacked)
        taken = 0
        longest = max(map(len, articles), default=0)
        if longest > self._max_article:
            raise PesitLocalError(
                Diagnostic.ARTICLE_TOO_LONG,
                f"article of {longest} bytes, {self._max_article} announced",
            )
        counts, entity = self._counts, self._entity
        interval = self._sync.interval_kb * 1024
        packed = HEADER_SIZE  # the size of the DTF `batch` makes, prefixes counted
        for article in articles:
            size = len(article)
            if interval and counts.since_sync and counts.since_sync + size > interval:
                fpdus.extend(self._flush(batch))
                if not self.can_send:
                    break
                fpdus.append(self._syn())
            if batch and (len(batch) >= _MAX_ARTICLES or packed + _PREFIX + size > entity):
                fpdus.extend(self._flush(batch))
            if not batch:
                packed = HEADER_SIZE
            if size > entity - HEADER_SIZE:
                fpdus.extend(self._segments(article))
            else:
                batch.append(article)
                packed += _PREFIX + size
            counts.bytes += size
            counts.articles += 1
            counts.since_sync += size
            taken += 1
        fpdus.extend(self._flush(batch))
        return Batch(taken, fpdus, tuple(self._unacked[points:]))

    def _flush(self, batch: list[bytes]) -> list[Fpdu]:
        fpdus = [Fpdu(FpduType.DTF, self._dst, data=tuple(batch))] if batch else []
        batch.clear()
        return fpdus

    def _segments(self, article: bytes) -> list[Fpdu]:
        step = self._entity - HEADER_SIZE
        pieces = [article[i : i + step] for i in range(0, len(article), step)]
        kinds = [FpduType.DTFDA] + [FpduType.DTFMA] * (len(pieces) - 2) + [FpduType.DTFFA]
        return [
            Fpdu(kind, self._dst, data=(piece,)) for kind, piece in zip(kinds, pieces, strict=True)
        ]

    def _syn(self) -> Fpdu:
        self._counts.point += 1
        self._counts.since_sync = 0
        self._unacked.append(self._counts.position())
        return Fpdu(FpduType.SYN, self._dst, params=Params(((_SYNC_NUMBER, self._counts.point),)))

    def acknowledge(self, point: int) -> list[Position]:
        """ACK(SYN) n settles every outstanding point up to n; an unknown n is a peer error."""
        unacked = self._unacked
        for index, position in enumerate(unacked):
            if position.point == point:
                settled, self._unacked = unacked[: index + 1], unacked[index + 1 :]
                return settled  # in order: those before `point` are the earlier points
        raise PesitError(Diagnostic.PROTOCOL_ERROR, f"ACK(SYN) {point} for no pending SYN")


class DataReceiver:
    """Joins segments, counts, and holds sync points until the application confirms them."""

    def __init__(self, *, sync: SyncPoints, start: Position, max_article: int) -> None:
        self._sync = sync
        self._counts = _Counts(start.point, start.byte_offset, start.article_offset)
        self._max_article = max_article
        self._segments: list[bytes] | None = None
        self._pending: list[Position] = []
        self.ended: DiagnosticCode | None = None

    @property
    def byte_count(self) -> int:
        return self._counts.bytes

    @property
    def article_count(self) -> int:
        return self._counts.articles

    @property
    def pending(self) -> tuple[Position, ...]:
        return tuple(self._pending)

    @property
    def window_full(self) -> bool:
        """The sender is blocked on us: waiting for the peer would be waiting for ourselves."""
        return bool(self._sync.window) and len(self._pending) >= self._sync.window

    def data(self, fpdu: Fpdu) -> list[ArticleReceived]:
        kind = fpdu.kind
        if kind is FpduType.DTF:
            self._outside_article(kind)
            return [self._article(article) for article in fpdu.data]
        if kind is FpduType.DTFDA:
            self._outside_article(kind)
            self._segments = []
        elif self._segments is None:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, f"{kind.name} without DTFDA")
        self._segments.append(fpdu.data[0])
        if sum(map(len, self._segments)) > self._max_article:
            raise PesitError(Diagnostic.ARTICLE_TOO_LONG, f"article over {self._max_article} bytes")
        if kind is not FpduType.DTFFA:
            return []
        article, self._segments = b"".join(self._segments), None
        return [self._article(article)]

    def whole(self, articles: list[bytes]) -> list[ArticleReceived]:
        """A DTF's articles (the fast path's `data`)."""
        self._outside_article(FpduType.DTF)
        self._counts.bytes += sum(map(len, articles))
        self._counts.articles += len(articles)
        return list(map(ArticleReceived, articles))

    def _article(self, article: bytes) -> ArticleReceived:
        self._counts.bytes += len(article)
        self._counts.articles += 1
        return ArticleReceived(article)

    def _outside_article(self, kind: FpduType) -> None:
        if self._segments is not None:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, f"{kind.name} inside a segmented article")

    def syn(self, point: int) -> SyncPointReached:
        self._outside_article(FpduType.SYN)
        if not self._sync.interval_kb:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, "SYN although no sync points were agreed")
        if point != self._counts.point + 1:
            raise PesitError(Diagnostic.PROTOCOL_ERROR, f"SYN {point} after {self._counts.point}")
        if self.window_full:
            raise PesitError(
                Diagnostic.TOO_MANY_UNACKNOWLEDGED_SYNC, f"window of {self._sync.window} exceeded"
            )
        self._counts.point = point
        position = self._counts.position()
        self._pending.append(position)
        return SyncPointReached(position)

    def end(self, diagnostic: DiagnosticCode) -> None:
        self._outside_article(FpduType.DTF_END)
        self.ended = diagnostic

    def confirm(self, point: int) -> list[Position]:
        """The application made everything before `point` durable: these points may be acked."""
        if not any(position.point == point for position in self._pending):
            raise PesitLocalError(Diagnostic.PROTOCOL_ERROR, f"sync point {point} is not pending")
        done = [p for p in self._pending if p.point <= point]
        self._pending = [p for p in self._pending if p.point > point]
        return done
