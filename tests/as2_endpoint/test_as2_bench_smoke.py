"""bench/as2.py must keep running: every measurement through its real code path, tiny."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.as2 import render, run


@pytest.mark.slow
def test_the_as2_benchmark_measures_every_line(tmp_path: Path) -> None:
    report = run(count=3, sizes=(1024, 4096), concurrency=2, rss_size=256 * 1024, repeats=2,
                 directory=tmp_path)  # fmt: skip
    assert [line.size for line in report.lines] == [1024, 4096]
    assert all(line.end_to_end > 0 and line.floor_one > 0 for line in report.lines)
    assert all(line.durable_all > 0 and line.durable_cpu_ms > 0 for line in report.lines)
    assert report.round_trip_ms > 0
    assert report.rss_peak_kb >= report.rss_baseline_kb > 0
    table = render(report, count=3, concurrency=2)
    assert "e2e/floor" in table
    assert "+durable" in table
    assert "pyas2lib" in table
    assert "peak RSS" in table
    assert list(tmp_path.iterdir()) == []
