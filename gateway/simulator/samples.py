"""Sample invoices the feeder drops: UBL, CII 16B and Factur-X, made here, never copied.

They are small but complete enough that `gateway.sniff` recognises each as its format (UBL
Invoice with lines -> FSO1100A, CII 16B with lines -> FSO1106A, a PDF embedding a Flate-compressed
`factur-x.xml` -> FSO1117A) and that `gateway.correlation_xml` reads their invoice numbers.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = ["Sample", "cii_invoice", "facturx_invoice", "samples", "ubl_invoice"]

_SELLER_SIRET = "98765432400019"
_BUYER_SIRET = "11000201100044"


@dataclass(frozen=True, slots=True)
class Sample:
    """One file to drop: its interface code, file name, invoice number and bytes."""

    code: str
    file_name: str
    invoice: str
    data: bytes


def ubl_invoice(number: str, *, issued: dt.date, amount: str = "120.00") -> bytes:
    """A UBL 2.1 Invoice with one line (EN 16931 requires lines: a full E1 invoice)."""
    n = escape(number)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
 xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>
  <cbc:ID>{n}</cbc:ID>
  <cbc:IssueDate>{issued.isoformat()}</cbc:IssueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party><cac:PartyLegalEntity>
    <cbc:RegistrationName>Fournisseur Exemple</cbc:RegistrationName>
    <cbc:CompanyID schemeID="0009">{_SELLER_SIRET}</cbc:CompanyID>
  </cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party><cac:PartyLegalEntity>
    <cbc:RegistrationName>Service public exemple</cbc:RegistrationName>
    <cbc:CompanyID schemeID="0009">{_BUYER_SIRET}</cbc:CompanyID>
  </cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty>
  <cac:LegalMonetaryTotal>
    <cbc:PayableAmount currencyID="EUR">{amount}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">{amount}</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Prestation</cbc:Name></cac:Item>
  </cac:InvoiceLine>
</Invoice>
""".encode()


def cii_invoice(
    number: str,
    *,
    issued: dt.date,
    amount: str = "240.00",
    guideline: str = "urn:cen.eu:en16931:2017",
) -> bytes:
    """A UN/CEFACT CII 16B invoice with one line item (EN 16931 profile)."""
    n = escape(number)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice
 xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
 xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
 xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter>
      <ram:ID>{escape(guideline)}</ram:ID>
    </ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>{n}</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">{issued.strftime("%Y%m%d")}</udt:DateTimeString>
    </ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:IncludedSupplyChainTradeLineItem>
      <ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID></ram:AssociatedDocumentLineDocument>
      <ram:SpecifiedTradeProduct><ram:Name>Prestation</ram:Name></ram:SpecifiedTradeProduct>
    </ram:IncludedSupplyChainTradeLineItem>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:SellerTradeParty><ram:Name>Fournisseur Exemple</ram:Name></ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Service public exemple</ram:Name></ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:DuePayableAmount>{amount}</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
""".encode()


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF from numbered object bodies (1-based, object 1 the catalog) with a correct xref."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def facturx_invoice(number: str, *, issued: dt.date) -> bytes:
    """A one-page PDF embedding the CII as `factur-x.xml` (Flate stream, /AF relationship)."""
    xml = cii_invoice(number, issued=issued)
    packed = zlib.compress(xml, 6)
    text = b"BT /F1 12 Tf 72 760 Td (Facture %s) Tj ET" % number.encode("ascii", "replace")
    stamp = issued.strftime("D:%Y%m%d000000Z").encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> /AF [6 0 R] >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 8 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Names [(factur-x.xml) 6 0 R] >>",
        b"<< /Type /Filespec /F (factur-x.xml) /UF (factur-x.xml) /AFRelationship /Data"
        b" /EF << /F 7 0 R /UF 7 0 R >> >>",
        b"<< /Type /EmbeddedFile /Subtype /text#2Fxml /Filter /FlateDecode /Length %d"
        b" /Params << /Size %d /ModDate (%s) >> >>\nstream\n%s\nendstream"
        % (len(packed), len(xml), stamp, packed),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf(objects)


def samples(*, prefix: str, issued: dt.date) -> list[Sample]:
    """One invoice of each format, numbered `<prefix>-<n>`."""
    made = [
        ("FSO1100A", "xml", ubl_invoice),
        ("FSO1106A", "xml", cii_invoice),
        ("FSO1117A", "pdf", facturx_invoice),
    ]
    result = []
    for index, (code, ext, make) in enumerate(made, start=1):
        number = f"{prefix}-{index:03d}"
        result.append(Sample(code, f"{number}.{ext}", number, make(number, issued=issued)))
    return result
