"""bench/store.py must keep running: a tiny measurement through its real code path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.store import render, run

REPO = Path(__file__).resolve().parents[2]


def test_the_store_benchmark_measures_both_sides(tmp_path: Path) -> None:
    rows = run(count=8, size=1024, producers=(1, 2), rounds=2, directory=tmp_path)
    assert [r.producers for r in rows] == [1, 2]
    assert all(r.floor > 0 and r.strict > 0 for r in rows)
    assert all(r.store > 0 and r.two_commits > 0 and r.one_commit > 0 for r in rows)
    table = render(rows, count=8, size=1024)
    assert "store/floor" in table
    assert "store/strict" in table
    assert "routed in 1 commit" in table
    assert len(table.splitlines()) == 5
    assert list(tmp_path.iterdir()) == []


def test_the_benchmark_runs_as_a_script(tmp_path: Path) -> None:
    args = ["--count", "4", "--size", "100", "--rounds", "1", "--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "bench/store.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "store/floor" in done.stdout
