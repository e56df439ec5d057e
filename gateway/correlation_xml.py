"""What a flow says about other flows: invoice numbers, statuses and our file names, read safely.

The schemas of Chorus Pro's integration reports (CSO…A) and lifecycle flows (FEN1200A/FEN1201A)
are not public (domain.md §7), so this reader is a documented heuristic over element *local*
names, namespace-blind and case-insensitive:

* a *status* is the text of a leaf named like `Statut`, `Etat`, `Status`, `CodeStatut`,
  `Resultat`… (or the `Code`/`Valeur` leaf inside such an element); each status becomes one
  record with the `Numero`/`NumeroFacture`/`IdFacture`… leaf of the same element or of the
  nearest ancestor, and the `Motif`/`Commentaire`/`Raison`… and `Horodatage`/`DateStatut`… leaves
  of the same element. A record without an invoice number is a flow-level result (an
  integration report's "integrated" or "rejected");
* anywhere in the text or attributes, our outbound file name `<CODE>_<message id>` names the
  message directly; leaves named like `NomFichier`, `IdFlux`, `NumeroFlux`… are kept as flow
  identifiers (they may hold the id a protocol gave our transfer);
* an invoice document (UBL `Invoice`/`CreditNote`, CII `CrossIndustryInvoice`, CPP `CPPFacture…`)
  yields its invoice numbers instead: UBL `/Invoice/cbc:ID`, CII `ExchangedDocument/ram:ID`, CPP
  `…Facture…/Id|Numero…`.

Safety is the rule of `sniff_xml`: any DOCTYPE or entity declaration is refused the moment expat
reports it, parameter entities are never parsed, and only `limit` bytes are ever read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

__all__ = ["MAX_BYTES", "FlowFacts", "StatusRecord", "facts_from_bytes", "read_facts"]

MAX_BYTES = 16 << 20
MAX_RECORDS = 5000
MAX_VALUES = 1000
MAX_DEPTH = 256
_VALUE_MAX = 256
_CHUNK = 1 << 16
OUTBOUND_NAME = re.compile(
    r"(?<![A-Z0-9])([A-Z]{3}[0-9]{4}[A-Z])_([0-9A-HJKMNP-TV-Z]{26})(?![A-Z0-9])"
)

_NUMBER = {"numero", "numerofacture", "numfacture", "idfacture", "identifiantfacture"}
_NUMBER |= {"invoicenumber", "invoiceid", "numerofacturefournisseur", "referencefacture"}
_STATUS = {"statut", "statutfacture", "codestatut", "status", "statuscode", "etat", "etatflux"}
_STATUS |= {"statutflux", "resultat", "statutintegration", "etatintegration", "codeetat"}
_STATUS_CODE = {"code", "valeur", "value", "libelle", "statut"}
_REASON = {"motif", "motifrejet", "motifstatut", "motifsuspension", "commentaire", "raison"}
_REASON |= {"reason", "libellerejet", "libelleerreur", "erreur", "message", "description"}
_DATE = {"horodatage", "datestatut", "dateheure", "datehorodatage", "date", "datetime"}
_IDENT = {"nomfichier", "nomflux", "idflux", "numeroflux", "identifiantflux", "referenceflux"}
_IDENT |= {"filename", "flowid", "messageid", "nomfichierdepose", "fichier"}
_UBL_ROOTS = {
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2 Invoice",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2 CreditNote",
}
_CBC_ID = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2 ID"
_CII_ROOT = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 CrossIndustryInvoice"
_CII_DOC = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100 ExchangedDocument"
_RAM_ID = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100 ID"


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One status found in a return flow; `invoice` None means it is about the whole flow."""

    status: str
    invoice: str | None = None
    reason: str | None = None
    at: str | None = None


@dataclass(frozen=True, slots=True)
class FlowFacts:
    """What was read; `problem` says why nothing (or not everything) could be read."""

    root: str | None = None
    is_invoice: bool = False
    invoices: tuple[str, ...] = ()
    records: tuple[StatusRecord, ...] = ()
    message_ids: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    problem: str | None = None


class _Refused(Exception):
    """A handler saw something never accepted (a DTD)."""


class _Done(Exception):
    """Enough is known."""


@dataclass(slots=True)
class _Frame:
    name: str
    local: str
    leaf: bool = True
    text: list[str] = field(default_factory=list)
    size: int = 0
    statuses: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def clean(text: str) -> str | None:
    """Peer text made safe for the store: printable, single-spaced, bounded; None if empty."""
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    value = " ".join(kept.split())[:_VALUE_MAX]
    return value or None


def _local(name: str) -> str:
    return name.rpartition(" ")[2].lower()


_LEAF_KINDS = (
    ("status", _STATUS),
    ("reason", _REASON),
    ("at", _DATE),
    ("ident", _IDENT),
)


def _category(local: str, parent: _Frame) -> str | None:
    """What a leaf holds, knowing the element it sits in."""
    if parent.local in _STATUS and local in _STATUS_CODE:
        return "status"
    in_invoice = "facture" in parent.local or "invoice" in parent.local
    if local not in _STATUS and (local in _NUMBER or (local == "id" and in_invoice)):
        return "number"
    return next((kind for kind, names in _LEAF_KINDS if local in names), None)


class _Reader:
    """Expat handlers collecting facts; every collection is bounded."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.root: str | None = None
        self.family = "other"
        self.invoices: dict[str, None] = {}
        self.records: list[StatusRecord] = []
        self.ids: dict[str, None] = {}
        self.identifiers: dict[str, None] = {}
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.buffer_text = True
        self.parser.StartDoctypeDeclHandler = self._refuse
        self.parser.EntityDeclHandler = self._refuse
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text

    def _refuse(self, *_: object) -> None:
        raise _Refused("DOCTYPE refused: DTDs and entity declarations are never accepted")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(f"elements nested deeper than {MAX_DEPTH}")
        if self.stack:
            self.stack[-1].leaf = False
        else:
            self._on_root(name)
        for value in attributes.values():
            self._scan(value)
        self.stack.append(_Frame(name, _local(name)))

    def _on_root(self, name: str) -> None:
        self.root = name.rpartition(" ")[2]
        if name in _UBL_ROOTS:
            self.family = "ubl"
        elif name == _CII_ROOT:
            self.family = "cii"
        elif _local(name).startswith("cppfacture"):
            self.family = "cpp"

    def _text(self, data: str) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.size < 2 * _VALUE_MAX:
            frame.text.append(data)
            frame.size += len(data)

    def _scan(self, text: str) -> None:
        for match in OUTBOUND_NAME.finditer(text[: 4 * _VALUE_MAX]):
            if len(self.ids) < MAX_VALUES:
                self.ids.setdefault(match.group(2))

    def _end(self, _name: str) -> None:
        frame = self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        if frame.leaf:
            self._leaf(frame, parent)
        elif parent is not None and frame.local in _STATUS:
            parent.statuses.extend(frame.statuses)  # a status element with parts: lift them
            for key, value in frame.fields.items():
                parent.fields.setdefault(key, value)
        elif frame.statuses:
            self._records(frame)
        if not self.stack:
            raise _Done

    def _leaf(self, frame: _Frame, parent: _Frame | None) -> None:
        text = "".join(frame.text)
        self._scan(text)
        value = clean(text)
        if value is None or parent is None:
            return
        if self.family != "other":
            self._invoice_number(frame, parent, value)
            return
        category = _category(frame.local, parent)
        if category == "status":
            parent.statuses.append(value)
        elif category == "ident":
            if len(self.identifiers) < MAX_VALUES:
                self.identifiers.setdefault(value)
        elif category is not None:
            parent.fields.setdefault(category, value)

    def _invoice_number(self, frame: _Frame, parent: _Frame, value: str) -> None:
        depth = len(self.stack)
        if self.family == "ubl" and depth == 1 and frame.name == _CBC_ID:
            self.invoices.setdefault(value)
            raise _Done
        cii_id = depth == 2 and parent.name == _CII_DOC and frame.name == _RAM_ID
        if self.family == "cii" and cii_id:
            self.invoices.setdefault(value)
            raise _Done
        is_number = _category(frame.local, parent) == "number"
        if self.family == "cpp" and is_number and len(self.invoices) < MAX_VALUES:
            self.invoices.setdefault(value)

    def _records(self, frame: _Frame) -> None:
        number = frame.fields.get("number")
        for ancestor in reversed(self.stack):
            if number is not None:
                break
            number = ancestor.fields.get("number")
        for status in frame.statuses:
            if len(self.records) < MAX_RECORDS:
                self.records.append(
                    StatusRecord(
                        status=status,
                        invoice=number,
                        reason=frame.fields.get("reason"),
                        at=frame.fields.get("at"),
                    )
                )

    def facts(self, problem: str | None) -> FlowFacts:
        return FlowFacts(
            root=self.root,
            is_invoice=self.family != "other",
            invoices=tuple(self.invoices),
            records=tuple(self.records),
            message_ids=tuple(self.ids),
            identifiers=tuple(self.identifiers),
            problem=problem,
        )


def _feed(reader: _Reader, data: bytes, *, final: bool) -> str | bool | None:
    """Parse one piece: True when done, a problem text when it failed, None to go on."""
    try:
        reader.parser.Parse(data, final)
    except _Done:
        return True
    except _Refused as exc:
        return f"XML refused: {exc}"
    except expat.ExpatError as exc:
        return f"not well-formed XML: {expat.ErrorString(exc.code)} (line {exc.lineno})"
    except (LookupError, ValueError, UnicodeError) as exc:
        return f"unsupported encoding declaration ({type(exc).__name__})"
    return True if final else None


def facts_from_chunks(chunks: Iterable[bytes], *, limit: int = MAX_BYTES) -> FlowFacts:
    """Read facts from byte chunks, never more than `limit` bytes."""
    reader = _Reader()
    consumed = 0
    first = True
    for chunk in chunks:
        if first and chunk.lstrip()[:5] == b"%PDF-":
            return FlowFacts(problem="a PDF: no references are read from it")
        first = False
        piece = chunk[: limit - consumed]
        consumed += len(piece)
        outcome = _feed(reader, piece, final=False)
        if outcome is not None:
            return reader.facts(None if outcome is True else str(outcome))
        if consumed >= limit:
            return reader.facts(f"only the first {limit} bytes were read")
    outcome = _feed(reader, b"", final=True)
    return reader.facts(None if outcome is True else str(outcome))


def facts_from_bytes(data: bytes, *, limit: int = MAX_BYTES) -> FlowFacts:
    """Facts of a payload held in memory."""
    return facts_from_chunks([data], limit=limit)


def read_facts(path: Path, *, limit: int = MAX_BYTES) -> FlowFacts:
    """Blocking: facts of a stored payload, read in chunks (run it in the offload pool)."""

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk

    return facts_from_chunks(chunks(), limit=limit)
