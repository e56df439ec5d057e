"""The house rules of architecture.md, enforced on the source tree with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_NAMES = {"fpdu", "state", "connection", "events", "diagnostics", "message", "mdn", "paths"}
CORE_FORBIDDEN = {"asyncio", "aiohttp", "asyncssh", "gateway", "time", "socket", "ssl", "selectors"}
CORE_FORBIDDEN_CALLS = {"datetime.now", "datetime.utcnow", "date.today", "time.time"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            found.add(f"{node.func.value.id}.{node.func.attr}")
    return found


ADAPTERS = {"endpoint", "sender", "__init__"}  # the thin asyncio edges of as2/ and pesit/


def _core_modules() -> list[Path]:
    """Named cores anywhere under protocols/, and every module of as2/ and pesit/ but the edges."""
    named = {p for p in (ROOT / "protocols").rglob("*.py") if p.stem in CORE_NAMES}
    whole = {
        p
        for package in ("as2", "pesit")
        for p in (ROOT / "protocols" / package).glob("*.py")
        if p.stem not in ADAPTERS
    }
    return sorted(named | whole)


def test_protocols_never_import_gateway() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "protocols").rglob("*.py")
        if "gateway" in _imports(p)
    ]
    assert offenders == []


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sans_io_cores_import_no_io_and_read_no_clock(path: Path) -> None:
    assert _imports(path) & CORE_FORBIDDEN == set()
    assert _calls(path) & CORE_FORBIDDEN_CALLS == set()


def test_only_the_daemon_imports_every_endpoint() -> None:
    importers = [
        p.relative_to(ROOT)
        for p in (ROOT / "gateway").rglob("*.py")
        if {"protocols"} & _imports(p)
        and sum(
            f"protocols.{name}" in p.read_text(encoding="utf-8")
            for name in ("as2", "sftp", "pesit")
        )
        == 3
    ]
    assert all(str(p) in {"gateway/daemon.py", "gateway/endpoints.py"} for p in importers)
