"""The sync grid a crashed sender restarts on is where the core really puts its SYNs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pesit.endpoint.requester import grid_point, sync_grid
from protocols.pesit.events import Position
from protocols.pesit.pi import SyncPoints
from protocols.pesit.transfer import DataSender


@settings(max_examples=200, deadline=None)
@given(
    article=st.integers(1, 70_000),
    interval_kb=st.integers(1, 64),
    articles=st.integers(1, 60),
    last=st.integers(1, 70_000),
    start_point=st.integers(0, 5),
)
def test_grid_matches_the_core_placement(
    article: int, interval_kb: int, articles: int, last: int, start_point: int
) -> None:
    last = min(last, article)
    start = grid_point(start_point, article_size=article, interval_kb=interval_kb)
    if not start_point:
        start = Position()
    sender = DataSender(
        dst=1,
        entity_size=65535,
        max_article=article,
        sync=SyncPoints(interval_kb, 0),
        start=start,
    )
    batch = sender.articles([b"x" * article] * (articles - 1) + [b"y" * last])
    for position in batch.sync_points:
        expected = grid_point(position.point, article_size=article, interval_kb=interval_kb)
        assert position == expected


def test_grid_covers_the_file_and_nothing_past_it() -> None:
    points = sync_grid(100_000, article_size=4096, interval_kb=32)
    assert [p.byte_offset for p in points] == [32768, 65536, 98304]
    assert sync_grid(100_000, article_size=4096, interval_kb=0) == []
    big = sync_grid(200_000, article_size=65529, interval_kb=32)
    assert [(p.point, p.byte_offset, p.article_offset) for p in big] == [
        (1, 65529, 1),
        (2, 131058, 2),
        (3, 196587, 3),
    ]
