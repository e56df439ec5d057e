"""What a sniff found; shared by the XML, PDF and top-level sniffers (apart to avoid cycles)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.interfaces import PayloadFormat

__all__ = ["OPAQUE_XML_FORMATS", "SniffResult"]

# Formats whose XML root element is not public (domain.md §7): any well-formed XML that is not an
# invoice is accepted for them. Named so `format_matches` and the sniffers agree on the set.
OPAQUE_XML_FORMATS = frozenset(
    {
        PayloadFormat.CPRO_LIFECYCLE,
        PayloadFormat.CPP_LIFECYCLE,
        PayloadFormat.INTEGRATION_REPORT,
        PayloadFormat.INVOICE_STATUS,
    }
)


@dataclass(frozen=True, slots=True)
class SniffResult:
    """The recognised format (None: not recognised) and, in `detail`, what was seen or why not.

    `candidates` holds every format the payload is consistent with when the bytes read cannot
    tell them apart (a UBL invoice with lines may be full or Min; an XML whose root is not an
    invoice may be any lifecycle/report format). `format` is then the best guess among them.
    """

    format: PayloadFormat | None
    detail: str
    candidates: frozenset[PayloadFormat] = frozenset()
