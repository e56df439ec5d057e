"""Fixtures: one set of certificate holders per session (RSA keys are slow to make)."""

from __future__ import annotations

import pytest

from tests.as2_endpoint.harness import Parties, make_parties


@pytest.fixture(scope="session")
def parties(tmp_path_factory: pytest.TempPathFactory) -> Parties:
    return make_parties(tmp_path_factory.mktemp("as2-endpoint-pki"))
