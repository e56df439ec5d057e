"""bench/pesit.py must keep running: each variant on a tiny file, and the script end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.pesit import VARIANTS, Row, child, make_certificates, make_source, render

REPO = Path(__file__).resolve().parents[2]


def test_every_variant_moves_the_file(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    source = tmp_path / "source"
    make_source(source, 300_000)
    rows = []
    for variant in VARIANTS:
        work = tmp_path / variant
        work.mkdir()
        result = child(variant, source, work, certs, 4)
        assert result["seconds"] > 0
        rows.append(Row(variant, 300_000, (result["seconds"],), result["rss_mb"]))
    assert (tmp_path / "raw" / "raw.out").read_bytes() == source.read_bytes()
    assert (tmp_path / "pesit" / "pesit.out").read_bytes() == source.read_bytes()
    assert (tmp_path / "pesit-4k" / "pesit.out").read_bytes() == source.read_bytes()
    table = render(rows, window=4)
    assert "x raw" in table
    assert len(table.splitlines()) == 2 + len(VARIANTS)


@pytest.mark.slow
def test_the_benchmark_runs_as_a_script(tmp_path: Path) -> None:
    args = ["--size-mb", "0.2", "--small-mb", "0.05", "--rounds", "1", "--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "bench/pesit.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pesit+store" in done.stdout
    assert list(tmp_path.iterdir()) == []
