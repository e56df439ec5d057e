"""Fixtures for the store tests: a controllable clock and a real store in tmp_path."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Direction
from gateway.store import Submission, open_store, payloads
from gateway.store.sqlite import SQLiteStore

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand; read from the writer thread too, hence the lock."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


_BASE = Submission(
    source="api", direction=Direction.EMISSION, interface_code="FSO1100A", protocol="api"
)


def sub(**overrides: Any) -> Submission:
    """A valid submission; keyword overrides replace fields."""
    return replace(_BASE, **overrides)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def raw_db(root: Path) -> Iterator[sqlite3.Connection]:
    """A fresh sqlite3 connection that shares nothing with the store under test."""
    conn = sqlite3.connect(root / "raccord.db")
    try:
        yield conn
    finally:
        conn.close()


def payload_files(root: Path) -> list[Path]:
    """Every final payload file (temp dir excluded)."""
    base = root / "payloads"
    return sorted(p for p in base.glob("??/*") if p.is_file())


def temp_files(root: Path) -> list[Path]:
    """Temp files of the store at `root`: named ones in `tmp/`, and unnamed ones (O_TMPFILE)
    still open in this process, which the kernel shows as `tmp/#<inode> (deleted)`."""
    tmp = root / "payloads" / "tmp"
    found = list(tmp.iterdir())
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{tmp}/#"):
                found.append(Path(target))
    return sorted(found)


@pytest.fixture(params=["unnamed", "named"])
def temp_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with both kinds of temp file: unnamed (where the file system allows them,
    as here) and named in `tmp/` (where it does not)."""
    if request.param == "named":
        monkeypatch.setattr(payloads, "unnamed_temps_work", lambda directory: False)
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
async def store(root: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    opened = await open_store(root, clock=clock, rand=lambda: 0.5)
    try:
        yield opened
    finally:
        await opened.close()
