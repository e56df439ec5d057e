"""Payload format sniffing: is this file the format its interface code promises?

The inbox feeds a `Sniffer` the chunks it streams to disk; the router then asks
`format_matches(spec.format, sniffer.result())`. Memory stays bounded whatever the size: XML is
read from its head only (`head_limit` bytes at most, with expat, DTDs refused), a PDF is
scanned as a stream for its embedded CII with capped inflation. See `sniff_xml` for the
profile rules (UBL/CII full vs Min) and their confidence, `sniff_pdf` for Factur-X.

The verdict is a `SniffResult`, never an exception: hostile bytes yield `format=None` and a
reason. Feeding the same bytes in any chunking yields the same result.
"""

from __future__ import annotations

from pathlib import Path

from gateway.interfaces import PayloadFormat
from gateway.sniff_pdf import PdfScanner
from gateway.sniff_result import OPAQUE_XML_FORMATS, SniffResult
from gateway.sniff_xml import XmlSniffer

__all__ = [
    "OPAQUE_XML_FORMATS",
    "SniffResult",
    "Sniffer",
    "format_matches",
    "sniff_bytes",
    "sniff_file",
]

_PROBE = 1024  # bytes read before choosing XML or PDF: a PDF header may follow junk this long
_PDF_MAGIC = b"%PDF-"
_UTF8_BOM = b"\xef\xbb\xbf"
_XML_STARTS = (b"<", b"\xff\xfe", b"\xfe\xff", b"\x00<")
_ARCHIVES = {
    b"PK\x03\x04": "ZIP archive",
    b"PK\x05\x06": "empty ZIP archive",
    b"\x1f\x8b": "gzip data",
    b"BZh": "bzip2 data",
    b"\xfd7zXZ\x00": "xz data",
}


class Sniffer:
    """Incremental sniffer: `feed` chunks as they arrive, then read `result()` once."""

    def __init__(self, *, head_limit: int = 1 << 20) -> None:
        if head_limit < _PROBE:
            raise ValueError(f"head_limit: at least {_PROBE} bytes")
        self._head_limit = head_limit
        self._probe = b""
        self._inner: XmlSniffer | PdfScanner | None = None
        self._verdict: SniffResult | None = None

    @property
    def done(self) -> bool:
        """True once later bytes cannot change the result: the caller may stop feeding."""
        return self._verdict is not None or (self._inner is not None and self._inner.done)

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the payload (ignored once the verdict is settled)."""
        if self._verdict is not None:
            return
        if self._inner is not None:
            self._inner.feed(chunk)
            return
        probe = self._probe + chunk if self._probe else chunk  # no copy of a big first chunk
        self._probe = b""
        if len(probe) >= _PROBE:
            self._choose(probe)
        else:
            self._probe = probe

    def result(self) -> SniffResult:
        """What the payload is; call after the last chunk (later calls return the same)."""
        if self._inner is None and self._verdict is None:
            self._choose(self._probe)
            self._probe = b""
        if self._verdict is None and self._inner is not None:
            self._verdict = self._inner.finish()
        assert self._verdict is not None
        return self._verdict

    def _choose(self, probe: bytes) -> None:
        """Pick the XML or PDF reader from the first bytes, or decide right away."""
        kind = _kind(probe)
        if isinstance(kind, SniffResult):
            self._verdict = kind
            return
        self._inner = kind(head_limit=self._head_limit)
        self._inner.feed(probe)


def _kind(probe: bytes) -> type[XmlSniffer] | type[PdfScanner] | SniffResult:
    """The reader for a payload starting with `probe`, or the verdict when there is none."""
    probe = probe[:_PROBE]
    text = probe.removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")
    looks_xml = text.startswith(_XML_STARTS) or probe.startswith(_XML_STARTS)
    if probe.startswith(_PDF_MAGIC) or (_PDF_MAGIC in probe and not looks_xml):
        return PdfScanner
    if looks_xml:
        return XmlSniffer
    return _unrecognised(probe, text)


def _unrecognised(probe: bytes, text: bytes) -> SniffResult:
    if not probe:
        return SniffResult(None, "empty payload")
    for magic, name in _ARCHIVES.items():
        if probe.startswith(magic):
            return SniffResult(None, f"{name}: archives are not opened by the sniffer")
    if not text:
        return SniffResult(None, "blank payload (whitespace only)")
    return SniffResult(None, f"neither XML nor PDF: starts with {probe[:8].hex(' ')}")


def sniff_bytes(data: bytes) -> SniffResult:
    """Sniff a payload held in memory (small payloads, tests)."""
    sniffer = Sniffer()
    sniffer.feed(data)
    return sniffer.result()


def sniff_file(path: Path, *, chunk_size: int = 1 << 16) -> SniffResult:
    """Sniff a file in `chunk_size` reads, stopping as soon as the verdict is settled."""
    if chunk_size <= 0:
        raise ValueError("chunk_size: must be positive")
    sniffer = Sniffer()
    with path.open("rb") as stream:
        while not sniffer.done:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            sniffer.feed(chunk)
    return sniffer.result()


def format_matches(expected: PayloadFormat, found: SniffResult) -> bool:
    """Whether a payload sniffed as `found` may travel under a code expecting `expected`.

    ANY accepts everything. Otherwise the expected format must be the one found or one of the
    candidates the bytes could not rule out (UBL with lines: full or Min; XML whose root is not
    an invoice: any lifecycle, report or status format, whose roots are not public).
    """
    if expected is PayloadFormat.ANY:
        return True
    return expected == found.format or expected in found.candidates
