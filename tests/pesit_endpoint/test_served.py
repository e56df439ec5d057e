"""The sync grid of a pull we serve, on disk: exactly where the core puts its SYNs, no more.

Hostile first: a point 0 or negative, a point past the end of the file, a grid file that is
corrupt or of another shape.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pesit.endpoint.served import ServedFile, ServedLog
from protocols.pesit.events import Position
from protocols.pesit.pi import SyncPoints
from protocols.pesit.transfer import DataSender

GRID = ServedFile("M1", 300_000, 4096, 32)


@settings(max_examples=150, deadline=None)
@given(
    article=st.integers(1, 70_000),
    interval_kb=st.integers(1, 64),
    articles=st.integers(2, 60),
)
def test_every_point_the_core_places_is_on_the_kept_grid(
    article: int, interval_kb: int, articles: int
) -> None:
    size = article * articles
    sender = DataSender(
        dst=1, entity_size=65535, max_article=article, sync=SyncPoints(interval_kb, 0),
        start=Position(),
    )  # fmt: skip
    placed = sender.articles([b"x" * article] * articles).sync_points
    grid = ServedFile("M1", size, article, interval_kb)
    assert [grid.position(p.point) for p in placed] == list(placed)


@pytest.mark.parametrize("point", [0, -1, 10, 1 << 30])
def test_no_position_where_no_sync_point_can_be(point: int) -> None:
    assert GRID.position(point) is None  # 300,000 bytes hold 9 points of 32 KB


def test_a_grid_without_interval_has_no_points() -> None:
    assert ServedFile("M1", 300_000, 4096, 0).position(1) is None
    assert GRID.position(9) == Position(9, 9 * 32768, 9 * 8)


def test_the_log_keeps_a_grid_until_cleared(tmp_path: Path) -> None:
    log = ServedLog(tmp_path / "served")
    assert log.load(7) is None
    log.save(7, GRID)
    assert ServedLog(tmp_path / "served").load(7) == GRID  # a new process reads it back
    log.clear(7)
    log.clear(7)
    assert log.load(7) is None


@pytest.mark.parametrize(
    "text", ["{not json", '{"message_id": "M1"}', '{"message_id": "M1", "size": "big"}', "[]"]
)
def test_a_damaged_grid_is_no_grid(tmp_path: Path, text: str) -> None:
    log = ServedLog(tmp_path)
    log.save(7, GRID)
    (tmp_path / "7.json").write_text(text)
    assert log.load(7) is None


def test_prune_forgets_only_old_grids(tmp_path: Path) -> None:
    log = ServedLog(tmp_path)
    log.save(7, GRID)
    log.save(8, GRID)
    week_ago = time.time() - 8 * 86400
    os.utime(tmp_path / "7.json", (week_ago, week_ago))
    assert log.prune(older_than=7 * 86400, now=time.time()) == ["7"]
    assert log.load(8) == GRID
    assert ServedLog(tmp_path / "missing").prune(older_than=1, now=time.time()) == []
