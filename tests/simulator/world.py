"""A sandbox copy the simulator tests can run beside other tests: free ports, loopback TLS."""

from __future__ import annotations

import datetime as dt
import random
import socket
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config, ConnectionConfig
from gateway.config_load import load
from gateway.config_rules import catalogue_for
from gateway.simulator.campaign import PortPicker
from gateway.simulator.desk import Desk, Timing
from gateway.simulator.runner import prepare
from gateway.simulator.state import SimulatorState
from tests.sandbox import make_sandbox

SANDBOX_PORTS = ("18501", "18401", "18502", "18402", "18522", "18422", "18562", "18462")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def simulator_sandbox(root: Path) -> Path:
    """make_sandbox, with free ports instead of the fixed ones (the SFTP pins follow): never
    the same twice, never in the ephemeral range (see `PortPicker`)."""
    config = make_sandbox(root)
    text = config.read_text()
    pick = PortPicker()
    for port in SANDBOX_PORTS:
        text = text.replace(f"port: {port}", f"port: {pick()}")
    text = text.replace("  shutdown_timeout: 10", "  shutdown_timeout: 3")
    config.write_text(text)
    prepare(load(config, check_files=False, env={"RACCORD_ADMIN_PORT": "0"}))
    return config


@dataclass
class Aife:
    """One simulated AIFE side's world: the config, its connection, its state and its desk."""

    config: Config
    conn: ConnectionConfig
    state: SimulatorState
    desk: Desk


def aife_world(sandbox: Path, folder: Path, connection: str) -> Aife:
    """The simulator's desk for `connection` of a sandbox, its state under `folder`."""
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    conn = next(c for c in config.connections if c.name == connection)
    state = SimulatorState(folder / "sim.sqlite3")
    desk = Desk(config=config, catalogue=catalogue_for(config), state=state,
                folder=folder / "received", timing=Timing(),
                clock=lambda: dt.datetime.now(dt.UTC), draw=random.Random(1))  # fmt: skip
    return Aife(config, conn, state, desk)
