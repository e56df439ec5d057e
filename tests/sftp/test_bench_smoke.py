"""bench/sftp.py must keep running: a tiny measurement through its real code path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sftp import render, run

pytestmark = pytest.mark.interop


async def test_the_sftp_benchmark_measures_every_server(tmp_path: Path) -> None:
    rows = await run(
        large_mb=1, small_count=3, small_size=2048, session_count=2, rounds=1, directory=tmp_path
    )
    assert [r.unit for r in rows] == ["MB/s", "files/s", "files/s"]
    assert all(r.gateway > 0 and r.bare > 0 for r in rows)
    for server in ("bare+fsync", "bare+spool"):
        assert all((r.median(server) or 0) > 0 for r in rows)
    table = render(rows, rounds=1)
    assert "gw/bare" in table
    assert "bare+fsync" in table
    assert "b+sp/bare" in table
    assert len(table.splitlines()) == 6  # header, rule, three scenarios, what fsyncs
    assert list(tmp_path.iterdir()) == []
