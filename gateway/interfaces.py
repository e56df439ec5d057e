"""The interface-code catalogue: which flows exist, their direction, circuit and payload format.

Chorus Pro identifies every flow by an interface code (domain.md §5). The codes we know are data,
in `interfaces.yaml` beside this module; the codes nobody published (G2B flows, the exact CSO
integration-report codes) are declared by operators in configuration and validated here with
`spec_from_mapping`, so one set of rules covers both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import TypeVar

import yaml

from gateway.errors import RoutingError
from gateway.model import Circuit, Direction

__all__ = [
    "CODE_PATTERN",
    "FLOW_TYPES",
    "Catalogue",
    "InterfaceSpec",
    "InterfaceSpecError",
    "PayloadFormat",
    "builtin_catalogue",
    "catalogue_from_yaml",
    "report_code_for",
    "spec_from_mapping",
]

CODE_PATTERN: re.Pattern[str] = re.compile(r"\A[A-Z]{3}[0-9]{4}[A-Z]\Z")
FLOW_TYPES = frozenset({"E1", "E2", "E3", "E4", "E5"})
_REPORT_PREFIX = "CSO"
_DESCRIPTION_MAX = 200
_E = TypeVar("_E", bound=StrEnum)
_FIELDS = frozenset(
    {"code", "description", "circuits", "direction", "flow_type", "format", "max_size", "confirmed"}
)


class PayloadFormat(StrEnum):
    """What a flow's payload must be; the values are the kebab-case names used in YAML."""

    UBL_INVOICE = "ubl-invoice"
    UBL_INVOICE_MIN = "ubl-invoice-min"
    CII_16B = "cii-16b"
    CII_16B_MIN = "cii-16b-min"
    FACTURX = "facturx"
    CPP_FACTURE_MIN = "cpp-facture-min"
    CPRO_LIFECYCLE = "cpro-lifecycle"  # FEN1200A, Chorus Pro lifecycle format
    CPP_LIFECYCLE = "cpp-lifecycle"  # FEN1201A, CPP V1 lifecycle format
    INTEGRATION_REPORT = "integration-report"  # CSO...A
    INVOICE_STATUS = "invoice-status"  # G2B statuses the PA sends back (format not public)
    ANY = "any"  # not checked


@dataclass(frozen=True, slots=True)
class InterfaceSpec:
    """One interface code; construction validates it, so a spec in hand is always coherent."""

    code: str
    description: str
    circuits: frozenset[Circuit]
    direction: Direction
    flow_type: str | None
    format: PayloadFormat
    max_size: int | None
    confirmed: bool

    def __post_init__(self) -> None:
        problem = next(_spec_problems(self), None)
        if problem is not None:
            raise InterfaceSpecError(*problem)


class InterfaceSpecError(ValueError):
    """One wrong field of an interface spec; `str()` reads `<field>: <reason>`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _spec_problems(spec: InterfaceSpec) -> Iterator[tuple[str, str]]:
    """Every (field, reason) wrong with `spec`, first problem first."""
    if not CODE_PATTERN.match(spec.code):
        yield "code", f"{_shown(spec.code)} is not 3 capital letters, 4 digits, 1 capital letter"
    if len(spec.description) > _DESCRIPTION_MAX:
        yield "description", f"longer than {_DESCRIPTION_MAX} characters"
    if not spec.circuits:
        yield "circuits", "at least one circuit (b2g, g2b) is required"
    if spec.flow_type is not None and spec.flow_type not in FLOW_TYPES:
        yield "flow_type", f"{_shown(spec.flow_type)} is not one of E1, E2, E3, E4, E5"
    if spec.flow_type is not None and spec.direction is not Direction.EMISSION:
        yield "flow_type", "only emission flows (partner to Chorus Pro) have a flow type"
    if spec.max_size is not None and spec.max_size <= 0:
        yield "max_size", "must be a positive number of bytes"


def _shown(value: str) -> str:
    """A hostile string made safe and short for an error message."""
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")


class Catalogue:
    """An immutable set of interface specs keyed by code; `extended` returns a new one."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Iterable[InterfaceSpec]) -> None:
        table: dict[str, InterfaceSpec] = {}
        for spec in specs:
            if spec.code in table:
                raise InterfaceSpecError("code", f"{spec.code} is declared twice")
            table[spec.code] = spec
        self._specs = table

    def get(self, code: str) -> InterfaceSpec | None:
        """The spec for `code`, or None when it is not catalogued."""
        return self._specs.get(code)

    def require(self, code: str) -> InterfaceSpec:
        """The spec for `code`; a flow with an unknown code cannot be routed."""
        spec = self._specs.get(code)
        if spec is not None:
            return spec
        if CODE_PATTERN.match(code):
            raise RoutingError(code, "unknown interface code")
        raise RoutingError(
            _shown(code), "unknown interface code (malformed: not 3 letters, 4 digits, 1 letter)"
        )

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._specs

    def __iter__(self) -> Iterator[InterfaceSpec]:
        """The specs, in code order."""
        return iter([self._specs[code] for code in sorted(self._specs)])

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Catalogue({len(self)} codes)"

    def codes(
        self, *, circuit: Circuit | None = None, direction: Direction | None = None
    ) -> list[str]:
        """Sorted codes, optionally only those of one circuit and/or one direction."""
        return sorted(
            spec.code
            for spec in self._specs.values()
            if (circuit is None or circuit in spec.circuits)
            and (direction is None or spec.direction is direction)
        )

    def extended(self, extra: Iterable[InterfaceSpec]) -> Catalogue:
        """A new catalogue with `extra` added; a code already present is refused, never replaced."""
        added = list(extra)
        for spec in added:
            if spec.code in self._specs:
                raise InterfaceSpecError(
                    "code", f"{spec.code} is already in the interface catalogue"
                )
        return Catalogue([*self._specs.values(), *added])

    def overridden(self, replacements: Iterable[InterfaceSpec]) -> Catalogue:
        """A new catalogue where operator specs replace our *unconfirmed* defaults (CSO codes).

        A confirmed code is a public fact: replacing it would hide a configuration mistake, so
        it is refused. Codes not present yet are simply added.
        """
        table = dict(self._specs)
        for spec in replacements:
            current = table.get(spec.code)
            if current is not None and current.confirmed:
                raise InterfaceSpecError(
                    "code", f"{spec.code} is a confirmed code and cannot be overridden"
                )
            table[spec.code] = spec
        return Catalogue(table.values())


def report_code_for(emission_code: str) -> str:
    """The integration-report code answering `emission_code` under our documented default.

    The exact CSO codes are not public (domain.md §7): by default the report for FSO1100A is
    CSO1100A, i.e. the code with its 3-letter prefix replaced by CSO. Operators who learn the
    real codes declare them in configuration.
    """
    if not CODE_PATTERN.match(emission_code):
        raise InterfaceSpecError(
            "code", f"{_shown(emission_code)} is not a well-formed interface code"
        )
    return _REPORT_PREFIX + emission_code[3:]


def spec_from_mapping(data: Mapping[str, object]) -> InterfaceSpec:
    """Validate one YAML/config entry; errors read `<field>: <reason>` for the loader to prefix.

    Required: code, circuits, direction. Optional: description (""), flow_type (None),
    format ("any"), max_size (None), confirmed (True: an operator declares codes from its own
    connection sheet; only our documented defaults say False).
    """
    unknown = sorted(str(key) for key in data if key not in _FIELDS)
    if unknown:
        name = unknown[0] if re.fullmatch(r"\w{1,40}", unknown[0]) else _shown(unknown[0])
        raise InterfaceSpecError(name, "unknown field")
    return InterfaceSpec(
        code=_required_str(data.get("code"), "code"),
        description=_optional_str(data.get("description"), "description") or "",
        circuits=_circuits(data.get("circuits")),
        direction=_enum(Direction, data.get("direction"), "direction"),
        flow_type=_optional_str(data.get("flow_type"), "flow_type"),
        format=_enum(PayloadFormat, data.get("format", PayloadFormat.ANY.value), "format"),
        max_size=_optional_size(data.get("max_size")),
        confirmed=_optional_bool(data.get("confirmed"), "confirmed", default=True),
    )


def _required_str(value: object, field: str) -> str:
    if value is None:
        raise InterfaceSpecError(field, "required")
    if not isinstance(value, str):
        raise InterfaceSpecError(field, f"must be a string, not {type(value).__name__}")
    return value


def _optional_str(value: object, field: str) -> str | None:
    return None if value is None else _required_str(value, field)


def _enum(kind: type[_E], value: object, field: str) -> _E:
    text = _required_str(value, field)
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InterfaceSpecError(field, f"{_shown(text)} is not one of {allowed}") from None


def _circuits(value: object) -> frozenset[Circuit]:
    if value is None:
        raise InterfaceSpecError("circuits", "required")
    if not isinstance(value, list | tuple):
        raise InterfaceSpecError("circuits", "must be a list such as [b2g] or [b2g, g2b]")
    return frozenset(_enum(Circuit, item, f"circuits[{i}]") for i, item in enumerate(value))


def _optional_size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterfaceSpecError(
            "max_size", f"must be a whole number of bytes, not {type(value).__name__}"
        )
    return value


def _optional_bool(value: object, field: str, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InterfaceSpecError(field, f"must be true or false, not {type(value).__name__}")
    return value


@functools.cache
def builtin_catalogue() -> Catalogue:
    """The catalogue shipped in `interfaces.yaml`, parsed and validated once per process."""
    text = resources.files("gateway").joinpath("interfaces.yaml").read_text(encoding="utf-8")
    return catalogue_from_yaml(text, source="interfaces.yaml")


def catalogue_from_yaml(text: str, *, source: str) -> Catalogue:
    """Parse a catalogue document (`interfaces: [ ... ]`); errors name the entry's position."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InterfaceSpecError(source, f"not valid YAML ({exc.__class__.__name__})") from None
    entries = document.get("interfaces") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise InterfaceSpecError(source, "expected a mapping with an 'interfaces' list")
    specs: list[InterfaceSpec] = []
    for index, entry in enumerate(entries):
        where = f"interfaces[{index}]"
        if not isinstance(entry, dict):
            raise InterfaceSpecError(where, f"expected a mapping (in {source})")
        try:
            specs.append(spec_from_mapping(entry))
        except InterfaceSpecError as exc:
            raise InterfaceSpecError(
                f"{where}.{exc.field}", f"{exc.reason} (in {source})"
            ) from None
    try:
        return Catalogue(specs)
    except InterfaceSpecError as exc:
        raise InterfaceSpecError(exc.field, f"{exc.reason} (in {source})") from None
