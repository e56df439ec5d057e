"""A real `raccord serve` process the campaign starts, SIGKILLs and starts again.

Each incarnation logs (JSON lines) to its own file, so what one process said before it was
killed stays readable; its admin port (chosen by the OS) is read from its `gateway_started`
event, and its `raccord_*` counters from that port's /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ENV = {**os.environ, "RACCORD_ADMIN_PORT": "0"}
Counters = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def log_events(log: Path) -> list[dict[str, Any]]:
    """Every JSON event of one log file (other lines skipped)."""
    found: list[dict[str, Any]] = []
    if not log.exists():
        return found
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if isinstance(event, dict):
                found.append(event)
    return found


def end(proc: subprocess.Popen[bytes], *, timeout: float) -> int:
    """SIGTERM a process still running, SIGKILL it after `timeout` seconds; its exit status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode


class GatewayProcess:
    """One gateway configuration run as successive processes (never two at once)."""

    def __init__(self, config: Path, logs: Path) -> None:
        self._config = config
        self._logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.incarnations = 0
        self.kills: list[float] = []  # monotonic times of the SIGKILLs

    @property
    def log(self) -> Path:
        return self._logs / f"gateway-{self.incarnations}.log"

    def logs(self) -> list[Path]:
        return [self._logs / f"gateway-{n}.log" for n in range(1, self.incarnations + 1)]

    def start(self) -> None:
        assert self._proc is None or self._proc.poll() is not None, "one gateway at a time"
        self.incarnations += 1
        self._port = None
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self._config)]
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ENV)

    async def started(self, *, timeout: float = 30.0) -> int:
        """The admin port, once this incarnation logged `gateway_started`."""
        deadline = time.monotonic() + timeout
        while self._port is None:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise AssertionError(f"the gateway exited with {self._proc.returncode}: {self.log}")
            events = await asyncio.to_thread(log_events, self.log)
            ports = [e["admin_port"] for e in events if e.get("event") == "gateway_started"]
            if ports:
                self._port = int(ports[0])
            elif time.monotonic() > deadline:
                raise AssertionError(f"no gateway_started in {timeout} s: {self.log}")
            else:
                await asyncio.sleep(0.1)
        return self._port

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed beyond what was already durable."""
        assert self._proc is not None
        assert self._proc.poll() is None, f"the gateway died on its own: {self.log}"
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(timeout=10)
        self.kills.append(time.monotonic())
        assert self._proc.returncode == -signal.SIGKILL

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 20 s); the exit status."""
        proc = self._proc
        if proc is None:
            return None
        return end(proc, timeout=20)

    async def counters(self, name: str) -> Counters:
        """One `raccord_*` counter family of the running incarnation, by labels."""
        port = await self.started()
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        found: Counters = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == f"{name}_total":
                    found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found


def total(counters: Counters, **labels: str) -> float:
    """The sum over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (_, have), value in counters.items() if wanted <= set(have))
