"""Shared fixtures for gateway tests: a valid configuration as data, ready to be broken."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE_CONNECTION: dict[str, Any] = {
    "name": "b2g-qual",
    "structure": "98765432400019",
    "environment": "qual",
    "circuit": "b2g",
    "protocol": "as2",
    "status": "brouillon",
    "validity": {"start": "2026-01-01", "end": "2030-12-31"},
    "contact": {
        "first_names": "Camille",
        "name": "Martin",
        "email": "edi@example.fr",
        "phone": "+33 1 23 45 67 89",
    },
    "network": {
        "aife": {"host": "127.0.0.1", "port": 4080},
        "partner": {"host": "127.0.0.1", "port": 5080, "part_id": "PA-1"},
    },
    "subscriptions": {"emission": ["FSO1100A"], "reception": ["CSO1100A", "FEN1200A"]},
}


def connection(**overrides: Any) -> dict[str, Any]:
    """A valid connection sheet with top-level fields replaced."""
    data = copy.deepcopy(BASE_CONNECTION)
    data.update(overrides)
    return data


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a config mapping to raccord.yaml in tmp_path and return its path."""

    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "raccord.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
