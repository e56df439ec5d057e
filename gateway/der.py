"""Generic DER reading: TLV headers, children, OIDs, and a PKCS#7 SignedData's certificates.

Its own module because it knows nothing of X.509 semantics: `certload` sniffs formats and
reads PKCS#7 with it, `certassurance` decodes QCStatements with it. Strict DER only: BER
(indefinite lengths) and multi-byte tags are a `DerError`.
"""

from __future__ import annotations

__all__ = [
    "OID_SIGNED_DATA",
    "DerError",
    "der_children",
    "der_elements",
    "der_header",
    "der_oid",
    "pkcs7_certificate_ders",
]

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"


class DerError(ValueError):
    """DER that is truncated or uses a form this reader refuses (BER, long tags)."""


def der_header(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """(tag, content start, length or None for BER indefinite) of the TLV at `pos`."""
    if pos + 2 > len(data):
        raise DerError("truncated DER header")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte DER tags are not supported")
    if first < 0x80:
        return tag, pos + 2, first
    count = first & 0x7F
    if count == 0:
        return tag, pos + 2, None
    if count > 4 or pos + 2 + count > len(data):
        raise DerError("bad DER length")
    return tag, pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


def _spans(content: bytes) -> list[tuple[int, int, int, int]]:
    """(tag, TLV start, content start, end) of each value in a run of DER values."""
    spans: list[tuple[int, int, int, int]] = []
    pos = 0
    while pos < len(content):
        tag, start, length = der_header(content, pos)
        if length is None or start + length > len(content):
            raise DerError("truncated or indefinite DER value")
        spans.append((tag, pos, start, start + length))
        pos = start + length
    return spans


def der_children(content: bytes) -> list[tuple[int, bytes]]:
    """Split the content of a constructed DER value into (tag, content) pairs."""
    return [(tag, content[start:end]) for tag, _, start, end in _spans(content)]


def der_elements(content: bytes) -> list[bytes]:
    """Split a run of DER values into their whole encodings (header included)."""
    return [content[pos:end] for _, pos, _, end in _spans(content)]


def der_oid(content: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content octets."""
    if not content or content[-1] & 0x80 or len(content) > 64:
        raise DerError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def pkcs7_certificate_ders(der: bytes) -> list[bytes]:
    """The certificates field of a SignedData ContentInfo, in file order."""
    ((_, info),) = der_children(der)
    (oid_tag, oid), (wrap_tag, wrapped) = der_children(info)
    if oid_tag != 0x06 or der_oid(oid) != OID_SIGNED_DATA or wrap_tag != 0xA0:
        raise DerError("not a PKCS#7 SignedData")
    ((_, signed),) = der_children(wrapped)
    fields = [content for tag, content in der_children(signed) if tag == 0xA0]
    return [e for e in der_elements(fields[0]) if e[0] == 0x30] if fields else []
