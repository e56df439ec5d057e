"""Multipart framing (RFC 2046 §5.1), byte-exact: split a body into parts, frame parts.

The parts are memoryview slices of the body, nothing is copied but one search window at a
time; the line break before a delimiter belongs to the delimiter, never to the part.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from protocols.as2.der import Chunk
from protocols.as2.errors import MimeError

__all__ = ["MAX_PARTS", "multipart_body", "new_boundary", "split_multipart"]

MAX_PARTS = 16
_PADDING = b" \t"


def split_multipart(body: memoryview, boundary: str) -> list[memoryview]:
    """The body parts between delimiters; the line break before a delimiter is not content.

    The first delimiter line's ending (CRLF, or LF as OpenSSL writes without -crlfeol) fixes
    the line break every later delimiter must use, so a part ending in CR keeps its CR.
    """
    if not 0 < len(boundary) <= 70 or not boundary.isascii():
        raise MimeError("multipart boundary missing or invalid")
    marker = b"--" + boundary.encode("ascii")
    first = _delimiter_line(body, _first_delimiter(body, marker) + len(marker))
    if first is None or first[1]:
        raise MimeError("multipart holds no part")
    pos, _, eol = first
    delimiter = _Finder(body, eol + marker)
    parts: list[memoryview] = []
    search = pos
    while True:
        found = delimiter.find(search)
        if found < 0:
            raise MimeError("multipart truncated: closing delimiter missing")
        line = _delimiter_line(body, found + delimiter.size)
        if line is None:
            search = found + 1
            continue
        parts.append(body[pos:found])
        if len(parts) > MAX_PARTS:
            raise MimeError("too many body parts")
        pos, closing, _ = line
        search = pos
        if closing:
            return parts


def _first_delimiter(body: memoryview, marker: bytes) -> int:
    if body[: len(marker)] == marker and _delimiter_line(body, len(marker)):
        return 0
    delimiter = _Finder(body, b"\n" + marker)
    search = 0
    while (found := delimiter.find(search)) >= 0:
        if _delimiter_line(body, found + delimiter.size):
            return found + 1
        search = found + 1
    raise MimeError("multipart delimiter not found")


class _Finder:
    """`bytes.find` over a memoryview, copying one window at a time, never the whole body.

    (A regex compiled per boundary cost more than the search itself: boundaries are random.)
    Windows overlap by the needle's length so no occurrence straddles two unseen; a search
    that lands in the current window copies nothing new, so false hits cost no extra copy.
    """

    WINDOW = 1 << 20

    def __init__(self, body: memoryview, needle: bytes) -> None:
        self._body, self._needle, self.size = body, needle, len(needle)
        self._start, self._window = 0, b""

    def find(self, pos: int) -> int:
        """The first occurrence at or after `pos`, or -1."""
        end = len(self._body)
        while pos + self.size <= end:
            if not self._start <= pos <= self._start + len(self._window) - self.size:
                self._start = pos
                self._window = bytes(self._body[pos : pos + self.WINDOW])
            found = self._window.find(self._needle, pos - self._start)
            if found >= 0:
                return self._start + found
            pos = self._start + len(self._window) - self.size + 1
        return -1


def _delimiter_line(body: memoryview, pos: int) -> tuple[int, bool, bytes] | None:
    """(position after the line, closing?, line ending) or None if not a delimiter line."""
    closing = bytes(body[pos : pos + 2]) == b"--"
    pos += 2 if closing else 0
    limit = min(len(body), pos + 256)
    while pos < limit and body[pos] in _PADDING:
        pos += 1
    ending = bytes(body[pos : pos + 2])
    if ending == b"\r\n":
        return pos + 2, closing, b"\r\n"
    if ending[:1] == b"\n":
        return pos + 1, closing, b"\n"
    if closing and pos == len(body):
        return pos, True, b""
    return None


def new_boundary() -> str:
    """128 random bits: no payload can contain it by chance."""
    return f"----=_Raccord_{secrets.token_hex(16)}"


def multipart_body(parts: Sequence[Sequence[Chunk]], boundary: str) -> list[Chunk]:
    """Parts framed by CRLF delimiters, unjoined."""
    out: list[Chunk] = []
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii"))
        out.extend(part)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return out
