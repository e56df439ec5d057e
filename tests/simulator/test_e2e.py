"""End to end over AS2, SFTP and PeSIT: a real `raccord serve` process against the simulator.

The simulator starts first, so its first G2B invoice finds no gateway and is sent again once the
gateway is up; later the gateway is SIGKILLed right after a deposit and restarted under the
running simulator, and that invoice's chain still completes. Then a dropped invoice
goes out, its integration report and lifecycle statuses come back and are correlated, as
`raccord messages chain` shows; and the G2B invoice's status is answered with its report.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config_load import load
from gateway.simulator.desk import Timing
from gateway.simulator.feeder import drop_file
from gateway.simulator.runner import Options, Simulator
from gateway.simulator.samples import ubl_invoice
from tests.e2e.gateway_process import end
from tests.simulator.world import simulator_sandbox

pytestmark = pytest.mark.slow
ENV = {**os.environ, "RACCORD_ADMIN_PORT": "0"}


@contextlib.contextmanager
def gateway(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)]
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    try:
        yield proc
    finally:
        end(proc, timeout=15)


def _events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return [e for e in found if isinstance(e, dict)]


async def _until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def chain(config: Path, port: int, message_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "messages", "chain", message_id, "--json",
         "--config", str(config), "--url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _kinds(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(e["kind"], e["detail"].get("status")) for e in data["events"]]


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[tuple[Simulator, Path]]:
    config_path = simulator_sandbox(tmp_path)
    config = load(config_path, env={"RACCORD_ADMIN_PORT": "0"})
    timing = Timing(report_delay=0.2, status_interval=0.5, reject_share=0, suspend_share=0)
    options = Options(state_dir=tmp_path / "var" / "simulator", timing=timing, seed=1,
                      summary_every=0, tick=0.1)  # fmt: skip
    sim = Simulator(config, options)
    task = asyncio.create_task(sim.run())
    await asyncio.wait_for(sim.ready.wait(), 10)
    yield sim, config_path
    sim.request_stop()
    assert await asyncio.wait_for(task, 15) == 0


async def test_invoice_out_report_and_statuses_back_correlated(
    simulator: tuple[Simulator, Path], tmp_path: Path
) -> None:
    sim, config = simulator
    log = tmp_path / "gateway.log"
    with gateway(config, log):
        port = await _started(log)
        await _b2g_chain(config, port, environment="qual", protocol="as2")
        await _b2g_chain(config, port, environment="prod", protocol="pesit")
        await _g2b_answered(sim, config, port, environment="prod")
        await _g2b_answered(sim, config, port, environment="qual")
    await _survives_a_gateway_kill(sim, config, tmp_path)


async def _started(log: Path) -> int:
    started = await _until("gateway_started", lambda: [
        e for e in _events(log) if e.get("event") == "gateway_started"])  # fmt: skip
    port: int = started[0]["admin_port"]
    return port


async def _survives_a_gateway_kill(sim: Simulator, config: Path, tmp_path: Path) -> None:
    """SIGKILL the gateway right after a deposit: what the simulator owes waits, then arrives."""
    before = len(sim.state.deposits())
    drop = config.parent.parent.parent / "var" / "drop"
    data = ubl_invoice("KILL-1", issued=dt.date.today())
    await asyncio.to_thread(drop_file, drop, environment="qual", code="FSO1100A",
                            name="kill-1.xml", data=data)  # fmt: skip
    log = tmp_path / "gateway-2.log"
    with gateway(config, log) as proc:
        await _started(log)
        await _until("the deposit", lambda: len(sim.state.deposits()) > before)
        proc.kill()
    await asyncio.sleep(0.5)  # reports fall due while no gateway listens
    log = tmp_path / "gateway-3.log"
    with gateway(config, log):
        port = await _started(log)
        await _b2g_chain(config, port, environment="qual", protocol="as2", name="kill-1.xml")


async def _b2g_chain(
    config: Path, port: int, *, environment: str, protocol: str, name: str = "*"
) -> None:
    """The dropped UBL invoice went out over `protocol`; its report and every status came back
    and are correlated with it (AS2 on QUAL: b2g-qual-as2, PeSIT on PROD: b2g-prod-pesit)."""
    receipt = config.parent.parent.parent / f"var/drop/done/{environment}/FSO1100A"
    found = await _until("the drop receipt", lambda: list(receipt.glob(f"{name}.receipt.json")))
    message_id = json.loads(found[0].read_text())["message_id"]

    def complete() -> dict[str, Any] | None:
        data = chain(config, port, message_id)
        kinds = _kinds(data)
        statuses = [s for k, s in kinds if k == "lifecycle_status"]
        reported = any(k == "integration_report" for k, _ in kinds)
        return data if reported and "MISE_EN_PAIEMENT" in statuses else None

    data = await _until(f"the whole lifecycle over {protocol}", complete, timeout=40)
    assert data["message"]["connection"] == f"b2g-{environment}-{protocol}"
    kinds = _kinds(data)
    assert "acknowledged" in [k for k, _ in kinds]
    assert ("integration_report", "integrated") in kinds
    first_status = next(i for i, (k, _) in enumerate(kinds) if k == "lifecycle_status")
    assert kinds.index(("integration_report", "integrated")) < first_status  # report first
    statuses = [s for k, s in kinds if k == "lifecycle_status"]
    assert statuses == ["DEPOSEE", "MISE_A_DISPOSITION", "SERVICE_FAIT", "MANDATEE",
                        "MISE_EN_PAIEMENT"]  # fmt: skip
    codes = {link["message"]["interface_code"] for link in data["related"]}
    assert codes == {"CSO1100A", "FEN1200A"}
    assert {link["message"]["protocol"] for link in data["related"]} == {protocol}


async def _g2b_answered(sim: Simulator, config: Path, port: int, *, environment: str) -> None:
    """The G2B invoice (sent again once the gateway was up) got a status, answered by XGB0003A:
    over AS2 on PROD (g2b-prod-as2), over SFTP on QUAL (g2b-qual-sftp)."""
    await _until("the G2B invoices", lambda: len(sim.state.issued_invoices()) == 2)
    assert {c for c, _, _ in sim.state.issued_invoices()} == {"g2b-prod-as2", "g2b-qual-sftp"}
    with contextlib.closing(sqlite3.connect(sim.state.path)) as db:
        tries = db.execute("SELECT attempts, last_error FROM outbox WHERE kind = 'invoice'")
        assert all(attempts >= 1 and error for attempts, error in tries)  # no gateway at first
    receipts = config.parent.parent.parent / f"var/drop/done/{environment}/XGB0002A"
    found = await _until("the G2B status receipt", lambda: list(receipts.glob("*.receipt.json")))
    status_id = json.loads(found[0].read_text())["message_id"]

    def answered() -> dict[str, Any] | None:
        data = chain(config, port, status_id)
        codes = {link["message"]["interface_code"] for link in data["related"]}
        return data if {"XGB0001A", "XGB0003A"} <= codes else None

    await _until("the G2B report", answered)
