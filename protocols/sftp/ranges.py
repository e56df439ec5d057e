"""Pure offset bookkeeping: uploads become one ordered stream, downloads prove completeness.

SFTP writes and reads carry offsets. An upload is streamed to the inbox as it arrives, so a
write must continue where the stream stands; a client that pipelines slightly out of order is
reassembled within a bounded window, and anything else (rewriting bytes already streamed,
holes) is refused rather than silently producing a different file. A download counts as
complete only when every byte of the file was read at least once.
"""

from __future__ import annotations

from protocols.sftp.paths import PathRefused, Refusal

DEFAULT_WINDOW = 8 << 20  # bytes held out of order before a write is refused


class Sequencer:
    """Turns `(offset, data)` writes into the in-order chunks of one stream."""

    def __init__(self, *, start: int = 0, window: int = DEFAULT_WINDOW) -> None:
        self.position = start  # bytes handed on so far
        self._window = window
        self._held: dict[int, bytes] = {}
        self._held_bytes = 0

    @property
    def held(self) -> int:
        """Bytes received ahead of a gap."""
        return self._held_bytes

    def feed(self, offset: int, data: bytes) -> list[bytes]:
        """The chunks that are now in order (possibly none); PathRefused when impossible."""
        if not data:
            return []
        if offset < self.position:
            raise PathRefused(
                Refusal.FAILURE,
                f"write at offset {offset} rewrites data already received "
                f"(the upload stands at {self.position}); restart the upload",
            )
        if offset > self.position:
            return self._hold(offset, data)
        ready = [data]
        self.position += len(data)
        while self.position in self._held:
            chunk = self._held.pop(self.position)
            self._held_bytes -= len(chunk)
            ready.append(chunk)
            self.position += len(chunk)
        return ready

    def _hold(self, offset: int, data: bytes) -> list[bytes]:
        end = offset + len(data)
        if end - self.position > self._window or offset in self._held:
            raise PathRefused(
                Refusal.FAILURE,
                f"write at offset {offset} leaves a gap after {self.position}: "
                "uploads must be written in order",
            )
        self._held[offset] = data
        self._held_bytes += len(data)
        return []

    def check_complete(self) -> None:
        """At close: a hole left by the client means the file is not what it meant to send."""
        if self._held:
            first = min(self._held)
            raise PathRefused(
                Refusal.FAILURE,
                f"the upload has a hole between offsets {self.position} and {first}",
            )


class Coverage:
    """Which byte ranges of a file were read; merged as they come."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []  # sorted, disjoint, non-adjacent

    def add(self, offset: int, length: int) -> None:
        """Record that `[offset, offset + length)` was read."""
        if length <= 0:
            return
        start, end = offset, offset + length
        merged: list[tuple[int, int]] = []
        for low, high in self._ranges:
            if high < start or low > end:
                merged.append((low, high))
            else:
                start, end = min(start, low), max(end, high)
        merged.append((start, end))
        merged.sort()
        self._ranges = merged

    def covers(self, size: int) -> bool:
        """True when every byte of a `size`-byte file was read (an empty file trivially)."""
        if size == 0:
            return True
        return bool(self._ranges) and self._ranges[0][0] == 0 and self._ranges[0][1] >= size
