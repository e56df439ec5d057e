"""Durable accepts per second: the store against the bare-filesystem floor, in the same run.

    python bench/store.py [--count 2000] [--size 10240] [--rounds 5] [--dir /target/disk]

Two floors place the very same files at the very same content-addressed paths (`ab/<sha256>`)
with nothing but the filesystem, from 1 or 8 threads, in the store's own directories (its
`tmp/` and its 256 buckets): where a file is created matters on ext4, whose inode allocation
slows down in block groups with many recently deleted inodes, so floor and store share theirs.
- the issue's floor: write a temp file, fsync it, rename it into place, fsync its directory;
- a stricter floor in the store's own, faster order: write, rename, then fsync the file and
  its directory.
The store does that plus hashing, the duplicate check, the SQLite record and its events, group
committed with synchronous=FULL, from 1 or 8 concurrent asyncio producers, three ways: `accept`
alone (the message stays accepted); accept then route, two commits (how an emission was
recorded before); routed in the accept commit (`Submission.decide`, how it is now). Every
column is the median of alternating rounds. Goal (issue 2): store / the issue's floor >= 0.5x;
the ratio to the stricter floor is printed too. Because this disk's speed drifts a lot from one
second to the next, each round's store rate is also divided by the floor measured in that same
round, and the median of those paired ratios is printed with their range ("paired").
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
from gateway.model import Direction, Environment
from gateway.store import RouteTo, Submission, open_store
from gateway.store.payloads import fsync_dir
from gateway.store.sqlite import SQLiteStore

WAYS = ("accept", "two", "one")  # accept alone; accept then route; routed in the accept commit
FLOORS = ("floor", "strict")  # the order (fsync, then rename); the store's order


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: accepts per second, medians."""

    producers: int
    floor: float  # the floor: write, fsync, rename, fsync the directory
    strict: float  # the store's order: write, rename, fsync file and directory
    store: float  # accept alone
    two_commits: float  # accept, then route in a second commit
    one_commit: float  # routed in the accept commit
    paired: tuple[float, ...] = ()  # each round's store / that round's issue floor

    @property
    def ratio(self) -> float:
        return self.store / self.floor if self.floor else 0.0

    @property
    def strict_ratio(self) -> float:
        return self.store / self.strict if self.strict else 0.0


def _place(base: Path, data: bytes, sha256: str, *, strict: bool) -> None:
    """One file placed durably: the issue's order, or the store's (`strict`)."""
    final = base / sha256[:2] / sha256
    temp = base / "tmp" / secrets.token_hex(16)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        if not strict:
            os.fsync(fd)
        os.replace(temp, final)
        if strict:
            os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(final.parent)


def floor_rate(
    base: Path, payloads: Sequence[bytes], *, threads: int, strict: bool = False
) -> float:
    """Files per second the filesystem alone sustains for this layout."""
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    for n in range(256):  # the store's buckets, made when it opens: not timed either
        (base / f"{n:02x}").mkdir(exist_ok=True)
    names = [hashlib.sha256(data).hexdigest() for data in payloads]  # not timed

    def place(pair: tuple[bytes, str]) -> None:
        _place(base, *pair, strict=strict)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        list(pool.map(place, zip(payloads, names, strict=True)))
        elapsed = time.perf_counter() - started
    return len(payloads) / elapsed


def _named(message_id: str) -> str:
    return f"FSO1100A_{message_id}.xml"


async def store_rate(
    store: SQLiteStore, payloads: Sequence[bytes], *, producers: int, way: str = "accept"
) -> float:
    """Durable accepts per second through `Store.accept`, routed or not (see `WAYS`)."""
    route = RouteTo("bench", Environment.QUAL, _named)
    submission = Submission(
        source="bench",
        direction=Direction.EMISSION,
        interface_code="FSO1100A",
        protocol="api",
        environment=Environment.QUAL,
        decide=(lambda _: route) if way == "one" else None,
    )

    async def produce(share: Sequence[bytes]) -> None:
        for data in share:
            receipt = await store.accept(data, submission)
            if way == "two":
                name = _named(receipt.message_id)
                await store.route(receipt.message_id, connection="bench", file_name=name)

    started = time.perf_counter()
    await asyncio.gather(*(produce(payloads[i::producers]) for i in range(producers)))
    return len(payloads) / (time.perf_counter() - started)


async def _measure(root: Path, *, count: int, size: int, producers: int, rounds: int) -> Row:
    """Alternate floor and the store's ways in short rounds, so noise hits all alike."""
    rates: dict[str, list[float]] = {name: [] for name in (*FLOORS, *WAYS)}
    store = await open_store(root / "store")
    try:
        for i in range(rounds):
            order = [*FLOORS, *WAYS]
            order = order[i % len(order) :] + order[: i % len(order)]
            for name in order:
                payloads = [os.urandom(size) for _ in range(max(count // rounds, 1))]
                if name in FLOORS:
                    strict = name == "strict"
                    base = root / "store" / "payloads"  # the store's own directories
                    rate = floor_rate(base, payloads, threads=producers, strict=strict)
                else:
                    rate = await store_rate(store, payloads, producers=producers, way=name)
                rates[name].append(rate)
    finally:
        await store.close()
    med = {name: statistics.median(values) for name, values in rates.items()}
    paired = tuple(a / f for a, f in zip(rates["accept"], rates["floor"], strict=True) if f)
    return Row(
        producers, med["floor"], med["strict"], med["accept"], med["two"], med["one"], paired
    )


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


def _paired(ratios: Sequence[float]) -> str:
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def render(rows: Sequence[Row], *, count: int, size: int) -> str:
    """The table printed by `main`."""
    lines = [
        f"durable accepts per second, {size}-byte payloads, {count} per column and line"
        " (median of alternating rounds)",
        f"{'producers':>9} | {'floor (issue)':>13} | {'strict floor':>12} | {'store':>7}"
        f" | {'store/floor':>11} | {'store/strict':>12}"
        f" | {'+route, 2 commits':>17} | {'routed in 1 commit':>18} | {'paired (range)':>20}",
        "-+-".join("-" * w for w in (9, 13, 12, 7, 11, 12, 17, 18, 20)),
    ]
    lines += [
        f"{r.producers:>9} | {r.floor:>13.0f} | {r.strict:>12.0f} | {r.store:>7.0f}"
        f" | {r.ratio:>10.2f}x | {r.strict_ratio:>11.2f}x"
        f" | {r.two_commits:>17.0f} | {r.one_commit:>18.0f} | {_paired(r.paired):>20}"
        for r in rows
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
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = run(count=args.count, size=args.size, rounds=args.rounds, directory=args.dir)
    print(render(rows, count=args.count, size=args.size))
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before: {before}, after: {after} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
