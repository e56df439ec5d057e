"""The whole circuit, timed per protocol: drop folder -> gateway -> Chorus Pro simulator ->
integration reports and lifecycle statuses back, correlated.

    python bench/e2e.py [--invoices 100] [--paced 20] [--status-interval 0.1]

A real `raccord serve` process runs on the campaign's configuration (a private copy of
config/sandbox plus B2G over SFTP: gateway/simulator/campaign.py), the simulator in this
process. One phase per protocol, one after the other: N UBL invoices dropped at once for AS2
(b2g-qual-as2), SFTP (b2g-qual-sftp) and PeSIT (b2g-prod-pesit). From the gateway's store:

* accepted -> acknowledged, per invoice: from the `accepted` event (the file is durable in the
  gateway) to the `acknowledged` event (AS2: signed MDN checked; SFTP: file renamed into place
  on AIFE's server; PeSIT: ACK(TRANS.END)) — p50, p99, max. In a burst of N this includes the
  wait in the connection's outbox (one send at a time per connection); the `one at a time`
  rows drop the next invoice only once the previous one is acknowledged: the bare latency;
* throughput: invoices acknowledged per second, first `accepted` to last `acknowledged`;
* from the moment the files are in the drop folder: all deposited at the simulator, all
  integration reports correlated, all invoices at MISE_EN_PAIEMENT (five lifecycle flows each,
  `--status-interval` apart: that part is paced by the simulator).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.config_load import load
from gateway.logging import configure
from gateway.simulator.campaign import PortPicker, build
from gateway.simulator.desk import Timing
from gateway.simulator.feeder import drop_file
from gateway.simulator.runner import Options, Simulator
from gateway.simulator.samples import ubl_invoice

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Lane:
    protocol: str
    environment: str
    code: str


LANES = (Lane("AS2", "qual", "FSO1100A"), Lane("SFTP", "qual", "FSO1150A"),
         Lane("PeSIT", "prod", "FSO1100A"))  # fmt: skip


def _seconds(at: str) -> float:
    return dt.datetime.fromisoformat(at).timestamp()


def _store_times(store: Path, ids: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per message id: the times of its accepted / acknowledged / report / paid events."""
    found: dict[str, dict[str, list[float]]] = {i: {} for i in ids}
    db = sqlite3.connect(store, timeout=30.0)
    try:
        db.execute("PRAGMA query_only = ON")
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            f"SELECT message_id, kind, at, json_extract(detail, '$.status') FROM events"
            f" WHERE message_id IN ({marks})",
            ids,
        ).fetchall()
    finally:
        db.close()
    for message_id, kind, at, status in rows:
        key = "paid" if status == "MISE_EN_PAIEMENT" else kind
        found[message_id].setdefault(key, []).append(_seconds(at))
    return found


def _message_ids(drop: Path, lane: Lane, names: list[str]) -> list[str] | None:
    """The drop folder's receipts, once every file has one."""
    folder = drop / "done" / lane.environment / lane.code
    ids = []
    for name in names:
        receipt = folder / f"{name}.receipt.json"
        if not receipt.exists():
            return None
        ids.append(receipt.read_text().split('"message_id": "')[1].split('"')[0])
    return ids


async def _until(check: Callable[[], object], *, timeout: float = 600.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError("the circuit did not complete in time")


def _complete(store: Path, ids: list[str]) -> dict[str, dict[str, list[float]]] | None:
    times = _store_times(store, ids)
    done = all("acknowledged" in t and "integration_report" in t and "paid" in t
               for t in times.values())  # fmt: skip
    return times if done else None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def phase(sim: Simulator, config: Config, lane: Lane, *, count: int) -> list[str]:
    drop = config.intake.drop_dir
    assert drop is not None
    deposits = len(sim.state.deposits())
    names = [f"{lane.protocol.lower()}-{n:05d}.xml" for n in range(count)]
    start = time.time()
    for n, name in enumerate(names):
        data = ubl_invoice(f"B-{lane.protocol}-{n:05d}", issued=dt.date.today())
        drop_file(drop, environment=lane.environment, code=lane.code, name=name, data=data)
    await _until(lambda: len(sim.state.deposits()) - deposits >= count)
    out = time.time()
    ids = await _until(lambda: _message_ids(drop, lane, names))
    assert isinstance(ids, list)
    store = config.gateway.data_dir / "raccord.db"
    times = await _until(lambda: _complete(store, ids))
    assert isinstance(times, dict)
    latency = [t["acknowledged"][0] - t["accepted"][0] for t in times.values()]
    first = min(t["accepted"][0] for t in times.values())
    last = max(t["acknowledged"][0] for t in times.values())
    reports = max(t["integration_report"][0] for t in times.values())
    paid = max(t["paid"][0] for t in times.values())
    return [
        f"{count / (last - first):.1f}", f"{statistics.median(latency) * 1000:.0f}",
        f"{_pct(latency, 0.99) * 1000:.0f}", f"{max(latency) * 1000:.0f}",
        f"{out - start:.2f}", f"{reports - start:.2f}", f"{paid - start:.2f}",
    ]  # fmt: skip


async def paced(sim: Simulator, config: Config, lane: Lane, *, count: int) -> list[str]:
    """One invoice at a time: each dropped once the previous one is acknowledged."""
    drop = config.intake.drop_dir
    assert drop is not None
    store = config.gateway.data_dir / "raccord.db"
    latency: list[float] = []
    for n in range(count):
        name = f"{lane.protocol.lower()}-paced-{n:05d}.xml"
        data = ubl_invoice(f"P-{lane.protocol}-{n:05d}", issued=dt.date.today())
        drop_file(drop, environment=lane.environment, code=lane.code, name=name, data=data)
        ids = await _until(functools.partial(_message_ids, drop, lane, [name]))
        assert isinstance(ids, list)
        times = await _until(functools.partial(_acknowledged, store, ids))
        assert isinstance(times, dict)
        latency += [t["acknowledged"][0] - t["accepted"][0] for t in times.values()]
    return [  # no rate: the drop folder's scan interval paces this one
        "-", f"{statistics.median(latency) * 1000:.0f}",
        f"{_pct(latency, 0.99) * 1000:.0f}", f"{max(latency) * 1000:.0f}", "-", "-", "-",
    ]  # fmt: skip


def _acknowledged(store: Path, ids: list[str]) -> dict[str, dict[str, list[float]]] | None:
    times = _store_times(store, ids)
    return times if all("acknowledged" in t for t in times.values()) else None


def _ready(log: Path) -> bool:
    return b'"gateway_started"' in log.read_bytes()


async def main(args: argparse.Namespace) -> None:
    configure(level="warning", stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="raccord-e2e-"))
    source = REPO / "config" / "sandbox" / "raccord.yaml"
    pick = PortPicker()
    path = build(root, source=source, free_port=pick, now=dt.datetime.now(dt.UTC))
    env = {**os.environ, "RACCORD_ADMIN_PORT": str(pick())}
    config = load(path, env=env)
    log_path = root / "gateway.log"
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    timing = Timing(report_delay=0.0, status_interval=args.status_interval,
                    reject_share=0.0, suspend_share=0.0)  # fmt: skip
    sim = Simulator(config, Options(state_dir=root / "var" / "simulator", timing=timing,
                    feed=False, summary_every=0, tick=0.05, retry_cap=1.0))  # fmt: skip
    task = asyncio.create_task(sim.run())
    rows = []
    try:
        await _until(lambda: _ready(log_path), timeout=60)
        await asyncio.wait_for(sim.ready.wait(), 60)
        for lane in LANES:
            rows.append([lane.protocol, f"{args.invoices} at once",
                         *await phase(sim, config, lane, count=args.invoices)])  # fmt: skip
        for lane in LANES:
            rows.append([lane.protocol, f"{args.paced} one at a time",
                         *await paced(sim, config, lane, count=args.paced)])  # fmt: skip
    finally:
        sim.request_stop()
        await task
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    _print(rows, args)


def _print(rows: list[list[str]], args: argparse.Namespace) -> None:
    head = ["protocol", "invoices", "acked/s", "p50 ms", "p99 ms", "max ms",
            "all out s", "all reports s", "all paid s"]  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(
        "\nend to end per protocol: accepted -> acknowledged (gateway store events), and from the"
        f" drop folder to MISE_EN_PAIEMENT (status interval {args.status_interval} s)"
    )
    for row in [head, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100)
    parser.add_argument("--paced", type=int, default=20)
    parser.add_argument("--status-interval", type=float, default=0.1)
    asyncio.run(main(parser.parse_args()))
