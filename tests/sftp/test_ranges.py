"""Offsets: uploads reassembled in order or refused; downloads complete when every byte was read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.sftp.paths import PathRefused
from protocols.sftp.ranges import Coverage, Sequencer


def chunks_of(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(i, data[i : i + size]) for i in range(0, len(data), size)]


def test_a_rewrite_of_streamed_bytes_is_refused() -> None:
    seq = Sequencer()
    assert seq.feed(0, b"abcd") == [b"abcd"]
    with pytest.raises(PathRefused, match="rewrites data already received"):
        seq.feed(2, b"XX")


def test_a_gap_beyond_the_window_is_refused() -> None:
    seq = Sequencer(window=10)
    with pytest.raises(PathRefused, match="leaves a gap"):
        seq.feed(100, b"x")


def test_the_same_offset_held_twice_is_refused() -> None:
    seq = Sequencer(window=100)
    seq.feed(10, b"x")
    with pytest.raises(PathRefused):
        seq.feed(10, b"y")


def test_a_hole_left_at_close_is_refused() -> None:
    seq = Sequencer(window=100)
    seq.feed(0, b"ab")
    seq.feed(5, b"cd")
    with pytest.raises(PathRefused, match="hole between offsets 2 and 5"):
        seq.check_complete()


def test_empty_writes_are_ignored_and_held_bytes_reported() -> None:
    seq = Sequencer(window=100)
    assert seq.feed(0, b"") == []
    assert seq.feed(3, b"de") == []
    assert seq.held == 2
    assert seq.feed(0, b"abc") == [b"abc", b"de"]
    assert (seq.position, seq.held) == (5, 0)
    seq.check_complete()


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=2000), st.integers(1, 97), st.randoms())
def test_writes_shuffled_within_the_window_reassemble_exactly(
    data: bytes, size: int, rnd: object
) -> None:
    pieces = chunks_of(data, size)
    shuffled = list(pieces)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    seq = Sequencer(window=len(data))
    out = b"".join(b"".join(seq.feed(offset, piece)) for offset, piece in shuffled)
    assert out == data
    seq.check_complete()


def test_coverage_needs_every_byte() -> None:
    cov = Coverage()
    assert not cov.covers(10)
    cov.add(0, 4)
    cov.add(6, 4)
    assert not cov.covers(10)
    cov.add(3, 4)
    assert cov.covers(10)
    assert Coverage().covers(0)
    cov.add(50, 0)
    assert cov.covers(10)


@settings(max_examples=200)
@given(st.integers(1, 5000), st.integers(1, 700), st.randoms())
def test_reads_in_any_order_cover_the_file(size: int, block: int, rnd: object) -> None:
    reads = [(o, min(block, size - o)) for o in range(0, size, block)]
    rnd.shuffle(reads)  # type: ignore[attr-defined]
    cov = Coverage()
    for offset, length in reads[:-1]:
        cov.add(offset, length)
    assert not cov.covers(size) or (len(reads) == 1 and reads[0][1] == 0)
    cov.add(*reads[-1])
    assert cov.covers(size)
