"""Streaming XML head sniffing: the root element and its profile, read with expat, DTDs refused.

Only the head of a document is read: the parser is fed incrementally and stops as soon as the
format is known, or after `head_limit` bytes, so a 1 GB invoice costs a few kilobytes.

Security: any DOCTYPE is refused the moment expat reports it, before a single entity could be
declared or expanded (billion laughs, quadratic blow-up, XXE); parameter entities are never
parsed and no external entity handler exists, so nothing is ever fetched.

How the profile is decided, and how sure we are:
* UBL (root `Invoice` or `CreditNote` in the UBL 2 namespaces). Chorus Pro's "UBL Invoice Min"
  (E2, FSO1110A) uses the same UBL schema with a reduced data set and the invoice image as a PDF
  attachment; no public identifier (CustomizationID/ProfileID value) marks it. The one rule we
  hold with high confidence: EN 16931 makes invoice lines (BG-25) mandatory, so a complete
  document *without* any `InvoiceLine`/`CreditNoteLine` cannot be a full E1 invoice -> Min only.
  A document with lines is reported as full but stays compatible with Min (an AIFE change log
  says lines are required in some E2 flows). Undecided within the head -> both.
* CII 16B (root `CrossIndustryInvoice`, namespace `...:CrossIndustryInvoice:100`). A guideline
  (`GuidelineSpecifiedDocumentContextParameter/ID`) ending in `:minimum` or `:basicwl`
  (Factur-X / ZUGFeRD profiles without lines) -> Min only, high confidence that these are not
  full invoices, medium that it is what Chorus Pro calls "CII Min 16B". Otherwise the line rule
  above applies (in CII the line items precede the header agreement, so it is decided early).
* CPP formats (Chorus Pro's own schemas, no namespace, roots such as `CPPFacturePivot`,
  `CPPStatutPivot`). Root names of the E2 "CPP Facture Min" flow are not public: a root whose
  local name starts with `CPPFacture` is taken as CPP Facture Min (medium-low confidence).
* Anything else well-formed (lifecycle FEN1200A/FEN1201A, integration reports, CDAR statuses):
  the roots are not public, so it is reported as "not an invoice" with the lifecycle, report and
  status formats as candidates; a root starting with `CPPStatut` is the best guess for FEN1201A.
"""

from __future__ import annotations

from enum import Enum
from xml.parsers import expat

from gateway.interfaces import PayloadFormat
from gateway.sniff_result import OPAQUE_XML_FORMATS, SniffResult

__all__ = ["CII_NS", "UBL_INVOICE_NS", "XmlSniffer", "is_cii"]

UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2 "
_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2 "
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
_RSM = CII_NS + " "
_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 "

_UBL_ROOTS = {
    UBL_INVOICE_NS + " Invoice": "UBL Invoice",
    UBL_CREDIT_NOTE_NS + " CreditNote": "UBL CreditNote",
}
_UBL_IDS = {_CBC + "CustomizationID": "CustomizationID", _CBC + "ProfileID": "ProfileID"}
_UBL_LINES = {_CAC + "InvoiceLine", _CAC + "CreditNoteLine"}
_CII_ROOT = _RSM + "CrossIndustryInvoice"
_CII_CONTEXT = _RSM + "ExchangedDocumentContext"
_CII_GUIDELINE = _RAM + "GuidelineSpecifiedDocumentContextParameter"
_CII_TRANSACTION = _RSM + "SupplyChainTradeTransaction"
_CII_LINE = _RAM + "IncludedSupplyChainTradeLineItem"
_MIN_PROFILE_SUFFIXES = (":minimum", ":basicwl")
_TEXT_MAX = 256
_SHOWN_MAX = 160
_UBL_BOTH = frozenset({PayloadFormat.UBL_INVOICE, PayloadFormat.UBL_INVOICE_MIN})
_CII_BOTH = frozenset({PayloadFormat.CII_16B, PayloadFormat.CII_16B_MIN})
_DOCTYPE_REFUSED = "DOCTYPE refused: DTDs and entity declarations are never accepted"


class _StopParsingError(Exception):
    """Raised from a handler: enough is known, stop parsing."""


class _RefusedError(Exception):
    """Raised from a handler: the document tried something we never accept."""


class _Family(Enum):
    UBL = "ubl"
    CII = "cii"
    OTHER = "other"


def is_cii(result: SniffResult) -> bool:
    """True when `result` describes a CII 16B document (full or Min)."""
    return result.format in _CII_BOTH


def shown(text: str) -> str:
    """Peer-supplied text made printable and short for a detail string."""
    return ascii(text[:_SHOWN_MAX])[1:-1]


def _clark(name: str) -> str:
    uri, _, local = name.rpartition(" ")
    return f"{{{uri}}}{local}" if uri else local


class XmlSniffer:
    """Feed bytes; `finish()` says what the document is. Memory is bounded by `head_limit`."""

    def __init__(self, *, head_limit: int) -> None:
        self._head_limit = head_limit
        self._consumed = 0
        self._done = False
        self._result: SniffResult | None = None
        self._depth = 0
        self._path: list[str] = []  # element names down to depth 3 only (bounded)
        self._root: str | None = None
        self._family = _Family.OTHER
        self._capture: tuple[str, int, list[str]] | None = None  # (key, depth, text parts)
        self._ids: dict[str, str] = {}
        self._lines: bool | None = None
        self._error: str | None = None
        self._refused: str | None = None
        self._limit_hit = False
        self._parser = self._new_parser()

    def _new_parser(self) -> expat.XMLParserType:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._on_doctype
        parser.EntityDeclHandler = self._on_entity
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_text
        return parser

    @property
    def done(self) -> bool:
        """True once more bytes cannot change the verdict."""
        return self._done

    def feed(self, data: bytes) -> None:
        """Parse the next bytes of the document (ignored once done)."""
        if self._done or not data:
            return
        room = self._head_limit - self._consumed
        last = len(data) >= room
        data = data[:room]
        self._consumed += len(data)
        self._parse(data, final=False)
        if last and not self._done:
            self._limit_hit = True
            self._done = True

    def finish(self) -> SniffResult:
        """The verdict; the end of input is the end of the document unless already done."""
        if self._result is None:
            if not self._done:
                self._parse(b"", final=True)
                self._done = True
            self._result = self._verdict()
        return self._result

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except _StopParsingError:
            self._done = True
        except _RefusedError as exc:
            self._refused = str(exc)
            self._done = True
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code) or "error"
            self._error = f"{reason} (line {exc.lineno}, column {exc.offset})"
            self._done = True
        except (LookupError, ValueError, UnicodeError) as exc:
            # pyexpat asks Python's codecs for a declared encoding it does not know itself:
            # unknown names raise LookupError, multi-byte or odd codecs ValueError.
            self._error = f"unsupported encoding declaration ({shown(str(exc))})"
            self._done = True

    # --- expat handlers -------------------------------------------------------------------

    def _on_doctype(self, *_: object) -> None:
        raise _RefusedError(_DOCTYPE_REFUSED)

    def _on_entity(self, *_: object) -> None:
        raise _RefusedError(_DOCTYPE_REFUSED)

    def _on_start(self, name: str, _attributes: object) -> None:
        self._depth += 1
        if self._depth <= 3:
            self._path.append(name)
        if self._depth == 1:
            self._on_root(name)
        elif self._family is _Family.UBL:
            self._ubl_start(name)
        elif self._family is _Family.CII:
            self._cii_start(name)

    def _on_root(self, name: str) -> None:
        self._root = name
        if name in _UBL_ROOTS:
            self._family = _Family.UBL
        elif name == _CII_ROOT:
            self._family = _Family.CII
        # Other roots are small documents (reports, statuses): read on, to check well-formedness.

    def _ubl_start(self, name: str) -> None:
        if self._depth != 2:
            return
        if name in _UBL_IDS:
            self._capture = (_UBL_IDS[name], self._depth, [])
        elif name in _UBL_LINES:
            self._lines = True
            raise _StopParsingError

    def _cii_start(self, name: str) -> None:
        path = self._path
        if self._depth == 4 and path[1:3] == [_CII_CONTEXT, _CII_GUIDELINE]:
            if name == _RAM + "ID":
                self._capture = ("guideline", self._depth, [])
        elif self._depth == 3 and path[1] == _CII_TRANSACTION:
            # In CII 16B the line items come first in the transaction: the first child decides.
            self._lines = name == _CII_LINE
            raise _StopParsingError

    def _on_end(self, _name: str) -> None:
        if self._capture is not None and self._capture[1] == self._depth:
            key, _, parts = self._capture
            self._capture = None
            self._ids.setdefault(key, "".join(parts).strip())
            if key == "guideline" and self._ids[key].lower().endswith(_MIN_PROFILE_SUFFIXES):
                raise _StopParsingError
        if self._depth <= 3:
            self._path.pop()
        self._depth -= 1
        if self._depth == 0:
            if self._lines is None:
                self._lines = False
            raise _StopParsingError

    def _on_text(self, data: str) -> None:
        if self._capture is not None and sum(map(len, self._capture[2])) < _TEXT_MAX:
            self._capture[2].append(data)

    # --- verdicts -------------------------------------------------------------------------

    def _verdict(self) -> SniffResult:
        """Refusals and errors first, then the family's own rules."""
        if self._refused is not None:
            return SniffResult(None, f"XML refused: {self._refused}")
        if self._error is not None:
            return SniffResult(None, f"not well-formed XML: {self._error}")
        if self._root is None:
            return SniffResult(None, f"no XML root element in the first {self._consumed} bytes")
        if self._family is _Family.UBL:
            return self._ubl_verdict(_UBL_ROOTS[self._root])
        if self._family is _Family.CII:
            return self._cii_verdict()
        return _other_verdict(self._root, complete=not self._limit_hit, read=self._consumed)

    def _ubl_verdict(self, kind: str) -> SniffResult:
        customization = self._ids.get("CustomizationID")
        suffix = f"; CustomizationID {shown(customization)}" if customization else ""
        if self._lines is False:
            detail = f"{kind} without invoice lines: UBL Invoice Min (full invoices need lines)"
            return SniffResult(PayloadFormat.UBL_INVOICE_MIN, detail + suffix, _MIN_UBL)
        if self._lines:
            detail = f"{kind} with invoice lines: full UBL Invoice (Min not excluded)"
        else:
            detail = f"{kind}: no invoice line in the first {self._consumed} bytes; full or Min"
        return SniffResult(PayloadFormat.UBL_INVOICE, detail + suffix, _UBL_BOTH)

    def _cii_verdict(self) -> SniffResult:
        guideline = self._ids.get("guideline", "")
        profile = f"guideline {shown(guideline)}" if guideline else "no guideline"
        if guideline.lower().endswith(_MIN_PROFILE_SUFFIXES):
            detail = f"CII 16B, {profile}: CII Min (a profile without lines)"
            return SniffResult(PayloadFormat.CII_16B_MIN, detail, _MIN_CII)
        if self._lines is False:
            detail = f"CII 16B, {profile}, no line item: CII Min (full invoices need lines)"
            return SniffResult(PayloadFormat.CII_16B_MIN, detail, _MIN_CII)
        if self._lines:
            detail = f"CII 16B, {profile}, with line items: full CII (Min not excluded)"
        else:
            detail = f"CII 16B, {profile}: lines not seen in the first {self._consumed} bytes"
        return SniffResult(PayloadFormat.CII_16B, detail, _CII_BOTH)


_MIN_UBL = frozenset({PayloadFormat.UBL_INVOICE_MIN})
_MIN_CII = frozenset({PayloadFormat.CII_16B_MIN})
_CPP_FACTURE = frozenset({PayloadFormat.CPP_FACTURE_MIN})


def _other_verdict(root: str, *, complete: bool, read: int) -> SniffResult:
    """Roots of the CPP schemas by name; anything else is a non-invoice XML document."""
    local = root.rpartition(" ")[2]
    seen = shown(_clark(root)) + ("" if complete else f", well-formed in the first {read} bytes")
    if local.startswith("CPPFacture"):
        detail = f"CPP XML, root {seen}: CPP Facture Min (root name heuristic)"
        return SniffResult(
            PayloadFormat.CPP_FACTURE_MIN, detail, frozenset({PayloadFormat.CPP_FACTURE_MIN})
        )
    if local.startswith("CPPStatut"):
        detail = f"CPP XML, root {seen}: CPP lifecycle (root name heuristic)"
        return SniffResult(PayloadFormat.CPP_LIFECYCLE, detail, OPAQUE_XML_FORMATS)
    detail = (
        f"well-formed XML, root {seen}: not an invoice; acceptable only where the root "
        "is not public (lifecycle, integration report, status)"
    )
    return SniffResult(None, detail, OPAQUE_XML_FORMATS)
