"""The interface-code catalogue: built-in content, hostile declarations, immutability rules."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import RoutingError
from gateway.interfaces import (
    CODE_PATTERN,
    Catalogue,
    InterfaceSpec,
    InterfaceSpecError,
    PayloadFormat,
    builtin_catalogue,
    catalogue_from_yaml,
    report_code_for,
    spec_from_mapping,
)
from gateway.model import Circuit, Direction

F = PayloadFormat
B2G, G2B = Circuit.B2G, Circuit.G2B
EMISSION, RECEPTION = Direction.EMISSION, Direction.RECEPTION
GB = 1 << 30

# domain.md §5, line by line: code -> (format, flow type)
EMISSIONS = {
    "FSO1100A": (F.UBL_INVOICE, "E1"),
    "FSO1106A": (F.CII_16B, "E1"),
    "FSO1110A": (F.UBL_INVOICE_MIN, "E2"),
    "FSO1113A": (F.CPP_FACTURE_MIN, "E2"),
    "FSO1116A": (F.CII_16B_MIN, "E2"),
    "FSO1117A": (F.FACTURX, "E2"),
    "FSO1120A": (F.UBL_INVOICE, "E3"),
    "FSO1130A": (F.UBL_INVOICE, "E4"),
    "FSO1150A": (F.UBL_INVOICE, None),
}


FIELDS = [
    "code",
    "description",
    "circuits",
    "direction",
    "format",
    "flow_type",
    "max_size",
    "confirmed",
    "other",
]


def entry(**overrides: object) -> dict[str, object]:
    """A valid operator declaration, as the config loader hands it over (model_dump)."""
    base: dict[str, object] = {
        "code": "GSO2000A",
        "description": "G2B invoice status sent back by the PA",
        "circuits": ["g2b"],
        "direction": "emission",
        "format": "invoice-status",
        "flow_type": None,
        "max_size": None,
    }
    base.update(overrides)
    return base


# --- hostile and invalid declarations ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"code": "fso1100a"}, "code"),
        ({"code": "FSO1100A\n"}, "code"),
        ({"code": "FSO11000A"}, "code"),
        ({"code": "../../etc/passwd"}, "code"),
        ({"code": None}, "code"),
        ({"code": 1100}, "code"),
        ({"circuits": None}, "circuits"),
        ({"circuits": "b2g"}, "circuits"),
        ({"circuits": []}, "circuits"),
        ({"circuits": ["b2g", "b2b"]}, "circuits[1]"),
        ({"direction": "sideways"}, "direction"),
        ({"format": "pdf"}, "format"),
        ({"format": ["ubl-invoice"]}, "format"),
        ({"flow_type": "E9"}, "flow_type"),
        ({"flow_type": "E1", "direction": "reception"}, "flow_type"),
        ({"max_size": -1}, "max_size"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_size": "1GB"}, "max_size"),
        ({"confirmed": "yes"}, "confirmed"),
        ({"description": "x" * 201}, "description"),
        ({"description": 12}, "description"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_declarations_name_their_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=r"^(\S+): ") as caught:
        spec_from_mapping(entry(**overrides))
    assert str(caught.value).split(": ", 1)[0] == field
    assert isinstance(caught.value, InterfaceSpecError)
    assert caught.value.field == field


def test_hostile_code_is_shown_short_and_escaped() -> None:
    code = "\x1b[31m" + "A" * 10_000
    with pytest.raises(ValueError, match=r"^code: ") as caught:
        spec_from_mapping(entry(code=code))
    message = str(caught.value)
    assert len(message) < 200
    assert "\x1b" not in message


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(FIELDS),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=20)
        | st.lists(st.sampled_from(["b2g", "g2b", "x", ""]), max_size=3),
    )
)
def test_arbitrary_mappings_give_a_spec_or_a_value_error(data: dict[str, Any]) -> None:
    outcome: InterfaceSpec | InterfaceSpecError
    try:
        outcome = spec_from_mapping(data)
    except InterfaceSpecError as exc:
        outcome = exc
    if isinstance(outcome, InterfaceSpecError):
        assert outcome.field
        assert outcome.reason
    else:
        assert CODE_PATTERN.match(outcome.code)


def test_spec_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match=r"^code: "):
        InterfaceSpec("bad", "", frozenset({B2G}), EMISSION, None, F.ANY, None, True)
    with pytest.raises(ValueError, match=r"^circuits: "):
        InterfaceSpec("FSO9999A", "", frozenset(), EMISSION, None, F.ANY, None, True)


def test_require_unknown_and_malformed_codes() -> None:
    catalogue = builtin_catalogue()
    with pytest.raises(RoutingError) as unknown:
        catalogue.require("FSO9999A")
    assert unknown.value.interface_code == "FSO9999A"
    assert unknown.value.reason == "unknown interface code"
    with pytest.raises(RoutingError) as malformed:
        catalogue.require("x" * 5000 + "\r\n")
    assert len(malformed.value.interface_code) < 60
    assert malformed.value.reason.startswith("unknown interface code")


def test_membership_of_non_strings_is_false() -> None:
    catalogue = builtin_catalogue()
    assert 1100 not in catalogue
    assert None not in catalogue
    assert b"FSO1100A" not in catalogue
    assert "FSO1100A" in catalogue


def test_duplicates_are_refused() -> None:
    spec = spec_from_mapping(entry())
    with pytest.raises(ValueError, match="GSO2000A"):
        Catalogue([spec, spec])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("interfaces: [", "not valid YAML"),
        ("just a string", "'interfaces' list"),
        ("interfaces: [1]", "interfaces[0]"),
        ("interfaces:\n  - {code: FSO1100A, circuits: [b2g], direction: up}", "direction"),
        (
            "interfaces:\n  - {code: FSO1100A, circuits: [b2g], direction: emission}\n"
            "  - {code: FSO1100A, circuits: [b2g], direction: emission}",
            "declared twice",
        ),
    ],
)
def test_catalogue_documents_are_validated(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        catalogue_from_yaml(text, source="test.yaml")


# --- the built-in catalogue: domain.md §5 ---------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), EMISSIONS.items())
def test_every_emission_code_of_the_domain(
    code: str, expected: tuple[PayloadFormat, str | None]
) -> None:
    spec = builtin_catalogue().require(code)
    assert (spec.format, spec.flow_type) == expected
    assert spec.direction is EMISSION
    assert spec.circuits == {B2G}
    assert spec.confirmed
    assert spec.max_size == (GB if spec.flow_type == "E1" else None)


@pytest.mark.parametrize(
    ("code", "fmt"), [("FEN1200A", F.CPRO_LIFECYCLE), ("FEN1201A", F.CPP_LIFECYCLE)]
)
def test_lifecycle_reception_codes(code: str, fmt: PayloadFormat) -> None:
    spec = builtin_catalogue().require(code)
    assert (spec.direction, spec.format, spec.flow_type) == (RECEPTION, fmt, None)
    assert spec.circuits == {B2G}
    assert spec.confirmed


@pytest.mark.parametrize("emission", sorted(EMISSIONS))
def test_each_emission_has_a_default_unconfirmed_report(emission: str) -> None:
    report = builtin_catalogue().require(report_code_for(emission))
    assert report.code == "CSO" + emission[3:]
    assert report.direction is RECEPTION
    assert report.circuits == {B2G, G2B}
    assert report.format is F.INTEGRATION_REPORT
    assert not report.confirmed


def test_builtin_catalogue_holds_exactly_the_documented_codes() -> None:
    catalogue = builtin_catalogue()
    reports = {report_code_for(code) for code in EMISSIONS}
    assert set(catalogue.codes()) == set(EMISSIONS) | reports | {"FEN1200A", "FEN1201A"}
    assert len(catalogue) == len(EMISSIONS) * 2 + 2
    assert catalogue.codes(circuit=G2B, direction=EMISSION) == []  # no G2B code is public
    assert catalogue.codes(direction=EMISSION) == sorted(EMISSIONS)
    assert catalogue.codes(circuit=G2B) == sorted(reports)
    assert [spec.code for spec in catalogue] == catalogue.codes()


def test_builtin_catalogue_is_parsed_once_from_the_packaged_file() -> None:
    assert builtin_catalogue() is builtin_catalogue()
    text = resources.files("gateway").joinpath("interfaces.yaml").read_text(encoding="utf-8")
    assert "override" in text  # operators are told how to replace the CSO defaults
    assert catalogue_from_yaml(text, source="again").codes() == builtin_catalogue().codes()


def test_report_code_for_refuses_malformed_codes() -> None:
    with pytest.raises(ValueError, match=r"^code: "):
        report_code_for("FSO1100")


def test_operator_declaration_from_the_config_loader() -> None:
    spec = spec_from_mapping(entry())
    assert spec.confirmed  # taken from the operator's own sheet
    assert spec.circuits == {G2B}
    minimal = spec_from_mapping({"code": "GEN3000A", "circuits": ["g2b"], "direction": "reception"})
    assert (minimal.format, minimal.description, minimal.max_size) == (F.ANY, "", None)


# --- extending and overriding -----------------------------------------------------------------

codes = st.from_regex(r"\A[G-Z][A-Z]{2}[0-9]{4}[A-Z]\Z")  # never FSO/FEN/CSO: no builtin clash


@st.composite
def specs(draw: st.DrawFn, code: str | None = None) -> InterfaceSpec:
    direction = draw(st.sampled_from(list(Direction)))
    flow = draw(st.sampled_from([None, "E1", "E5"])) if direction is EMISSION else None
    return InterfaceSpec(
        code=code if code is not None else draw(codes),
        description=draw(st.text(max_size=40)),
        circuits=frozenset(draw(st.sets(st.sampled_from(list(Circuit)), min_size=1))),
        direction=direction,
        flow_type=flow,
        format=draw(st.sampled_from(list(PayloadFormat))),
        max_size=draw(st.none() | st.integers(min_value=1, max_value=GB)),
        confirmed=draw(st.booleans()),
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(specs(), max_size=8, unique_by=lambda s: s.code))
def test_extended_keeps_every_old_code_and_adds_the_new(extra: list[InterfaceSpec]) -> None:
    base = builtin_catalogue()
    bigger = base.extended(extra)
    assert all(CODE_PATTERN.match(code) for code in bigger.codes())
    assert set(bigger.codes()) == set(base.codes()) | {s.code for s in extra}
    for spec in base:
        assert bigger.get(spec.code) == spec
    assert len(base) == len(EMISSIONS) * 2 + 2  # the original is untouched


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(builtin_catalogue().codes()).flatmap(lambda c: specs(code=c)))
def test_extending_with_an_existing_code_is_refused(clash: InterfaceSpec) -> None:
    with pytest.raises(ValueError, match=clash.code) as caught:
        builtin_catalogue().extended([clash])
    assert str(caught.value).startswith("code: ")


def test_overridden_replaces_defaults_but_never_confirmed_codes() -> None:
    real_report = spec_from_mapping(
        entry(code="CSO1100A", direction="reception", format="integration-report")
    )
    catalogue = builtin_catalogue().overridden([real_report])
    assert catalogue.require("CSO1100A").confirmed
    assert catalogue.require("CSO1100A").circuits == {G2B}
    assert len(catalogue) == len(builtin_catalogue())
    with pytest.raises(ValueError, match=r"FSO1100A.*confirmed"):
        builtin_catalogue().overridden([spec_from_mapping(entry(code="FSO1100A"))])
