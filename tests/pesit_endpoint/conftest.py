"""Fixtures of the PeSIT endpoint tests: one test PKI per module (keys are slow to make)."""

from __future__ import annotations

import pytest

from tests.pesit_endpoint.helpers import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))
