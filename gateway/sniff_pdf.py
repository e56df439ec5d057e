"""Streaming Factur-X detection: find the embedded CII of a PDF without loading the PDF.

A Factur-X invoice is a PDF/A-3 whose `/EmbeddedFiles` name tree names `factur-x.xml` (older:
`zugferd-invoice.xml`, `xrechnung.xml`) and whose `/EmbeddedFile` stream holds the CII XML,
usually FlateDecode-compressed. The scanner is a small lexer, not a PDF parser:

* outside streams it looks for the file names (literal, UTF-16BE and hex string spellings,
  case-insensitive) and for the `stream` keyword;
* at each `stream` it reads the dictionary just before it (within `_LOOKBACK` bytes): an
  embedded file (`/Type /EmbeddedFile`, or an XML `/Subtype`) is inflated into an `XmlSniffer`;
  an object stream (`/Type /ObjStm`, where PDF 1.5 writers may hide the file-spec dictionaries)
  is inflated and searched for the names; any other stream body is skipped to `endstream`.

Inflation goes through one `zlib.decompressobj` per stream with `max_length` caps: per stream
and for the whole file (zip bombs), so memory stays bounded whatever the input. Streams whose
`/Length` is indirect are handled alike: Flate data ends itself, raw data ends at `endstream`.
Compressed bytes reach zlib in fixed pieces counted from the stream start, and names are never
listed in the verdict, so the result does not depend on how the caller chunked the bytes.

Known limits: encrypted PDFs (their streams read as corrupt Flate), filter chains other than
FlateDecode (reported, not decoded) and names split by line continuations in hex strings.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from gateway.interfaces import PayloadFormat
from gateway.sniff_result import SniffResult
from gateway.sniff_xml import XmlSniffer, is_cii

__all__ = ["FACTURX_NAMES", "PdfScanner"]

FACTURX_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")
_NEEDLES = {
    spelling: name
    for name in FACTURX_NAMES
    for spelling in (name.encode(), name.encode("utf-16-be"), name.encode().hex().encode())
}
_LOOKBACK = 8192  # bytes of context kept before a `stream` keyword to read its dictionary
_KEYWORD = b"stream"
_NEED_MORE = -2
_NOT_KEYWORD = -1
_END = b"endstream"
_OBJSTM_ROOM = 4 << 20
_STEP = 1 << 16  # input slice and inflate step: what one call may allocate
_PIECE = 1 << 12  # compressed bytes handed to zlib per call
_MAX_EMBEDDED = 64
_TYPE_EMBEDDED = re.compile(rb"/Type\s*/EmbeddedFile(?![#\w])")
_SUBTYPE_XML = re.compile(rb"/Subtype\s*/(?:text|application)#2[Ff]xml(?![#\w])")
_TYPE_OBJSTM = re.compile(rb"/Type\s*/ObjStm(?![#\w])")
_FILTER = re.compile(rb"/Filter\s*(?:/(\w+)|\[([^\]]*)\])")


@dataclass(slots=True)
class _Stream:
    """The stream body being read: where its bytes go and how much may still be inflated."""

    sink: Callable[[bytes], None]
    room: int
    inflater: zlib._Decompress | None  # None: a raw (unfiltered) body, read to `endstream`
    xml: XmlSniffer | None  # set for embedded files
    pending: bytes = b""  # compressed bytes waiting for a full _PIECE


class PdfScanner:
    """Incremental scanner; `finish()` returns FACTURX or the reason it is not Factur-X."""

    def __init__(self, *, head_limit: int, inflate_budget: int = 32 << 20) -> None:
        self._head_limit = head_limit
        self._budget = inflate_budget
        self._context = b""  # scanned bytes since the last stream body, at most _LOOKBACK
        self._mode = "scan"  # scan | body | skip
        self._stream: _Stream | None = None
        self._skip_tail = b""
        self._names: set[str] = set()
        self._cii: SniffResult | None = None
        self._embedded = 0
        self._notes: list[str] = []
        self._final = False

    @property
    def done(self) -> bool:
        """True once the PDF is known to be Factur-X: nothing later can change that."""
        return self._cii is not None and bool(self._names)

    def feed(self, data: bytes) -> None:
        """Scan the next bytes (ignored once done); big chunks are taken in `_STEP` slices."""
        for start in range(0, len(data), _STEP):
            self._feed(data[start : start + _STEP])

    def _feed(self, data: bytes) -> None:
        while data and not self.done:
            if self._mode == "scan":
                data = self._scan(data)
            elif self._mode == "body":
                data = self._body(data)
            else:
                data = self._skip(data)

    def finish(self) -> SniffResult:
        """The verdict for everything fed so far."""
        self._final = True  # the input ended: a short last piece of compressed data is whole
        stream = self._stream
        if stream is not None and stream.pending:
            pending, stream.pending = stream.pending, b""
            self._feed(pending)
        if self._stream is not None:
            self._close_stream()
        names = ", ".join(sorted(self._names))
        notes = "; ".join(dict.fromkeys(self._notes))
        if self._cii is not None and names:
            # Names are not listed: scanning stops at the first one, so the set would depend
            # on how the bytes were chunked.
            detail = f"Factur-X PDF, embedded CII: {self._cii.detail}"
            return SniffResult(PayloadFormat.FACTURX, detail, frozenset({PayloadFormat.FACTURX}))
        if self._cii is not None:
            expected = ", ".join(FACTURX_NAMES)
            return SniffResult(None, f"PDF embeds CII but under none of the names {expected}")
        if names:
            why = notes or "no embedded file stream found"
            return SniffResult(None, f"PDF names {names} but no embedded CII was read: {why}")
        return SniffResult(None, "PDF without embedded CII" + (f" ({notes})" if notes else ""))

    # --- scan: PDF syntax outside stream bodies -----------------------------------------

    def _scan(self, data: bytes) -> bytes:
        """Scan `data`; return the bytes after a stream keyword (handled by another mode)."""
        window = self._context + data
        at = window.find(_KEYWORD, max(len(self._context) - len(_KEYWORD) - 1, 0))
        while at >= 0:
            body = _body_start(window, at)
            if body == _NEED_MORE:
                break
            if body != _NOT_KEYWORD:
                self._find_names(window[:at])
                self._context = b""
                self._open_stream(_dictionary(window[max(at - _LOOKBACK, 0) : at]))
                return window[body:]
            at = window.find(_KEYWORD, at + 1)
        self._find_names(window)
        self._context = window[-_LOOKBACK:]
        return b""

    def _find_names(self, window: bytes) -> None:
        lowered = window.lower()
        self._names.update(name for needle, name in _NEEDLES.items() if needle in lowered)

    def _open_stream(self, dictionary: bytes) -> None:
        """Choose what to do with the body that follows `dictionary`."""
        embedded = bool(_TYPE_EMBEDDED.search(dictionary) or _SUBTYPE_XML.search(dictionary))
        objstm = bool(_TYPE_OBJSTM.search(dictionary))
        filters = _filters(dictionary)
        if not (embedded or objstm):
            self._mode = "skip"
            return
        if self._budget <= 0:
            self._notes.append("the inflate budget is spent: later streams were not decoded")
            self._mode = "skip"
            return
        if filters not in ([], [b"FlateDecode"], [b"Fl"]):
            shown = "/".join(f.decode("ascii", "replace") for f in filters)
            self._notes.append(f"a stream with filter {shown} was not decoded")
            self._mode = "skip"
            return
        inflater = zlib.decompressobj() if filters else None
        if embedded and self._embedded < _MAX_EMBEDDED:
            self._embedded += 1
            xml = XmlSniffer(head_limit=self._head_limit)
            self._stream = _Stream(xml.feed, self._head_limit, inflater, xml)
        elif objstm:
            self._stream = _Stream(self._find_names_inflated(), _OBJSTM_ROOM, inflater, None)
        else:
            self._notes.append(f"more than {_MAX_EMBEDDED} embedded files")
            self._mode = "skip"
            return
        self._mode = "body"

    def _find_names_inflated(self) -> Callable[[bytes], None]:
        """A sink that searches an object stream's text, names straddling pieces included."""
        tail = b""

        def sink(piece: bytes) -> None:
            nonlocal tail
            window = tail + piece
            self._find_names(window)
            tail = window[-64:]

        return sink

    # --- body: an interesting stream's content ---------------------------------------------

    def _body(self, data: bytes) -> bytes:
        stream = self._stream
        assert stream is not None
        if stream.inflater is None:
            return self._raw_body(stream, data)
        # Compressed input goes to zlib in fixed _PIECE slices counted from the stream start:
        # what zlib returns (or loses when it raises) must not depend on the caller's chunks.
        window = stream.pending + data
        stream.pending = b""
        end = len(window) if self._final else len(window) - len(window) % _PIECE
        for start in range(0, end, _PIECE):
            piece = window[start : min(start + _PIECE, end)]
            rest = self._inflate(stream, stream.inflater, piece)
            if rest is not None:
                return rest + window[start + len(piece) :]
        stream.pending = window[end:]
        return b""

    def _inflate(self, stream: _Stream, inflater: zlib._Decompress, data: bytes) -> bytes | None:
        """Inflate one piece; None while the stream goes on, else the bytes after its end."""
        while True:
            room = min(stream.room, self._budget, _STEP)
            if room <= 0:
                return self._end_body(data)
            try:
                out = inflater.decompress(data, room)
            except zlib.error as exc:
                self._notes.append(f"a Flate stream is corrupt ({exc})")
                return self._end_body(data)
            stream.room -= len(out)
            self._budget -= len(out)
            stream.sink(out)
            if inflater.eof:
                return self._end_body(inflater.unused_data)
            data = inflater.unconsumed_tail
            if not data and len(out) < room:  # a full buffer may hide more pending output
                return None

    def _end_body(self, rest: bytes) -> bytes:
        """Close the stream; what follows is skipped up to `endstream`."""
        self._close_stream()
        self._mode = "skip"
        return rest

    def _raw_body(self, stream: _Stream, data: bytes) -> bytes:
        window = self._skip_tail + data
        end = window.find(_END)
        usable = window[:end] if end >= 0 else window[: len(window) - len(_END) + 1]
        piece = usable[: max(min(stream.room, self._budget), 0)]
        stream.room -= len(piece)
        self._budget -= len(piece)
        stream.sink(piece)
        if end < 0:
            self._skip_tail = window[len(usable) :]
            return b""
        self._skip_tail = b""
        self._close_stream()
        self._mode = "scan"
        return window[end + len(_END) :]

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None or stream.xml is None:
            return
        verdict = stream.xml.finish()
        if is_cii(verdict):
            self._cii = self._cii or verdict
        else:
            self._notes.append(f"an embedded file is not CII ({verdict.detail})")

    # --- skip: an uninteresting stream body, or the rest of one ----------------------------

    def _skip(self, data: bytes) -> bytes:
        window = self._skip_tail + data
        end = window.find(_END)
        if end < 0:
            self._skip_tail = window[-(len(_END) - 1) :]
            return b""
        self._skip_tail = b""
        self._mode = "scan"
        return window[end + len(_END) :]


def _body_start(window: bytes, at: int) -> int:
    """Where the body of a real `stream` keyword at `at` begins, or a negative verdict.

    A real keyword closes a dictionary (`>>`, optional whitespace) and ends its line; the word
    inside a string or a body (`Mainstream`, `endstream`) is not one.
    """
    after = at + len(_KEYWORD)
    if len(window) < after + 2:
        return _NEED_MORE
    if window[after] not in b"\r\n" or not window[max(at - 64, 0) : at].rstrip().endswith(b">>"):
        return _NOT_KEYWORD
    return after + 2 if window[after : after + 2] == b"\r\n" else after + 1


def _dictionary(lookback: bytes) -> bytes:
    """The stream's own dictionary: the text after its `N G obj` header when visible."""
    header = lookback.rfind(b"obj")
    return lookback[header + 3 :] if header >= 0 else lookback


def _filters(dictionary: bytes) -> list[bytes]:
    match = _FILTER.search(dictionary)
    if match is None:
        return []
    if match.group(1) is not None:
        return [match.group(1)]
    return re.findall(rb"/(\w+)", match.group(2))
