"""Hypothesis strategies for PeSIT parameters and FPDUs, built from the spec tables."""

from __future__ import annotations

from hypothesis import strategies as st

from protocols.pesit.diagnostics import DiagnosticCode
from protocols.pesit.fpdu import DATA_FAMILY, Fpdu, FpduType
from protocols.pesit.pi import PI, Kind, Params, Spec, SyncPoints, Value, spec_of

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
KNOWN = sorted(int(code) for code in PI)
GROUPS = [code for code in KNOWN if (spec := spec_of(code)) and spec.kind is Kind.GROUP]
UNKNOWN = st.integers(0, 255).filter(lambda code: spec_of(code) is None)


def value_for(spec: Spec, *, nested: bool) -> st.SearchStrategy[Value]:  # noqa: PLR0911
    kind = spec.kind
    if kind is Kind.TEXT:
        return st.text(PRINTABLE, min_size=1, max_size=min(spec.size, 40))
    if kind is Kind.NUMBER:
        return st.integers(0, (1 << (8 * spec.size)) - 1)
    if kind is Kind.DIAGNOSTIC:
        return st.builds(DiagnosticCode, st.integers(0, 255), st.integers(0, 0xFFFF))
    if kind is Kind.SYNC:
        return st.builds(SyncPoints, st.integers(0, 0xFFFF), st.integers(0, 0xFF))
    if kind is Kind.DATE:
        return st.text(st.sampled_from("0123456789"), min_size=12, max_size=12)
    if kind is Kind.GROUP:
        return params(nested=True) if not nested else st.nothing()
    return st.binary(min_size=spec.size, max_size=spec.size)


@st.composite
def params(draw: st.DrawFn, *, nested: bool = False) -> Params:
    """Known and unknown codes, ascending, each once (what a strict writer produces)."""
    known_pool = [c for c in KNOWN if not (nested and c in GROUPS)]
    codes = draw(st.sets(st.sampled_from(known_pool), max_size=6))
    codes |= draw(st.sets(UNKNOWN, max_size=2))
    units: list[tuple[int, Value]] = []
    for code in sorted(codes):
        spec = spec_of(code)
        value = (
            draw(st.binary(min_size=1, max_size=300))
            if spec is None
            else draw(value_for(spec, nested=nested))
        )
        units.append((code, value))
    return Params(tuple(units))


KINDS = list(FpduType)
PARAM_KINDS = [kind for kind in KINDS if kind not in DATA_FAMILY]


@st.composite
def fpdus(draw: st.DrawFn, kind: FpduType | None = None) -> Fpdu:
    kind = kind or draw(st.sampled_from(KINDS))
    dst = draw(st.integers(0, 255))
    if kind is FpduType.DTF:
        articles = draw(st.lists(st.binary(max_size=200), min_size=1, max_size=40))
        return Fpdu(kind, dst, data=tuple(articles))
    if kind in DATA_FAMILY:
        return Fpdu(kind, dst, draw(st.integers(0, 255)), data=(draw(st.binary(max_size=2000)),))
    return Fpdu(kind, dst, draw(st.integers(0, 255)), draw(params()))
