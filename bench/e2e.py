"""The whole circuit, timed: drop folder -> gateway -> Chorus Pro simulator -> reports and
statuses back, correlated. One phase per B2G protocol of the sandbox (AS2 on QUAL, PeSIT on PROD).

    python bench/e2e.py [--invoices 50] [--status-interval 0.1]

A real `raccord serve` process runs on a private copy of config/sandbox (free ports, its own
certificates); the simulator runs in this process. Each phase drops N UBL invoices at once and
reports, from the moment they are in the drop folder: when the simulator holds all N deposits
(flows out), when the gateway has correlated all N integration reports, and when every invoice
reached MISE_EN_PAIEMENT (five lifecycle flows each, `--status-interval` apart, so that part
is paced by the simulator). Counters are read from the gateway's /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.config_load import load
from gateway.logging import configure
from gateway.sandbox_pki import ensure_sandbox_certificates
from gateway.simulator.desk import Timing
from gateway.simulator.feeder import drop_file
from gateway.simulator.runner import Options, Simulator, prepare
from gateway.simulator.samples import ubl_invoice

REPO = Path(__file__).resolve().parent.parent
PORTS = ("18501", "18401", "18502", "18402", "18522", "18422", "18562", "18462")
SFTP = """    protocol: sftp
    settings:
      known_hosts: ../../certs/sandbox/aife-qual-sftp.known_hosts
      remote_dirs: {XGB0002A: /out/XGB0002A}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sandbox(root: Path) -> Path:
    """A private sandbox: free ports, hostname checks off for 127.0.0.1, SFTP pins written."""
    config = root / "config" / "sandbox" / "raccord.yaml"
    config.parent.mkdir(parents=True)
    text = (REPO / "config" / "sandbox" / "raccord.yaml").read_text()
    for port in PORTS:
        text = text.replace(f"port: {port}", f"port: {_free_port()}")
    text = text.replace(
        "    protocol: as2\n", "    protocol: as2\n    settings: {tls_verify_hostname: false}\n"
    )
    config.write_text(text.replace("    protocol: sftp\n", SFTP))
    loaded = load(config, check_files=False, env={"RACCORD_ADMIN_PORT": "0"})
    ensure_sandbox_certificates(loaded, now=dt.datetime.now(dt.UTC))
    prepare(loaded)
    return config


async def counters(port: int) -> dict[tuple[str, str], float]:
    """raccord_lifecycle_statuses_total by (interface code, status)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "raccord_lifecycle_statuses":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["interface_code"], sample.labels["status"])
                    found[key] = sample.value
    return found


async def until(check: Callable[[], object], *, timeout: float = 300.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError("the circuit did not complete in time")


async def phase(sim: Simulator, drop: Path, port: int, *, env: str, count: int) -> list[str]:
    before = await counters(port)
    deposits = len(sim.state.deposits())
    start = time.perf_counter()
    for n in range(count):
        data = ubl_invoice(f"B-{env}-{n:05d}", issued=dt.date.today())
        drop_file(drop, environment=env, code="FSO1100A", name=f"b-{n:05d}.xml", data=data)

    async def grown(code: str, status: str) -> bool:
        now = await counters(port)
        return now.get((code, status), 0) - before.get((code, status), 0) >= count

    out = await until(lambda: len(sim.state.deposits()) - deposits >= count)
    reports = await until(lambda: grown("CSO1100A", "integrated"))
    paid = await until(lambda: grown("FEN1200A", "MISE_EN_PAIEMENT"))
    return [f"{out - start:.2f}", f"{reports - start:.2f}", f"{paid - start:.2f}",
            f"{count / (paid - start):.1f}"]  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    configure(level="warning", stream=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="raccord-e2e-"))
    config = sandbox(root)
    env = {**os.environ, "RACCORD_ADMIN_PORT": str(_free_port())}
    log = (root / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    timing = Timing(report_delay=0.0, status_interval=args.status_interval,
                    reject_share=0.0, suspend_share=0.0)  # fmt: skip
    sim = Simulator(load(config, env=env), Options(state_dir=root / "var" / "simulator",
                    timing=timing, feed=False, summary_every=0, tick=0.05))  # fmt: skip
    task = asyncio.create_task(sim.run())
    rows = []
    try:
        port = int(env["RACCORD_ADMIN_PORT"])
        await until(lambda: _ready(root / "gateway.log"), timeout=60)
        for env_name, protocol in (("qual", "AS2"), ("prod", "PeSIT")):
            drop = root / "var" / "drop"
            timings = await phase(sim, drop, port, env=env_name, count=args.invoices)
            rows.append([protocol, str(args.invoices), *timings])
    finally:
        sim.request_stop()
        await task
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
    _print(rows, args)


def _ready(log: Path) -> bool:
    for line in log.read_text(errors="replace").splitlines():
        try:
            if json.loads(line).get("event") == "gateway_started":
                return True
        except (json.JSONDecodeError, AttributeError):
            continue
    return False


def _print(rows: list[list[str]], args: argparse.Namespace) -> None:
    head = ["protocol", "invoices", "all out s", "all reports s", "all paid s", "invoices/s"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(
        f"\nend to end, drop folder to MISE_EN_PAIEMENT (status interval {args.status_interval} s)"
    )
    for row in [head, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=50)
    parser.add_argument("--status-interval", type=float, default=0.1)
    asyncio.run(main(parser.parse_args()))
