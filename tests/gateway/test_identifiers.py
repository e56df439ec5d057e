"""SIRET, e-mail and phone checks, with hypothesis for the check digit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.identifiers import luhn_valid, phone_problem, siret_problem


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@given(
    st.text(alphabet="0123456789", min_size=8, max_size=8),
    st.text("0123456789", min_size=4, max_size=4),
)
def test_any_well_formed_siret_is_accepted(siren_body: str, nic_body: str) -> None:
    siren = with_check_digit(siren_body)
    if siren.startswith("356000000"):
        return
    assert siret_problem(with_check_digit(siren + nic_body)) is None


@given(
    st.text(alphabet="0123456789", min_size=14, max_size=14), st.integers(0, 13), st.integers(1, 9)
)
def test_a_single_changed_digit_is_always_caught(siret: str, position: int, delta: int) -> None:
    if siret.startswith("356000000") or siret_problem(siret) is not None:
        return
    digit = (int(siret[position]) + delta) % 10
    changed = siret[:position] + str(digit) + siret[position + 1 :]
    assert siret_problem(changed) is not None


def test_la_poste_uses_its_digit_sum_rule() -> None:
    assert siret_problem("35600000000048") is None  # the head office passes Luhn
    assert siret_problem("35600000000010") is None  # digit sum 15, a multiple of 5
    assert siret_problem("35600000000011") is not None


def test_known_examples() -> None:
    assert siret_problem("98765432400019") is None
    assert siret_problem("98765432400018") == "SIRET 98765432400018 fails its check digit"
    assert siret_problem("") is not None


def test_phone_numbers() -> None:
    assert phone_problem("+33 1 23 45 67 89") is None
    assert phone_problem("+33.6.12.34.56.78") is None
    assert phone_problem("0123456789") is not None
    assert phone_problem("+0123456789") is not None
