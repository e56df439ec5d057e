"""The feeder's samples are what their codes promise, and the return flows read as intended."""

from __future__ import annotations

import datetime as dt
import random
import zlib
from pathlib import Path

import pytest

from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.correlation import INTEGRATED as GW_INTEGRATED
from gateway.correlation import REJECTED as GW_REJECTED
from gateway.correlation import integration_result
from gateway.correlation_xml import facts_from_bytes
from gateway.interfaces import PayloadFormat, builtin_catalogue
from gateway.simulator import flows
from gateway.simulator.samples import cii_invoice, facturx_invoice, samples, ubl_invoice
from gateway.sniff import format_matches, sniff_bytes, sniff_file
from tests.sandbox import SANDBOX

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (ubl_invoice("F-1", issued=DAY), PayloadFormat.UBL_INVOICE),
        (cii_invoice("F-2", issued=DAY), PayloadFormat.CII_16B),
        (facturx_invoice("F-3", issued=DAY), PayloadFormat.FACTURX),
    ],
)
def test_each_sample_sniffs_as_its_format(data: bytes, expected: PayloadFormat) -> None:
    found = sniff_bytes(data)
    assert found.format is expected, found.detail


def test_samples_match_the_catalogue_format_of_their_code() -> None:
    catalogue = builtin_catalogue()
    made = samples(prefix="QUAL-1", issued=DAY)
    assert [s.code for s in made] == ["FSO1100A", "FSO1106A", "FSO1117A"]
    for sample in made:
        spec = catalogue.require(sample.code)
        assert format_matches(spec.format, sniff_bytes(sample.data)), sample.code
        assert sample.file_name.startswith(sample.invoice)


def test_sample_sniffing_does_not_depend_on_chunking(tmp_path: Path) -> None:
    for sample in samples(prefix="C", issued=DAY):
        path = tmp_path / sample.file_name
        path.write_bytes(sample.data)
        assert sniff_file(path, chunk_size=7).format == sniff_bytes(sample.data).format


def test_xml_samples_carry_their_invoice_number() -> None:
    assert facts_from_bytes(ubl_invoice("UBL-42", issued=DAY)).invoices == ("UBL-42",)
    assert facts_from_bytes(cii_invoice("CII-42", issued=DAY)).invoices == ("CII-42",)


def test_facturx_embeds_the_cii_as_a_flate_stream() -> None:
    pdf = facturx_invoice("FX-1", issued=DAY)
    assert pdf.startswith(b"%PDF-1.7")
    assert b"/EmbeddedFile" in pdf
    assert b"(factur-x.xml)" in pdf
    start = pdf.index(b"stream\n", pdf.index(b"/Type /EmbeddedFile")) + len(b"stream\n")
    inflated = zlib.decompressobj().decompress(pdf[start:])
    assert inflated == cii_invoice("FX-1", issued=DAY)
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref\n")


def test_hostile_invoice_number_is_escaped_not_injected() -> None:
    data = ubl_invoice("<x>&</cbc:ID>", issued=DAY)
    assert facts_from_bytes(data).invoices == ("<x>&</cbc:ID>",)
    assert sniff_bytes(data).format is PayloadFormat.UBL_INVOICE


def test_integration_report_reads_as_a_flow_level_result() -> None:
    name = "FSO1100A_01M8DREM9JZJGWX475QMFRXYG5.xml"
    for result, reason, expected in (
        (flows.INTEGRATED, None, GW_INTEGRATED),
        (flows.REJECTED, "XML mal formé", GW_REJECTED),
    ):
        report = flows.integration_report(
            deposited_name=name, flow_id="SIM1", result=result, reason=reason, now=NOW
        )
        facts = facts_from_bytes(report)
        assert facts.problem is None
        assert facts.message_ids == ("01M8DREM9JZJGWX475QMFRXYG5",)
        [record] = facts.records
        assert record.invoice is None
        assert record.reason == reason
        assert integration_result(record.status) == expected


def test_lifecycle_flow_names_each_invoice_with_status_and_reason() -> None:
    steps = [
        ("A-1", flows.Lifecycle("MISE_A_DISPOSITION")),
        ("A-2", flows.Lifecycle("REJETEE", "SIRET inconnu")),
        (None, flows.Lifecycle("DEPOSEE")),
    ]
    data = flows.lifecycle_flow(deposited_name="FSO1117A_01M8DREMA7A56EXY1N5R6NF86R.pdf",
                                statuses=steps, now=NOW)  # fmt: skip
    facts = facts_from_bytes(data)
    assert facts.message_ids == ("01M8DREMA7A56EXY1N5R6NF86R",)
    got = [(r.invoice, r.status, r.reason, r.at) for r in facts.records]
    assert got == [
        ("A-1", "MISE_A_DISPOSITION", None, "2026-11-27T09:30:00Z"),
        ("A-2", "REJETEE", "SIRET inconnu", "2026-11-27T09:30:00Z"),
        (None, "DEPOSEE", None, "2026-11-27T09:30:00Z"),
    ]
    assert sniff_bytes(data).format is None  # not an invoice: a lifecycle candidate
    assert PayloadFormat.CPRO_LIFECYCLE in sniff_bytes(data).candidates


def test_lifecycle_plan_follows_the_shares() -> None:
    draw = random.Random(7)
    plans = [flows.plan_lifecycle(draw, reject_share=0.3, suspend_share=0.2) for _ in range(400)]
    ends = [plan[-1].status for plan in plans]
    assert 0.2 < ends.count("REJETEE") / 400 < 0.4
    assert 0.1 < ends.count("SUSPENDUE") / 400 < 0.3
    assert all(plan[0].status == "DEPOSEE" for plan in plans)
    assert all(p[-1].reason for p in plans if p[-1].status in {"REJETEE", "SUSPENDUE"})
    happy = [p for p in plans if p[-1].status == "MISE_EN_PAIEMENT"]
    assert happy
    assert all([s.status for s in p] == list(flows.HAPPY_PATH) for p in happy)
    none = [flows.plan_lifecycle(draw, reject_share=0, suspend_share=0) for _ in range(50)]
    assert all(p[-1].status == "MISE_EN_PAIEMENT" for p in none)


def test_sandbox_catalogue_knows_the_g2b_placeholders() -> None:
    config = load(SANDBOX, check_files=False, env={"RACCORD_ADMIN_PORT": "0"})
    catalogue = catalogue_for(config)
    assert {"XGB0001A", "XGB0002A", "XGB0003A"} <= {spec.code for spec in catalogue}
