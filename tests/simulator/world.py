"""A sandbox copy the simulator tests can run beside other tests: free ports, loopback TLS."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway.config_load import load
from gateway.simulator.campaign import PortPicker
from gateway.simulator.runner import prepare
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
