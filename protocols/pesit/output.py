"""What a core queued for the transport, kept without copying the article data.

Small pieces (headers, parameter FPDUs, short articles) are packed into one buffer; pieces of
at least `LARGE` bytes are kept as they are, so an article is copied once, when the output is
joined for the transport. (Handing the chunks to `writelines` instead would skip that copy,
but then each header travels as its own tiny TLS record, which measured slower than the copy.)
"""

from __future__ import annotations

__all__ = ["LARGE", "Output"]

LARGE = 16384  # one TLS record: below this, copying is cheaper than another write


class Output:
    """An ordered queue of byte chunks; `take()` empties it."""

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: list[bytes | bytearray] = []

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def add(self, piece: bytes) -> None:
        if not piece:
            return
        if len(piece) >= LARGE:
            self._chunks.append(piece)
            return
        last = self._chunks[-1] if self._chunks else None
        if isinstance(last, bytearray) and len(last) < LARGE:
            last += piece
        else:
            self._chunks.append(bytearray(piece))

    def take(self) -> list[bytes | bytearray]:
        chunks, self._chunks = self._chunks, []
        return chunks
