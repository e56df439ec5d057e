"""Fixtures for the AS2 core tests: one PKI per session (RSA keys are slow to make)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.as2.as2_helpers import Pki, make_pki
from tests.pki import now as clock


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("as2-pki"))


@pytest.fixture
def now() -> dt.datetime:
    return clock()
