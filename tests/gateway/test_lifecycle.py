"""The sheet lifecycle of domain.md §3: every allowed and every forbidden transition."""

from __future__ import annotations

import itertools

import pytest

from gateway.errors import ConnectionStateError
from gateway.lifecycle import TRANSITIONS, check_modification, check_transition, diff
from gateway.model import ConnectionStatus as S

FORBIDDEN = [(a, b) for a, b in itertools.product(S, S) if a is not b and (a, b) not in TRANSITIONS]


@pytest.mark.parametrize(("current", "target"), list(TRANSITIONS))
def test_allowed_transitions_give_their_reason(current: S, target: S) -> None:
    assert check_transition("c", current, target)


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_transitions_are_refused(current: S, target: S) -> None:
    with pytest.raises(ConnectionStateError, match=f"cannot go from {current.value}"):
        check_transition("c", current, target)


def test_no_transition_to_the_same_status() -> None:
    with pytest.raises(ConnectionStateError, match="already actif"):
        check_transition("c", S.ACTIF, S.ACTIF)


def test_draft_can_never_become_active_without_submission() -> None:
    assert (S.BROUILLON, S.ACTIF) in FORBIDDEN


@pytest.mark.parametrize("status", [S.ACTIF, S.INACTIF])
def test_modifying_an_active_or_inactive_sheet_puts_it_back_en_cours(status: S) -> None:
    assert check_modification("c", status, {"subscriptions": {}}) is S.EN_COURS


def test_a_draft_stays_a_draft_when_edited() -> None:
    assert check_modification("c", S.BROUILLON, {"contact": {}}) is S.BROUILLON


@pytest.mark.parametrize("status", [S.EN_COURS, S.PARTIELLE, S.ERREUR])
def test_other_statuses_cannot_be_modified(status: S) -> None:
    with pytest.raises(ConnectionStateError, match="only actif or inactif"):
        check_modification("c", status, {"contact": {}})


@pytest.mark.parametrize("field", ["exchange_system", "structure", "protocol", "name"])
def test_immutable_fields_need_a_new_sheet(field: str) -> None:
    with pytest.raises(ConnectionStateError, match="declare a new connection sheet"):
        check_modification("c", S.ACTIF, {field: {"from": 1, "to": 2}})


def test_diff_lists_changed_top_level_fields() -> None:
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "b": {"from": 2, "to": 3},
        "c": {"from": None, "to": 4},
    }
