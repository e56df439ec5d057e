"""Pure routing, table-driven over every catalogued code, both directions; hostile cases first."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.config_rules import catalogue_for
from gateway.connections import ConnectionRegistry
from gateway.credentials import ConnectionCredentials, KeyMaterial
from gateway.errors import RoutingError
from gateway.interfaces import InterfaceSpec, PayloadFormat
from gateway.metrics import REGISTRY
from gateway.model import ConnectionStatus, Direction, Environment
from gateway.routing import route
from gateway.sniff import sniff_bytes
from protocols.ports import RefusalKind
from tests.gateway.test_sniff import facturx_pdf
from tests.pki import TestCA, ec_key
from tests.routing.conftest import NOW, make_config, payload, sheet, standard_sheets

F = PayloadFormat
CONFIG = make_config()
CATALOGUE = catalogue_for(CONFIG)
EMISSION = [s for s in CATALOGUE if s.direction is Direction.EMISSION]
RECEPTION = [s for s in CATALOGUE if s.direction is Direction.RECEPTION]
OPAQUE = payload("cpp-statut.xml")
CII = payload("cii-16b.xml")
UBL = payload("ubl-invoice.xml")
MATCHING: dict[PayloadFormat, bytes] = {
    F.UBL_INVOICE: UBL,
    F.UBL_INVOICE_MIN: payload("ubl-invoice-min.xml"),
    F.CII_16B: CII,
    F.CII_16B_MIN: payload("cii-16b-minimum.xml"),
    F.FACTURX: facturx_pdf(CII),
    F.CPP_FACTURE_MIN: payload("cpp-facture-min.xml"),
    F.INVOICE_STATUS: OPAQUE,
    F.ANY: b"\x00\x01 anything at all",
}
WRONG: dict[PayloadFormat, tuple[bytes, str]] = {
    F.UBL_INVOICE: (CII, "CII under a UBL code"),
    F.UBL_INVOICE_MIN: (CII, "CII under a UBL Min code"),
    F.CII_16B: (UBL, "UBL under a CII code"),
    F.CII_16B_MIN: (UBL, "UBL under a CII Min code"),
    F.FACTURX: (facturx_pdf(None), "a PDF without embedded CII under Factur-X"),
    F.CPP_FACTURE_MIN: (UBL, "UBL under a CPP code"),
    F.INVOICE_STATUS: (UBL, "an invoice where a status is expected"),
}


def ids(spec: InterfaceSpec) -> str:
    return spec.code


def routing_count(code: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "raccord_routing_total", {"interface_code": code, "outcome": outcome}
    )
    return value or 0.0


def registry(**kwargs: object) -> ConnectionRegistry:
    return ConnectionRegistry(CONFIG, {}, **kwargs)  # type: ignore[arg-type]


def refusal(
    reg: ConnectionRegistry,
    code: str,
    *,
    direction: Direction = Direction.EMISSION,
    environment: Environment = Environment.QUAL,
    now: dt.datetime = NOW,
    data: bytes | None = None,
    size: int | None = None,
) -> RoutingError:
    with pytest.raises(RoutingError) as info:
        route(
            reg,
            CATALOGUE,
            code=code,
            direction=direction,
            environment=environment,
            now=now,
            sniffed=None if data is None else sniff_bytes(data),
            size=size,
        )
    return info.value


def owner(spec: InterfaceSpec, environment: Environment) -> str | None:
    """The one standard sheet carrying `spec` in `environment`, by construction."""
    for data in standard_sheets():
        carried = data["subscriptions"][spec.direction.value]
        if data.get("environment", "qual") == environment.value and spec.code in carried:
            return str(data["name"])
    return None


# --- hostile first -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["FSO9999A", "../../etc/passwd", "FSO1100A\r\nX-Injected: 1", "", "é" * 10_000, "fso1100a"],
)
def test_unknown_or_malformed_code_is_refused_with_a_bounded_label(code: str) -> None:
    before = routing_count("unknown", "unknown-code")
    error = refusal(registry(), code)
    assert error.kind == RefusalKind.UNKNOWN_CODE
    assert "not in the interface catalogue" in error.reason
    assert len(error.reason) < 250  # a hostile code is echoed escaped and short
    assert error.reason.isprintable()
    assert routing_count("unknown", "unknown-code") == before + 1


def test_a_code_of_the_other_direction_is_not_routed() -> None:
    error = refusal(registry(), "FEN1200A", direction=Direction.EMISSION)
    assert (error.kind, error.reason) == (
        RefusalKind.NOT_SUBSCRIBED,
        "FEN1200A is a reception code",
    )
    error = refusal(registry(), "FSO1100A", direction=Direction.RECEPTION)
    assert error.reason == "FSO1100A is a emission code"


def test_no_subscribed_connection_in_that_environment() -> None:
    error = refusal(registry(), "XGB0002A", environment=Environment.PROD)
    assert error.kind == RefusalKind.NOT_SUBSCRIBED
    assert error.reason == "no connection subscribed to XGB0002A in prod"


@pytest.mark.parametrize(
    "status", [s for s in ConnectionStatus if s is not ConnectionStatus.ACTIF], ids=str
)
def test_a_connection_that_is_not_actif_refuses_traffic(status: ConnectionStatus) -> None:
    reg = ConnectionRegistry(CONFIG, {"b2g-qual": status})
    error = refusal(reg, "FSO1100A")
    assert error.kind == RefusalKind.CONNECTION_CLOSED
    assert f"status is {status.value}; traffic needs actif" in error.reason
    assert "b2g-qual" in error.reason


@pytest.mark.parametrize("day", [dt.date(2025, 12, 31), dt.date(2029, 1, 1)])
def test_outside_the_validity_period_refuses_traffic(day: dt.date) -> None:
    moment = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    error = refusal(registry(), "FSO1106A", now=moment)
    assert error.kind == RefusalKind.CONNECTION_CLOSED
    assert "outside the validity period 2026-01-01..2028-12-31" in error.reason


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def test_an_expired_certificate_refuses_traffic_on_its_connection_only(ca: TestCA) -> None:
    expired = ca.issue(
        "b2g-qual",
        key=ec_key(),
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - dt.timedelta(days=1),
    )
    creds = ConnectionCredentials(
        connection="b2g-qual", own={"client": KeyMaterial((expired.cert,), expired.key, None)}
    )
    reg = registry(credentials={"b2g-qual": creds})
    error = refusal(reg, "FSO1100A")
    assert error.kind == RefusalKind.CONNECTION_CLOSED
    assert "client certificate expired on" in error.reason
    view, _ = route(
        reg,
        CATALOGUE,
        code="FSO1100A",
        direction=Direction.EMISSION,
        environment=Environment.PROD,
        now=NOW,
    )
    assert view.config.name == "b2g-prod"


def test_over_the_size_limit_of_the_connection() -> None:
    small = make_config([sheet("b2g-qual", max_size=100)])
    reg = ConnectionRegistry(small, {})
    with pytest.raises(RoutingError) as info:
        route(
            reg,
            catalogue_for(small),
            code="FSO1100A",
            direction=Direction.EMISSION,
            environment=Environment.QUAL,
            now=NOW,
            size=101,
        )
    assert info.value.kind == RefusalKind.TOO_LARGE
    assert info.value.reason == "101 bytes is over the 100-byte limit for FSO1100A"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (payload("billion-laughs.xml"), "DOCTYPE refused"),
        (payload("malformed.xml"), "not well-formed XML"),
        (b"", "empty payload"),
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP archive"),
        (CII, "CII 16B"),
    ],
    ids=["billion-laughs", "malformed", "empty", "zip", "cii"],
)
def test_hostile_payloads_under_a_ubl_code_are_refused_with_the_sniffer_reason(
    data: bytes, why: str
) -> None:
    error = refusal(registry(), "FSO1100A", data=data)
    assert error.kind == RefusalKind.WRONG_FORMAT
    assert error.reason.startswith("payload is not ubl-invoice: ")
    assert why in error.reason


# --- every code, both directions -----------------------------------------------------------


@pytest.mark.parametrize("spec", EMISSION, ids=ids)
def test_every_emission_code_routes_to_its_one_connection(spec: InterfaceSpec) -> None:
    reg = registry()
    for environment in Environment:
        expected = owner(spec, environment)
        if expected is None:
            error = refusal(reg, spec.code, environment=environment)
            assert error.kind == RefusalKind.NOT_SUBSCRIBED
            continue
        view, found = route(
            reg,
            CATALOGUE,
            code=spec.code,
            direction=Direction.EMISSION,
            environment=environment,
            now=NOW,
            sniffed=sniff_bytes(MATCHING[spec.format]),
        )
        assert (view.config.name, found) == (expected, spec)
    error = refusal(reg, spec.code, direction=Direction.RECEPTION)
    assert error.reason == f"{spec.code} is a emission code"


@pytest.mark.parametrize("spec", [s for s in EMISSION if s.format in WRONG], ids=ids)
def test_every_emission_code_refuses_the_wrong_format(spec: InterfaceSpec) -> None:
    data, why = WRONG[spec.format]
    environment = Environment.QUAL
    error = refusal(registry(), spec.code, environment=environment, data=data)
    assert error.kind == RefusalKind.WRONG_FORMAT, why
    assert error.reason.startswith(f"payload is not {spec.format.value}: ")


@pytest.mark.parametrize("spec", RECEPTION, ids=ids)
def test_every_reception_code_routes_from_its_one_connection(spec: InterfaceSpec) -> None:
    reg = registry()
    for environment in Environment:
        expected = owner(spec, environment)
        if expected is None:
            continue
        view, _ = route(
            reg,
            CATALOGUE,
            code=spec.code,
            direction=Direction.RECEPTION,
            environment=environment,
            now=NOW,
        )
        assert view.config.name == expected
    error = refusal(reg, spec.code, direction=Direction.EMISSION)
    assert error.reason == f"{spec.code} is a reception code"


def test_the_table_covers_every_code_of_the_catalogue() -> None:
    assert {s.code for s in EMISSION} | {s.code for s in RECEPTION} == set(CATALOGUE.codes())
    assert all(owner(s, Environment.QUAL) for s in CATALOGUE)
