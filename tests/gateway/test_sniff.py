"""Payload sniffing: hostile input first, then every format, streaming bounds and routing checks."""

from __future__ import annotations

import encodings.aliases
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.interfaces import PayloadFormat, builtin_catalogue
from gateway.sniff import (
    OPAQUE_XML_FORMATS,
    Sniffer,
    SniffResult,
    format_matches,
    sniff_bytes,
    sniff_file,
)

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
F = PayloadFormat


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


# --- a Factur-X PDF built here: catalog, page, /EmbeddedFiles name tree, Flate stream --------


def _literal(name: str, form: str) -> bytes:
    if form == "hex":
        return b"<" + name.encode().hex().upper().encode() + b">"
    if form == "utf16":
        return b"(\xfe\xff" + name.encode("utf-16-be") + b")"
    return b"(" + name.encode() + b")"


def _stream(head: bytes, body: bytes, *, length: bytes | None = None) -> bytes:
    size = length if length is not None else str(len(body)).encode()
    return b"<< " + head + b" /Length " + size + b" >>\nstream\r\n" + body + b"\r\nendstream"


def facturx_pdf(
    xml: bytes | None,
    *,
    name: str = "factur-x.xml",
    name_form: str = "literal",
    compress: bool = True,
    stream_filter: bytes | None = None,
    indirect_length: bool = False,
    hide_in_objstm: bool = False,
    prelude: Sequence[bytes] = (),
) -> bytes:
    """A small, structurally valid PDF 1.7; `prelude` objects come before the embedded file."""
    spelled = _literal(name, name_form)
    filespec = (
        b"<< /Type /Filespec /F " + spelled + b" /UF " + spelled + b" /AFRelationship /Data"
        b" /Desc (Factur-X invoice) /EF << /F 6 0 R /UF 6 0 R >> >>"
    )
    tree = b"<< /Names [" + spelled + b" 4 0 R] >>"
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> /AF [4 0 R] >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 7 0 R >>",
        7: _stream(b"", b"BT /F1 12 Tf 72 720 Td (Facture RACCORD) Tj ET"),
    }
    if not hide_in_objstm:
        objects[4], objects[5] = filespec, tree
    if xml is not None:
        body = zlib.compress(xml) if compress else xml
        head = b"/Type /EmbeddedFile /Subtype /text#2Fxml /Params << /Size %d >>" % len(xml)
        if stream_filter is not None:
            head += b" /Filter " + stream_filter
        elif compress:
            head += b" /Filter /FlateDecode"
        objects[6] = _stream(head, body, length=b"8 0 R" if indirect_length else None)
        objects[8] = str(len(body)).encode()
    for number, extra in enumerate(prelude, start=20):
        objects[number] = extra
    if hide_in_objstm:
        return _assemble_with_objstm(objects, {4: filespec, 5: tree})
    return _assemble(objects)


def _order(objects: dict[int, bytes]) -> list[int]:
    """Prelude objects first (they stand between the header and the embedded file)."""
    return sorted(objects, key=lambda n: (n < 20, n))


def _assemble(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in _order(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(offsets) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f\r\n" % size
    for number in range(1, size):
        out += (
            b"%010d 00000 n\r\n" % offsets[number]
            if number in offsets
            else b"0000000000 65535 f\r\n"
        )
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def _assemble_with_objstm(objects: dict[int, bytes], hidden: dict[int, bytes]) -> bytes:
    """PDF 1.5 style: `hidden` objects live compressed in object stream 9, xref stream 10."""
    texts, header, pos = b"", b"", 0
    for number, text in hidden.items():
        header += b"%d %d " % (number, pos)
        texts += text + b"\n"
        pos = len(texts)
    head = b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode" % (len(hidden), len(header))
    objects = {**objects, 9: _stream(head, zlib.compress(header + texts))}
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    entries: dict[int, bytes] = {
        n: b"\x02" + (9).to_bytes(4, "big") + i.to_bytes(2, "big") for i, n in enumerate(hidden)
    }
    for number in _order(objects):
        entries[number] = b"\x01" + len(out).to_bytes(4, "big") + b"\x00\x00"
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = 11
    entries[10] = b"\x01" + len(out).to_bytes(4, "big") + b"\x00\x00"
    table = b"".join(entries.get(n, b"\x00" * 5 + b"\xff\xff") for n in range(size))
    xref_head = b"/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode" % size
    start = len(out)
    out += b"10 0 obj\n" + _stream(xref_head, zlib.compress(table)) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % start
    return bytes(out)


def zeros_flate(megabytes: int, *, prefix: bytes = b"") -> bytes:
    """A zip bomb: `prefix` then `megabytes` MiB of zeros, Flate-compressed (~1000:1)."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [packer.compress(prefix)]
    parts.extend(packer.compress(block) for _ in range(megabytes))
    parts.append(packer.flush())
    return b"".join(parts)


def embedded_bomb_pdf(body: bytes, *, kind: bytes = b"/Type /EmbeddedFile") -> bytes:
    bomb = _stream(kind + b" /Filter /FlateDecode", body)
    return _assemble(
        {
            1: b"<< /Type /Catalog /Names << /EmbeddedFiles 5 0 R >> >>",
            4: b"<< /Type /Filespec /F (factur-x.xml) /EF << /F 6 0 R >> >>",
            5: b"<< /Names [(factur-x.xml) 4 0 R] >>",
            6: bomb,
        }
    )


CII = payload("cii-16b.xml")
UBL = payload("ubl-invoice.xml")


# --- hostile input ------------------------------------------------------------------------


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    started = time.perf_counter()
    result = sniff_bytes(payload("billion-laughs.xml"))
    assert result == SniffResult(None, result.detail)
    assert "DOCTYPE refused" in result.detail
    assert time.perf_counter() - started < 1


def test_xxe_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    document = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&x;</Invoice>'
    ).encode()
    result = sniff_bytes(document)
    assert result.format is None
    assert "DOCTYPE refused" in result.detail
    assert "TOP-SECRET" not in result.detail


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    yield server
    server.close()


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE a SYSTEM "http://127.0.0.1:{port}/evil.dtd"><a/>',
        '<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]><a/>',
        '<!DOCTYPE a [<!ENTITY e SYSTEM "http://127.0.0.1:{port}/e">]><a>&e;</a>',
    ],
    ids=["external-dtd", "parameter-entity", "external-entity"],
)
def test_external_dtd_and_entities_are_never_fetched(
    listener: socket.socket, template: str
) -> None:
    port = listener.getsockname()[1]
    result = sniff_bytes(template.format(port=port).encode())
    assert result.format is None
    assert "DOCTYPE refused" in result.detail
    with pytest.raises(TimeoutError):
        listener.accept()


def test_undefined_entity_without_dtd_is_malformed() -> None:
    result = sniff_bytes(b"<Report>&xxe;</Report>")
    assert result.format is None
    assert result.candidates == frozenset()
    assert "undefined entity" in result.detail


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty payload"),
        (b"  \r\n\t ", "blank payload"),
        (b"\x00\x01\x02\xffgarbage", "neither XML nor PDF"),
        (b"PK\x03\x04\x14\x00rest-of-zip", "ZIP archive"),
        (b"\x1f\x8b\x08\x00gzip", "gzip data"),
        (payload("malformed.xml"), "mismatched tag"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'>", "no element"),
        (b"<a>\xff\xfe</a>", "not well-formed"),
        (b"<?xml version='1.0'?>", "no element found"),
    ],
    ids=[
        "empty",
        "blank",
        "garbage",
        "zip",
        "gzip",
        "mismatched",
        "truncated",
        "bad-utf8",
        "prolog",
    ],
)
def test_unrecognised_payloads_say_why(data: bytes, reason: str) -> None:
    result = sniff_bytes(data)
    assert result.format is None
    assert reason in result.detail
    assert not format_matches(PayloadFormat.UBL_INVOICE, result)


ENCODINGS = sorted(
    {*encodings.aliases.aliases, *encodings.aliases.aliases.values(), "EBCDIC-XX", "x" * 300}
)


def test_every_declared_encoding_gives_a_verdict_not_an_exception() -> None:
    for name in ENCODINGS:
        head = f'<?xml version="1.0" encoding="{name}"?>'.encode()
        result = sniff_bytes(head + UBL[UBL.index(b"<Invoice") :])
        assert isinstance(result, SniffResult), name
    latin = UBL.replace(b'"UTF-8"', b'"windows-1252"').replace(b"Entite", b"Entit\xe9")
    assert sniff_bytes(latin).format is F.UBL_INVOICE
    result = sniff_bytes(UBL.replace(b'"UTF-8"', b'"shift_jis"'))
    assert result.format is None
    assert "unsupported encoding" in result.detail


def test_deep_nesting_and_huge_names_stay_bounded() -> None:
    deep = b"<r>" + b"<a>" * 200_000 + b"</a>" * 200_000 + b"</r>"
    assert sniff_bytes(deep).format is None
    long_root = b"<" + b"R" * 500_000 + b"/>"
    result = sniff_bytes(long_root)
    assert len(result.detail) < 400


def test_zip_bomb_embedded_file_is_capped() -> None:
    bomb = embedded_bomb_pdf(zeros_flate(256))  # 256 MiB of zeros in ~250 KB
    tracemalloc.start()
    started = time.perf_counter()
    result = sniff_bytes(bomb)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.format is None
    assert "factur-x.xml" in result.detail
    assert "not CII" in result.detail
    assert peak < 8 << 20
    assert elapsed < 3


def test_zip_bomb_after_a_valid_cii_head_still_reads_the_head() -> None:
    bomb = embedded_bomb_pdf(zeros_flate(64, prefix=CII[:-40]))
    result = sniff_bytes(bomb)
    assert result.format is PayloadFormat.FACTURX
    assert "full CII" in result.detail


def test_object_stream_bombs_exhaust_the_budget_not_the_memory() -> None:
    bomb = zeros_flate(16)
    objects = {
        n: _stream(b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", bomb) for n in range(20, 40)
    }
    pdf = _assemble(objects)
    tracemalloc.start()
    result = sniff_bytes(pdf)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.format is None
    assert result.detail.startswith("PDF without embedded CII")
    assert "inflate budget is spent" in result.detail
    assert peak < 8 << 20


def test_corrupt_flate_and_unknown_filters_are_reported() -> None:
    corrupt = embedded_bomb_pdf(b"\x78\x9c not deflate at all")
    assert "corrupt" in sniff_bytes(corrupt).detail
    hexed = facturx_pdf(CII.hex().encode(), compress=False, stream_filter=b"/ASCIIHexDecode")
    result = sniff_bytes(hexed)
    assert result.format is None
    assert "ASCIIHexDecode" in result.detail


def test_keyword_stream_inside_strings_does_not_derail_the_scan() -> None:
    info = b"<< /Producer (Mainstream stream\n writer) /Title (upstream) >>"
    pdf = facturx_pdf(CII, prelude=[info])
    assert sniff_bytes(pdf).format is PayloadFormat.FACTURX


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = sniff_bytes(data)
    assert isinstance(result, SniffResult)
    assert isinstance(result.detail, str)
    assert result.detail


PREFIXES = [
    b"%PDF-1.7\n",
    b"<?xml version='1.0'?>",
    b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'>",
    b"<rsm:CrossIndustryInvoice xmlns:rsm='urn:un:unece:uncefact:data:standard:"
    b"CrossIndustryInvoice:100'><rsm:ExchangedDocumentContext>",
    b"%PDF-1.4\n1 0 obj << /Type /EmbeddedFile /Filter /FlateDecode >>\nstream\r\nx\x9c",
    b"%PDF-1.4\n9 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\n",
    b"\xef\xbb\xbf<",
    b"\xff\xfe<\x00",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PREFIXES), st.binary(max_size=2048))
def test_random_tails_after_plausible_heads_never_raise(prefix: bytes, tail: bytes) -> None:
    assert isinstance(sniff_bytes(prefix + tail), SniffResult)


# --- chunking never changes the verdict ------------------------------------------------------

SAMPLES = [
    UBL,
    CII,
    payload("ubl-invoice-min.xml"),
    payload("cii-16b-minimum.xml"),
    payload("integration-report.xml"),
    payload("billion-laughs.xml"),
    facturx_pdf(CII),
    facturx_pdf(CII, compress=False, indirect_length=True),
    facturx_pdf(CII, hide_in_objstm=True),
    facturx_pdf(CII, name_form="utf16"),
    facturx_pdf(None),
    facturx_pdf(UBL),
    facturx_pdf(CII, prelude=[b"<< /Names [(zugferd-invoice.xml) 4 0 R] >>"]),
    facturx_pdf(CII, name="invoice.xml"),
]


def feed_in_pieces(data: bytes, cuts: Sequence[int]) -> SniffResult:
    sniffer = Sniffer()
    points = sorted({min(c, len(data)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        sniffer.feed(data[start:point])
        start = point
    return sniffer.result()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.integers(min_value=0, max_value=6000), max_size=12),
)
def test_any_chunking_gives_the_same_verdict(data: bytes, cuts: list[int]) -> None:
    assert feed_in_pieces(data, cuts) == sniff_bytes(data)


def test_one_byte_at_a_time_gives_the_same_verdict() -> None:
    for data in SAMPLES:
        sniffer = Sniffer()
        for index in range(len(data)):
            sniffer.feed(data[index : index + 1])
        assert sniffer.result() == sniff_bytes(data)


def test_result_is_stable_and_feeding_after_it_changes_nothing() -> None:
    sniffer = Sniffer()
    sniffer.feed(UBL)
    first = sniffer.result()
    sniffer.feed(b"garbage")
    assert sniffer.result() == first


# --- every format, positive and negative ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "candidates"),
    [
        ("ubl-invoice.xml", F.UBL_INVOICE, {F.UBL_INVOICE, F.UBL_INVOICE_MIN}),
        ("ubl-creditnote.xml", F.UBL_INVOICE, {F.UBL_INVOICE, F.UBL_INVOICE_MIN}),
        ("ubl-invoice-min.xml", F.UBL_INVOICE_MIN, {F.UBL_INVOICE_MIN}),
        ("cii-16b.xml", F.CII_16B, {F.CII_16B, F.CII_16B_MIN}),
        ("cii-16b-minimum.xml", F.CII_16B_MIN, {F.CII_16B_MIN}),
        ("cpp-facture-min.xml", F.CPP_FACTURE_MIN, {F.CPP_FACTURE_MIN}),
        ("cpp-statut.xml", F.CPP_LIFECYCLE, OPAQUE_XML_FORMATS),
        ("integration-report.xml", None, OPAQUE_XML_FORMATS),
    ],
)
def test_fixture_formats(
    name: str, expected: PayloadFormat | None, candidates: frozenset[PayloadFormat]
) -> None:
    result = sniff_file(PAYLOADS / name)
    assert result.format == expected
    assert result.candidates == candidates
    assert sniff_bytes(payload(name)) == result


def test_cii_basicwl_profile_is_min_and_cii_without_lines_is_min() -> None:
    basicwl = CII.replace(b"urn:cen.eu:en16931:2017", b"urn:factur-x.eu:1p0:basicwl")
    assert sniff_bytes(basicwl).format is F.CII_16B_MIN
    start = CII.index(b"<ram:IncludedSupplyChainTradeLineItem>")
    end = CII.index(b"</ram:IncludedSupplyChainTradeLineItem>") + 39
    no_lines = CII[:start] + CII[end:]
    result = sniff_bytes(no_lines)
    assert result.format is F.CII_16B_MIN
    assert "no line item" in result.detail


def test_utf16_and_bom_documents_are_read() -> None:
    text = UBL.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert sniff_bytes(text.encode("utf-16")).format is F.UBL_INVOICE
    assert sniff_bytes(b"\xef\xbb\xbf" + UBL).format is F.UBL_INVOICE


def test_wrong_namespace_is_not_an_invoice() -> None:
    other = UBL.replace(b"xsd:Invoice-2", b"xsd:Order-2")
    result = sniff_bytes(other)
    assert result.format is None
    assert F.UBL_INVOICE not in result.candidates
    cii_14 = CII.replace(b"CrossIndustryInvoice:100", b"CrossIndustryInvoice:12")
    assert sniff_bytes(cii_14).format is None


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"compress": False},
        {"indirect_length": True},
        {"name_form": "hex"},
        {"name_form": "utf16"},
        {"hide_in_objstm": True},
        {"name": "zugferd-invoice.xml"},
        {"name": "xrechnung.xml"},
        {"name": "Factur-X.XML"},
    ],
    ids=lambda v: "-".join(f"{k}={w}" for k, w in v.items()) or "flate",
)
def test_facturx_pdf_is_recognised(variant: dict[str, object]) -> None:
    result = sniff_bytes(facturx_pdf(CII, **variant))  # type: ignore[arg-type]
    assert result.format is PayloadFormat.FACTURX
    assert result.candidates == {PayloadFormat.FACTURX}
    assert "full CII" in result.detail


def test_facturx_minimum_profile_is_still_facturx() -> None:
    result = sniff_bytes(facturx_pdf(payload("cii-16b-minimum.xml")))
    assert result.format is PayloadFormat.FACTURX
    assert "CII Min" in result.detail


def test_pdf_without_embedded_file() -> None:
    result = sniff_bytes(facturx_pdf(None, name="annexe.txt"))
    assert result == SniffResult(None, "PDF without embedded CII")


def test_pdf_naming_factur_x_without_a_stream() -> None:
    result = sniff_bytes(facturx_pdf(None))
    assert result.format is None
    assert "names factur-x.xml" in result.detail


def test_pdf_embedding_cii_under_another_name_is_not_facturx() -> None:
    result = sniff_bytes(facturx_pdf(CII, name="invoice.xml"))
    assert result.format is None
    assert "under none of the names" in result.detail


def test_builder_writes_consistent_cross_references() -> None:
    pdf = facturx_pdf(CII, indirect_length=True, prelude=[b"<< /Producer (Raccord) >>"])
    table = pdf[pdf.rindex(b"\nxref\n") + 1 :].split(b"trailer")[0].splitlines()[2:]
    assert len(table) >= 8
    for number, line in enumerate(table):
        offset, _, kind = line.split()
        if kind == b"n":
            assert pdf[int(offset) :].startswith(b"%d 0 obj" % number)
    start = int(pdf.split(b"startxref\n")[1].split()[0])
    assert pdf[start:].startswith(b"xref")
    hidden = facturx_pdf(CII, hide_in_objstm=True)
    start = int(hidden.split(b"startxref\n")[1].split()[0])
    assert hidden[start:].startswith(b"10 0 obj\n<< /Type /XRef")


def test_pdf_embedding_ubl_is_not_facturx() -> None:
    result = sniff_bytes(facturx_pdf(UBL))
    assert result.format is None
    assert "not CII" in result.detail


def test_pdf_header_after_junk_is_still_a_pdf() -> None:
    assert sniff_bytes(b"junk\r\n" + facturx_pdf(CII)).format is PayloadFormat.FACTURX


# --- streaming, bounded memory ---------------------------------------------------------------

_MB = 1 << 20


def _write_big_ubl(path: Path, attachment_mb: int) -> None:
    head, _, tail = UBL.partition(b"<cac:AccountingSupplierParty>")
    with path.open("wb") as out:
        out.write(head + b"<cac:AdditionalDocumentReference><cbc:ID>big.pdf</cbc:ID>")
        out.write(b"<cac:Attachment><cbc:EmbeddedDocumentBinaryObject mimeCode='application/pdf'>")
        block = b"QUJD" * (_MB // 4)
        for _ in range(attachment_mb):
            out.write(block)
        out.write(b"</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>")
        out.write(b"</cac:AdditionalDocumentReference><cac:AccountingSupplierParty>" + tail)


def _measure(path: Path) -> tuple[SniffResult, int, float]:
    tracemalloc.start()
    started = time.perf_counter()
    result = sniff_file(path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, peak, elapsed


def test_50_mb_ubl_is_sniffed_from_its_head(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    _write_big_ubl(path, 50)
    assert path.stat().st_size > 50 * _MB
    result, peak, elapsed = _measure(path)
    assert result.format is F.UBL_INVOICE
    assert result.candidates == {F.UBL_INVOICE, F.UBL_INVOICE_MIN}
    assert "no invoice line in the first 1048576 bytes" in result.detail
    assert peak < 8 * _MB
    assert elapsed < 2


def test_50_mb_facturx_is_scanned_with_bounded_memory(tmp_path: Path) -> None:
    small = [b"<< /Type /Annot /Contents (note %d) /Rect [0 0 1 1] >>" % i for i in range(60_000)]
    image = _stream(b"/Type /XObject /Subtype /Image /Width 1 /Height 1", bytes(45 * _MB))
    noise = _stream(b"/Filter /FlateDecode", zeros_flate(8))
    path = tmp_path / "big.pdf"
    path.write_bytes(facturx_pdf(CII, prelude=[*small, image, noise]))
    assert path.stat().st_size > 50 * _MB
    result, peak, elapsed = _measure(path)
    assert result.format is PayloadFormat.FACTURX
    assert peak < 8 * _MB
    assert elapsed < 5


# --- format_matches: the router's question -------------------------------------------------


def _code_accepts(code: str, data: bytes) -> bool:
    return format_matches(builtin_catalogue().require(code).format, sniff_bytes(data))


@pytest.mark.parametrize(
    ("code", "data", "accepted"),
    [
        ("FSO1100A", UBL, True),
        ("FSO1100A", CII, False),  # CII sent under the UBL code
        ("FSO1100A", payload("ubl-invoice-min.xml"), False),  # E1 invoices have lines
        ("FSO1100A", facturx_pdf(CII), False),
        ("FSO1106A", CII, True),
        ("FSO1106A", UBL, False),
        ("FSO1106A", payload("cii-16b-minimum.xml"), False),
        ("FSO1110A", payload("ubl-invoice-min.xml"), True),
        ("FSO1110A", UBL, True),  # Min may carry lines: not ruled out
        ("FSO1110A", CII, False),
        ("FSO1113A", payload("cpp-facture-min.xml"), True),
        ("FSO1113A", UBL, False),
        ("FSO1116A", payload("cii-16b-minimum.xml"), True),
        ("FSO1116A", payload("ubl-invoice-min.xml"), False),
        ("FSO1117A", facturx_pdf(CII), True),
        ("FSO1117A", CII, False),  # the bare XML is not the PDF
        ("FSO1117A", facturx_pdf(None), False),
        ("FEN1200A", payload("integration-report.xml"), True),
        ("FEN1200A", UBL, False),
        ("FEN1201A", payload("cpp-statut.xml"), True),
        ("CSO1100A", payload("integration-report.xml"), True),
        ("CSO1100A", payload("billion-laughs.xml"), False),
        ("CSO1100A", b"\x00garbage", False),
    ],
)
def test_format_matches_for_builtin_codes(code: str, data: bytes, accepted: bool) -> None:
    assert _code_accepts(code, data) is accepted


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512), st.sampled_from(list(PayloadFormat)))
def test_any_accepts_everything_and_unrecognised_matches_nothing(
    data: bytes, expected: PayloadFormat
) -> None:
    found = sniff_bytes(data)
    assert format_matches(PayloadFormat.ANY, found)
    nothing = SniffResult(None, "unrecognised")
    assert format_matches(expected, nothing) is (expected is PayloadFormat.ANY)


def test_sniffer_options_are_checked() -> None:
    with pytest.raises(ValueError, match="head_limit"):
        Sniffer(head_limit=10)
    with pytest.raises(ValueError, match="chunk_size"):
        sniff_file(PAYLOADS / "ubl-invoice.xml", chunk_size=0)
