"""Durable accepts per second: the store against the bare-filesystem floor, in the same run.

    python bench/store.py [--count 2000] [--size 10240] [--rounds 5] [--dir /target/disk]

The floor places the very same files at the very same content-addressed paths with nothing
but the filesystem: write a temp file, fsync, rename, fsync the directory (directories created
on the way are made durable the same way the store does), from 1 or 8 threads. The store does
that plus hashing, the duplicate check, the SQLite record and its 'accepted' event, group
committed with synchronous=FULL, from 1 or 8 concurrent asyncio producers. Goal: >= 0.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gateway.logging import configure
from gateway.model import Direction
from gateway.store import Submission, open_store
from gateway.store.payloads import fsync_dir
from gateway.store.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    producers: int
    floor: float
    store: float

    @property
    def ratio(self) -> float:
        return self.store / self.floor if self.floor else 0.0


def _mkdir_durable(path: Path) -> None:
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


def _place(base: Path, data: bytes, sha256: str) -> None:
    final = base / sha256[:2] / sha256[2:4] / sha256
    _mkdir_durable(final.parent.parent)
    _mkdir_durable(final.parent)
    temp = base / "tmp" / secrets.token_hex(16)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)
    fsync_dir(final.parent)


def floor_rate(base: Path, payloads: Sequence[bytes], *, threads: int) -> float:
    """Files per second the filesystem alone sustains for this layout."""
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    names = [hashlib.sha256(data).hexdigest() for data in payloads]  # not timed
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        list(pool.map(lambda pair: _place(base, *pair), zip(payloads, names, strict=True)))
        elapsed = time.perf_counter() - started
    return len(payloads) / elapsed


async def store_rate(store: SQLiteStore, payloads: Sequence[bytes], *, producers: int) -> float:
    """Durable accepts per second through `Store.accept`."""
    submission = Submission(
        source="bench", direction=Direction.EMISSION, interface_code="FSO1100A", protocol="api"
    )

    async def produce(share: Sequence[bytes]) -> None:
        for data in share:
            await store.accept(data, submission)

    started = time.perf_counter()
    await asyncio.gather(*(produce(payloads[i::producers]) for i in range(producers)))
    return len(payloads) / (time.perf_counter() - started)


async def _measure(root: Path, *, count: int, size: int, producers: int, rounds: int) -> Row:
    """Alternate floor and store in short rounds, so a noisy neighbour hits both alike."""
    floors: list[float] = []
    stores: list[float] = []
    store = await open_store(root / "store")
    try:
        for i in range(rounds):
            payloads = [os.urandom(size) for _ in range(max(count // rounds, 1))]
            if i % 2:
                stores.append(await store_rate(store, payloads, producers=producers))
                floors.append(floor_rate(root / "floor", payloads, threads=producers))
            else:
                floors.append(floor_rate(root / "floor", payloads, threads=producers))
                stores.append(await store_rate(store, payloads, producers=producers))
    finally:
        await store.close()
    return Row(producers, statistics.median(floors), statistics.median(stores))


def run(
    *,
    count: int = 2000,
    size: int = 10 * 1024,
    producers: Sequence[int] = (1, 8),
    rounds: int = 5,
    directory: Path | None = None,
) -> list[Row]:
    """Measure floor and store for each concurrency, on fresh directories (medians of rounds)."""
    rows = []
    for n in producers:
        with tempfile.TemporaryDirectory(dir=directory, prefix="raccord-bench-") as tmp:
            measured = _measure(Path(tmp), count=count, size=size, producers=n, rounds=rounds)
            rows.append(asyncio.run(measured))
    return rows


def render(rows: Sequence[Row], *, count: int, size: int) -> str:
    """The table printed by `main`."""
    lines = [
        f"durable accepts per second, {size}-byte payloads, {count} per line"
        " (median of alternating rounds)",
        f"{'producers':>9} | {'floor (fs only)':>15} | {'store':>9} | {'store/floor':>11}",
        f"{'-' * 9}-+-{'-' * 15}-+-{'-' * 9}-+-{'-' * 11}",
    ]
    lines += [
        f"{r.producers:>9} | {r.floor:>15.0f} | {r.store:>9.0f} | {r.ratio:>10.2f}x" for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="accepts per measurement")
    parser.add_argument("--size", type=int, default=10 * 1024, help="payload size in bytes")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per line")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (target disk)")
    args = parser.parse_args(argv)
    configure(level="warning", stream=sys.stderr)
    rows = run(count=args.count, size=args.size, rounds=args.rounds, directory=args.dir)
    print(render(rows, count=args.count, size=args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
