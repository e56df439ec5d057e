"""Message ids: ordered, unique, and random bits drawn from the OS a buffer at a time."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from gateway.store import rows
from gateway.store.rows import MessageIds, RandomBits


def test_ids_drawn_in_one_millisecond_are_unique_and_ordered() -> None:
    ids = MessageIds()
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    drawn = [ids.next(now) for _ in range(1000)]
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == len(drawn)
    assert {len(i) for i in drawn} == {26}


def test_random_bits_cost_one_system_call_per_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """One `getrandom` per 4 KiB, not one per id: 500 ids of 80 bits read 5,000 bytes."""
    calls: list[int] = []
    real = os.urandom

    def counted(size: int) -> bytes:
        calls.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", counted)
    source = RandomBits()
    values = [source.take(80) for _ in range(500)]
    assert calls == [4096, 4096]
    assert len(set(values)) == len(values)
    assert all(0 <= v < 1 << 80 for v in values)


def test_a_forked_child_does_not_repeat_its_parents_bits() -> None:
    rows._RANDOM.take(80)  # something is buffered when the process forks
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draw, then leave at once
        os.write(writer, rows._RANDOM.take(80).to_bytes(10, "big"))
        os._exit(0)
    os.close(writer)
    try:
        child = int.from_bytes(os.read(reader, 10), "big")
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert child != rows._RANDOM.take(80)
