"""Suite-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Tests that configure logging (daemon, CLI) point it at streams pytest later closes."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
