"""The wheel ships every package: pyproject lists packages explicitly, so a new sub-package
that is not listed would import fine from the source tree and vanish from the container."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_on_disk_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("gateway", "protocols")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk - listed == set()
    assert listed - on_disk == set()


def test_data_files_are_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.yaml" in data["package-data"]["gateway"]
    assert (ROOT / "gateway" / "interfaces.yaml").is_file()
