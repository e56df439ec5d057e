"""Return flows linked to what we emitted: hostile XML first, then every handle, both circuits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.correlation import (
    CorrelationService,
    Correlator,
    integration_result,
    normalise_status,
    status_label,
)
from gateway.correlation_xml import MAX_DEPTH, facts_from_bytes, facts_from_chunks
from gateway.metrics import REGISTRY
from gateway.model import Environment, MessageState
from gateway.store import Message, RetryPolicy
from protocols.ports import Incoming
from tests.gateway.test_sniff import facturx_pdf
from tests.routing.conftest import World, payload

UBL = payload("ubl-invoice.xml")


def ubl(number: str) -> bytes:
    return UBL.replace(b"RACCORD-2026-0001", number.encode())


def lifecycle(*items: tuple[str, str, str | None]) -> bytes:
    rows = "".join(
        f"<CPPFactureStatutUnitaire><NumeroFacture>{n}</NumeroFacture><Statut>{s}</Statut>"
        + (f"<Motif>{r}</Motif>" if r else "")
        + "<Horodatage>2026-09-02T10:00:00+02:00</Horodatage></CPPFactureStatutUnitaire>"
        for n, s, r in items
    )
    return (
        f"<CPPStatutPivot><CPPFactureStatuts>{rows}</CPPFactureStatuts></CPPStatutPivot>".encode()
    )


def report(etat: str, *, names: str = "", motif: str = "", invoice: str = "") -> bytes:
    facture = f"<Facture><Numero>{invoice}</Numero><Statut>DEPOSEE</Statut></Facture>"
    return (
        f"<CompteRenduIntegration><Flux><NomFichier>{names}</NomFichier>"
        f"<Etat>{etat}</Etat><Motif>{motif}</Motif></Flux>"
        f"{facture if invoice else ''}</CompteRenduIntegration>"
    ).encode()


async def emit(world: World, data: bytes, code: str = "FSO1100A", env: str = "qual") -> Message:
    accepted = await world.port.accept(
        data,
        Incoming(
            protocol="api",
            direction="emission",
            source=f"api:{env}",
            interface_code=code,
            environment=env,
        ),
    )
    return await world.store.get(accepted.message_id)


async def receive(
    world: World, data: bytes, code: str, connection: str = "b2g-qual", name: str | None = None
) -> Message:
    accepted = await world.port.accept(
        data,
        Incoming(
            protocol="sftp",
            direction="reception",
            source=connection,
            interface_code=code,
            connection=connection,
            file_name=name,
        ),
    )
    return await world.store.get(accepted.message_id)


async def correlate(world: World, *messages: Message) -> None:
    correlator = Correlator(store=world.store, catalogue=world.catalogue, registry=world.registry)
    for message in messages:
        assert await correlator.process(await world.store.get(message.id))


async def kinds(world: World, message: Message) -> list[str]:
    return [e.kind for e in await world.store.events(message.id)]


async def details(world: World, message: Message, kind: str) -> list[dict[str, object]]:
    return [dict(e.detail) for e in await world.store.events(message.id) if e.kind == kind]


# --- hostile XML first ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (payload("billion-laughs.xml"), "DOCTYPE refused"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<r><Statut>&x;</Statut></r>",
            "DOCTYPE refused",
        ),
        (b"<r>" * (MAX_DEPTH + 1), "nested deeper"),
        (b"\x00\xff garbage", "not well-formed"),
        (facturx_pdf(payload("cii-16b.xml")), "a PDF"),
        (b'<?xml version="1.0" encoding="x-no-such"?><r/>', "encoding"),
    ],
    ids=["billion-laughs", "xxe", "deep", "garbage", "pdf", "encoding"],
)
def test_hostile_documents_yield_a_problem_never_an_exception(data: bytes, problem: str) -> None:
    facts = facts_from_bytes(data)
    assert problem in (facts.problem or "")
    assert facts.records == ()


def test_a_huge_document_is_read_only_up_to_the_limit() -> None:
    item = b"<Facture><Numero>N</Numero><Statut>DEPOSEE</Statut></Facture>"

    def chunks() -> Iterator[bytes]:
        yield b"<Statuts>"
        while True:  # endless: only the limit stops it
            yield item * 1000

    started = time.perf_counter()
    facts = facts_from_chunks(chunks(), limit=4 << 20)
    assert "only the first 4194304 bytes" in (facts.problem or "")
    assert len(facts.records) == 5000  # capped
    assert time.perf_counter() - started < 5


def test_peer_text_is_cleaned_before_it_reaches_the_store() -> None:
    data = (
        b"<r><Facture><Numero>\tA\x0bB  C\n</Numero><Statut>"
        + b"X" * 500
        + b"</Statut></Facture></r>"
    )
    facts = facts_from_bytes(data.replace(b"\x0b", b" "))
    [record] = facts.records
    assert record.invoice == "A B C"
    assert record.status == "X" * 256


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    facts_from_bytes(data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_text_inside_a_status_never_raises(text: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "surrogatepass")
    facts = facts_from_bytes(b"<r><Statut>" + escaped + b"</Statut></r>")
    for record in facts.records:
        assert record.status.isprintable()


def test_the_reader_understands_the_documented_shapes() -> None:
    facts = facts_from_bytes(payload("integration-report.xml"))
    assert [(r.invoice, r.status) for r in facts.records] == [
        (None, "IN_INTEGRE"),
        ("RACCORD-2026-0001", "DEPOSEE"),
    ]
    nested = facts_from_bytes(
        b"<Flux><Facture><IdFacture>F9</IdFacture><Statut><Code>REJETEE</Code>"
        b"<Motif>SIRET inconnu</Motif></Statut></Facture>"
        b'<Trace ref="FSO1100A_01M8DP7465ZDT6VG6ATPP8NF36.xml"/></Flux>'
    )
    assert [(r.invoice, r.status, r.reason) for r in nested.records] == [
        ("F9", "REJETEE", "SIRET inconnu")
    ]
    assert nested.message_ids == ("01M8DP7465ZDT6VG6ATPP8NF36",)
    for name, number in [
        ("ubl-invoice.xml", "RACCORD-2026-0001"),
        ("cii-16b.xml", "RACCORD-2026-0003"),
    ]:
        invoice = facts_from_bytes(payload(name))
        assert (invoice.is_invoice, invoice.invoices) == (True, (number,))


def test_statuses_are_normalised_and_labels_stay_bounded() -> None:
    assert normalise_status(" Mise à disposition ") == "MISE_A_DISPOSITION"
    assert status_label("MISE_A_DISPOSITION") == "MISE_A_DISPOSITION"
    assert status_label("DROP TABLE") == "other"
    assert status_label("213") == "213"
    assert integration_result("IN_REJETE") == "rejected"
    assert integration_result("Flux intégré") == "integrated"
    assert integration_result("EN_ATTENTE") == "other"


# --- linking -------------------------------------------------------------------------------


def lifecycle_count(code: str, status: str) -> float:
    labels = {"interface_code": code, "status": status}
    return REGISTRY.get_sample_value("raccord_lifecycle_statuses_total", labels) or 0.0


async def test_an_integration_report_naming_our_file_reaches_the_emitted_message(
    world: World,
) -> None:
    sent = await emit(world, ubl("F-100"))
    before = lifecycle_count("CSO1100A", "rejected")
    answer = await receive(
        world, report("IN_REJETE", names=sent.file_name or "", motif="Schema KO"), "CSO1100A"
    )
    await correlate(world, sent, answer)
    assert await kinds(world, sent) == [
        "accepted", "routed", "indexed", "correlated", "integration_report"
    ]  # fmt: skip
    [verdict] = await details(world, sent, "integration_report")
    assert (verdict["status"], verdict["reason"]) == ("rejected", "Schema KO")
    assert verdict["message_id"] == answer.id
    [link] = await details(world, answer, "correlated")
    assert link["related"] == {sent.id: "file-name"}
    assert lifecycle_count("CSO1100A", "rejected") == before + 1


async def test_a_report_whose_own_file_name_carries_our_id_is_linked(world: World) -> None:
    sent = await emit(world, ubl("F-101"))
    answer = await receive(world, report("IN_INTEGRE"), "CSO1100A", name=f"CR_{sent.file_name}")
    await correlate(world, sent, answer)
    [verdict] = await details(world, sent, "integration_report")
    assert verdict["status"] == "integrated"


async def test_a_report_without_file_names_reaches_the_invoices_it_lists(world: World) -> None:
    sent = await emit(world, UBL)  # invoice RACCORD-2026-0001, as the report fixture lists
    answer = await receive(world, payload("integration-report.xml"), "CSO1100A")
    await correlate(world, sent, answer)
    assert await kinds(world, sent) == [
        "accepted", "routed", "indexed", "correlated", "integration_report", "lifecycle_status"
    ]  # fmt: skip
    [verdict] = await details(world, sent, "integration_report")
    assert verdict["status"] == "integrated"
    [status] = await details(world, sent, "lifecycle_status")
    assert (status["status"], status["invoice"]) == ("DEPOSEE", "RACCORD-2026-0001")


async def test_lifecycle_statuses_find_each_invoice_by_number(world: World) -> None:
    first, second = await emit(world, ubl("F-1")), await emit(world, ubl("F-2"))
    elsewhere = await emit(world, ubl("F-1"), env="prod")
    flow = lifecycle(
        ("F-1", "MISE_A_DISPOSITION", None),
        ("F-2", "REJETEE", "Montant incohérent"),
        ("F-404", "DEPOSEE", None),
    )
    answer = await receive(world, flow, "FEN1200A")
    await correlate(world, first, second, elsewhere, answer)
    [one] = await details(world, first, "lifecycle_status")
    assert (one["status"], one["invoice"]) == ("MISE_A_DISPOSITION", "F-1")
    [two] = await details(world, second, "lifecycle_status")
    assert (two["status"], two["reason"]) == ("REJETEE", "Montant incohérent")
    assert await details(world, elsewhere, "lifecycle_status") == []
    [link] = await details(world, answer, "correlated")
    assert link["related"] == {first.id: "invoice", second.id: "invoice"}
    assert link["unmatched_invoices"] == ["F-404"]


async def test_a_resubmitted_invoice_gets_the_status_not_the_refused_attempt(
    world: World,
) -> None:
    sent = await emit(world, ubl("F-500"))
    [claimed] = await world.store.claim_due(connection="b2g-qual")
    refused = await world.store.record_failure(
        claimed.id, reason="negative MDN", retryable=False, policy=RetryPolicy()
    )
    again = await emit(world, ubl("F-500").replace(b"2026-09-01", b"2026-09-03"))
    answer = await receive(world, lifecycle(("F-500", "DEPOSEE", None)), "FEN1200A")
    await correlate(world, sent, again, answer)
    assert refused.state is MessageState.REJECTED
    assert await details(world, sent, "lifecycle_status") == []
    assert [d["status"] for d in await details(world, again, "lifecycle_status")] == ["DEPOSEE"]


async def test_the_id_our_transfer_was_given_links_the_report(world: World) -> None:
    sent = await emit(world, ubl("F-200"))
    [claimed] = await world.store.claim_due(connection="b2g-qual")
    await world.store.record_sent(claimed.id, peer_message_id="<t-42@raccord>", awaiting_ack=True)
    flow = b"<CR><IdFlux>&lt;t-42@raccord&gt;</IdFlux><Etat>IN_INTEGRE</Etat></CR>"
    answer = await receive(world, flow, "CSO1100A")
    await correlate(world, sent, answer)
    [link] = await details(world, answer, "correlated")
    assert link["related"] == {sent.id: "transfer-id"}


async def test_nothing_to_link_is_recorded_as_uncorrelated_once(world: World) -> None:
    answer = await receive(world, lifecycle(("F-9", "DEPOSEE", None)), "FEN1200A")
    await correlate(world, answer)
    correlator = Correlator(store=world.store, catalogue=world.catalogue, registry=world.registry)
    assert not await correlator.process(await world.store.get(answer.id))
    [event] = await details(world, answer, "uncorrelated")
    assert event["unmatched_invoices"] == ["F-9"]
    assert await kinds(world, answer) == ["accepted", "uncorrelated"]


async def test_g2b_invoice_and_the_status_the_back_office_sends_back(world: World) -> None:
    invoice = await receive(world, ubl("PUB-77"), "XGB0001A", connection="g2b-qual")
    status = await emit(
        world, lifecycle(("PUB-77", "SERVICE_FAIT", None)), code="XGB0002A", env="qual"
    )
    await correlate(world, invoice, status)
    assert await world.store.references(invoice.id) == {"invoice": ["PUB-77"]}
    [back] = await details(world, invoice, "lifecycle_status")
    assert (back["status"], back["direction"], back["message_id"]) == (
        "SERVICE_FAIT",
        "emission",
        status.id,
    )
    assert status.connection == "g2b-qual"


async def test_the_service_works_through_the_backlog_and_survives_a_lost_payload(
    world: World,
) -> None:
    sent = await emit(world, ubl("F-300"))
    broken = await receive(world, lifecycle(("F-300", "DEPOSEE", None)), "FEN1200A")
    world.store.payload_path(broken).unlink()
    answer = await receive(world, lifecycle(("F-300", "MANDATEE", None)), "FEN1200A")
    service = CorrelationService(
        store=world.store,
        catalogue=world.catalogue,
        registry=world.registry,
        wakeups=world.wakeups,
        interval=30,
    )
    await service.start()
    try:
        for _ in range(100):
            if not await world.store.uncorrelated():
                break
            await asyncio.sleep(0.02)
        assert await world.store.uncorrelated() == []
    finally:
        await service.stop(timeout=5)
    assert [d["status"] for d in await details(world, sent, "lifecycle_status")] == ["MANDATEE"]
    [lost] = await details(world, broken, "uncorrelated")
    assert "payload unreadable" in str(lost["problem"])
    assert answer.environment is Environment.QUAL
