"""A zero-copy BER/DER reader over memoryview, and tiny DER writers.

asn1crypto copies every nested level's bytes when it parses, so a 1 GB EnvelopedData would be
held several times. The big layers (ContentInfo -> ...Data -> content octets) are walked here
over one memoryview; only small pieces (RecipientInfos, SignerInfos) go to asn1crypto.
Indefinite lengths and constructed OCTET STRINGs (streaming BER senders) are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Final, NamedTuple, TypeAlias

__all__ = [
    "CONTEXT",
    "UNIVERSAL",
    "Chunk",
    "DerError",
    "Tlv",
    "chunks_of",
    "encode",
    "encode_integer",
    "encode_oid",
    "header",
    "read",
    "read_single",
    "wrap",
]

UNIVERSAL = 0
CONTEXT = 2
INTEGER = 2
OCTET_STRING = 4
NULL = 5
OBJECT_IDENTIFIER = 6
SEQUENCE = 16
SET = 17

Chunk: TypeAlias = bytes | bytearray | memoryview

MAX_DEPTH = 48  # deeper than any CMS structure; stops recursion bombs
_MAX_TAG = 1 << 24


class DerError(ValueError):
    """Malformed or truncated encoding; callers translate it into the step's As2Error."""


class Tlv(NamedTuple):
    """One tag-length-value node; offsets index `data`, nothing is copied.

    A NamedTuple, immutable like a frozen dataclass but three times cheaper to make (a frozen
    dataclass's __init__ was the reader's largest cost: one node per TLV read).
    """

    data: memoryview
    tag_class: int
    constructed: bool
    number: int
    start: int
    body_start: int
    body_end: int
    end: int
    depth: int

    @property
    def body(self) -> memoryview:
        return self.data[self.body_start : self.body_end]

    @property
    def raw(self) -> memoryview:
        return self.data[self.start : self.end]

    def is_(self, tag_class: int, number: int) -> bool:
        return self.tag_class == tag_class and self.number == number

    def expect(self, tag_class: int, number: int, what: str) -> Tlv:
        if not self.is_(tag_class, number):
            raise DerError(f"{what}: unexpected tag [{self.tag_class}:{self.number}]")
        return self

    def children(self) -> Iterator[Tlv]:
        """Each child in turn, read only when asked for."""
        if not self.constructed:
            raise DerError("primitive value where a constructed one was expected")
        pos = self.body_start
        while pos < self.body_end:
            child = read(self.data, pos, self.body_end, depth=self.depth + 1)
            yield child
            pos = child.end

    def child_list(self, what: str, *, minimum: int = 0) -> list[Tlv]:
        """Every child at once (a loop rather than a generator: the common, hot case)."""
        if not self.constructed:
            raise DerError("primitive value where a constructed one was expected")
        data, pos, end, depth = self.data, self.body_start, self.body_end, self.depth + 1
        found: list[Tlv] = []
        while pos < end:
            child = read(data, pos, end, depth=depth)
            found.append(child)
            pos = child.end
        if len(found) < minimum:
            raise DerError(f"{what}: {len(found)} elements, at least {minimum} expected")
        return found

    def octets(self) -> Iterator[memoryview]:
        """The content of an OCTET STRING, primitive or constructed (BER chunks)."""
        if not self.constructed:
            yield self.body
            return
        for child in self.children():
            child.expect(UNIVERSAL, OCTET_STRING, "octet string chunk")
            yield from child.octets()

    def as_int(self) -> int:
        self.expect(UNIVERSAL, INTEGER, "integer")
        if self.constructed or not 0 < len(self.body) <= 64:
            raise DerError("integer: bad length")
        return int.from_bytes(self.body, "big", signed=True)

    def as_oid(self) -> str:
        self.expect(UNIVERSAL, OBJECT_IDENTIFIER, "object identifier")
        return _decode_oid(self.body, constructed=self.constructed)


_tlv = tuple.__new__  # Tlv's own __new__ is a Python function: skipped on the hot path


def _decode_oid(body: memoryview, *, constructed: bool) -> str:
    if constructed or not 0 < len(body) <= 64 or body[-1] & 0x80:
        raise DerError("object identifier: bad encoding")
    known = _KNOWN_OIDS.get(bytes(body))
    if known is not None:
        return known
    arcs: list[int] = []
    value = 0
    for octet in body:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def read(data: memoryview, pos: int = 0, limit: int | None = None, *, depth: int = 0) -> Tlv:
    """Read the node starting at `pos`; never reads past `limit`."""
    end_limit = len(data) if limit is None else limit
    if depth > MAX_DEPTH:
        raise DerError("nesting too deep")
    if pos >= end_limit:
        raise DerError("truncated: identifier missing")
    first = data[pos]
    p = pos + 1
    number = first & 0x1F
    if number == 0x1F:
        number, p = _long_tag(data, p, end_limit)
    if p >= end_limit:
        raise DerError("truncated: length missing")
    length_octet = data[p]
    p += 1
    constructed = bool(first & 0x20)
    if length_octet < 0x80:  # short form: most nodes
        length = length_octet
    elif length_octet == 0x80:
        if not constructed:
            raise DerError("indefinite length on a primitive value")
        body_end = _find_end_of_contents(data, p, end_limit, depth)
        return _tlv(Tlv, (data, first >> 6, constructed, number, pos, p, body_end, body_end + 2,
                          depth))  # fmt: skip
    else:
        length, p = _long_length(data, p, end_limit, length_octet)
    if length > end_limit - p:
        raise DerError("truncated: length exceeds the data")
    end = p + length
    return _tlv(Tlv, (data, first >> 6, constructed, number, pos, p, end, end, depth))


def _long_tag(data: memoryview, p: int, limit: int) -> tuple[int, int]:
    number = 0
    while True:
        if p >= limit:
            raise DerError("truncated: tag number")
        octet = data[p]
        p += 1
        number = (number << 7) | (octet & 0x7F)
        if number >= _MAX_TAG:
            raise DerError("tag number too large")
        if not octet & 0x80:
            return number, p


def _long_length(data: memoryview, p: int, limit: int, first: int) -> tuple[int, int]:
    count = first & 0x7F
    if count > 8:
        raise DerError("length field too long")
    if p + count > limit:
        raise DerError("truncated: length octets")
    if count == 1:  # the common cases (128 bytes to 64 KiB): no slice, no int.from_bytes
        return data[p], p + 1
    if count == 2:
        return (data[p] << 8) | data[p + 1], p + 2
    return int.from_bytes(data[p : p + count], "big"), p + count


def _find_end_of_contents(data: memoryview, pos: int, limit: int, depth: int) -> int:
    while True:
        if pos + 2 > limit:
            raise DerError("truncated: end-of-contents missing")
        if data[pos] == 0 and data[pos + 1] == 0:
            return pos
        pos = read(data, pos, limit, depth=depth + 1).end


def read_single(data: Chunk, what: str) -> Tlv:
    """The one node making up `data`; trailing bytes other than whitespace are refused."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    tlv = read(view)
    if tlv.end != len(view) and bytes(view[tlv.end :]).strip(b" \t\r\n\x00"):
        raise DerError(f"{what}: trailing data after the structure")
    return tlv


# --- writers -------------------------------------------------------------------------------


def chunks_of(data: Chunk | Sequence[Chunk]) -> Sequence[Chunk]:
    """One buffer or several, always as a sequence: callers hash/encrypt without joining."""
    return [data] if isinstance(data, bytes | bytearray | memoryview) else data


def header(identifier: int, length: int) -> bytes:
    """Identifier octet and definite length."""
    if length < 0x80:
        return bytes((identifier, length))
    size = (length.bit_length() + 7) // 8
    return bytes((identifier, 0x80 | size)) + length.to_bytes(size, "big")


def encode(identifier: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return header(identifier, len(body)) + body


def wrap(identifier: int, parts: Sequence[Chunk]) -> list[Chunk]:
    """Prefix a header to `parts` without joining them: big content is copied only once."""
    return [header(identifier, sum(len(p) for p in parts)), *parts]


def encode_integer(value: int) -> bytes:
    """Minimal two's complement: -128 is one byte (0x80), 128 is two (0x00 0x80)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return encode(0x02, value.to_bytes(size, "big", signed=True))


def encode_oid(dotted: str) -> bytes:
    known = _ENCODED_OIDS.get(dotted)
    return known if known is not None else _encode_oid(dotted)


def _encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return encode(0x06, bytes(body))


# OIDs every AS2 message carries (content types, attribute types, common algorithms): looked up
# both ways instead of computed, 20 times cheaper than the arithmetic.
COMMON_OIDS = (
    "1.2.840.113549.1.7.1",  # data
    "1.2.840.113549.1.7.2",  # signedData
    "1.2.840.113549.1.7.3",  # envelopedData
    "1.2.840.113549.1.9.16.1.9",  # compressedData
    "1.2.840.113549.1.9.16.1.23",  # authEnvelopedData
    "1.2.840.113549.1.9.16.3.8",  # zlib
    "1.2.840.113549.1.9.3",  # contentType attribute
    "1.2.840.113549.1.9.4",  # messageDigest attribute
    "1.2.840.113549.1.9.5",  # signingTime attribute
    "1.2.840.113549.1.1.1",  # rsaEncryption
    "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
    "1.3.14.3.2.26",  # sha1
    "2.16.840.1.101.3.4.2.1",  # sha256
    "2.16.840.1.101.3.4.1.2",  # aes128-CBC
    "2.16.840.1.101.3.4.1.42",  # aes256-CBC
)
_ENCODED_OIDS: Final = MappingProxyType({oid: _encode_oid(oid) for oid in COMMON_OIDS})
_KNOWN_OIDS: Final = MappingProxyType({encoded[2:]: oid for oid, encoded in _ENCODED_OIDS.items()})
