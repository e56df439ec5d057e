"""The daemon on real sockets: health, readiness, metrics, SIGHUP reload, SIGTERM drain."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from cryptography import x509

from gateway import credentials, metrics, plug_sftp, start_retry
from gateway.config import ConnectionConfig
from gateway.credentials import CredentialSet
from gateway.daemon import Daemon
from gateway.errors import ConfigError, ConnectionStateError
from gateway.model import ConnectionStatus, Protocol
from gateway.store.sqlite import open_store
from tests.sandbox import make_sandbox, sandbox_crl


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("sandbox"))


async def _get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def _admin_port(daemon: Daemon) -> int:
    """Once the daemon has its context and its admin server bound (services may still start)."""
    for _ in range(200):
        if daemon.admin is not None and daemon.admin.bound_port and daemon.context:
            break
        await asyncio.sleep(0.05)
    assert daemon.admin is not None
    port = daemon.admin.bound_port
    assert port
    return port


async def _serving(daemon: Daemon) -> None:
    """Until the daemon has its context and every listener is up."""
    for _ in range(200):
        if daemon.context is not None and (await daemon.readiness())["listeners"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the daemon never served")


def _with_crl(config: Path, *more: str) -> None:
    """The sandbox configuration naming the sandbox CA's CRL file (`ca.crl`), and `more`
    lines of the `gateway:` block."""
    lines = "".join(f"  {line}\n" for line in ("crls: [../../certs/sandbox/ca.crl]", *more))
    anchor = "  shutdown_timeout: 10\n"
    config.write_text(config.read_text().replace(anchor, anchor + lines, 1))


async def test_admin_endpoints_and_clean_stop(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    daemon = Daemon(sandbox, install_signals=False)
    task = asyncio.create_task(daemon.run())
    port = await _admin_port(daemon)
    assert await _get(port, "/healthz") == (200, '{"status": "ok"}')
    for _ in range(100):  # the admin port opens before the services: 503 until they are up
        status, body = await _get(port, "/readyz")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200, body
    assert json.loads(body)["checks"] == {"config": True, "store": True, "listeners": True}
    status, text = await _get(port, "/metrics")
    assert status == 200
    assert 'raccord_build_info{version="0.1.0"} 1.0' in text
    assert 'raccord_connection_status{connection="b2g-qual-as2",status="actif"} 1.0' in text
    assert "raccord_certificate_expiry_timestamp_seconds" in text
    assert 'raccord_outbox_pending{connection="g2b-prod-as2"} 0.0' in text
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_material_is_loaded_and_sftp_planned_once_per_start_and_once_per_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configuration's check loads every certificate, key and CRL, and plans SFTP (key
    and passphrase files read, one key per account); the daemon and its SFTP service then run
    with what was loaded and planned instead of reading it all again."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    calls: list[str] = []
    real_load = credentials._load_revocations  # once per loading, whoever imported the loader
    real_plan = plug_sftp.client_plan

    def loaded(paths: Sequence[Path], errors: list[ConfigError]) -> Any:
        calls.append("load")
        return real_load(paths, errors)

    def planned(conn: ConnectionConfig, creds: CredentialSet) -> plug_sftp.ClientPlan:
        calls.append(conn.name)
        return real_plan(conn, creds)

    monkeypatch.setattr(credentials, "_load_revocations", loaded)
    monkeypatch.setattr(plug_sftp, "client_plan", planned)
    daemon = Daemon(make_sandbox(tmp_path), install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await _serving(daemon)
        assert daemon.context is not None
        sheets = [c.name for c in daemon.context.config.connections if c.protocol is Protocol.SFTP]
        assert sheets
        assert sorted(calls) == sorted(["load", *sheets])
        assert await daemon.reload()
        assert sorted(calls) == sorted(["load", *sheets] * 2)
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0


async def test_a_listener_port_taken_at_start_is_retried_and_readiness_waits_for_it(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon runs (admin, other listeners) and says not ready until the AS2 port binds."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    monkeypatch.setattr(start_retry, "FIRST_DELAY", 0.05)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 18401))  # b2g-qual-as2's listener in the sandbox
    blocker.listen()
    daemon = Daemon(sandbox, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        port = await _admin_port(daemon)
        for _ in range(6):
            status, body = await _get(port, "/readyz")
            assert status == 503, body
            await asyncio.sleep(0.1)
        assert json.loads(body)["checks"]["listeners"] is False
        failed = (
            'raccord_service_start_failures_total{service="as2-listener http://127.0.0.1:18401"}'
        )
        counted = (await _get(port, "/metrics"))[1].splitlines()
        assert any(line.startswith(failed) and float(line.split()[-1]) >= 1 for line in counted)
        blocker.close()
        for _ in range(100):
            status, body = await _get(port, "/readyz")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200, body
        async with (  # ours now, and serving: an AS2 endpoint takes POSTs only
            aiohttp.ClientSession() as session,
            session.get("http://127.0.0.1:18401/as2") as response,
        ):
            assert response.status == 405
    finally:
        blocker.close()
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0


async def test_a_reload_bringing_a_crl_stops_the_revoked_connection_and_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator drops the CA's new CRL in place and sends SIGHUP: the reload is applied
    (never refused for a revocation) and only the connection whose certificate is listed stops."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = make_sandbox(tmp_path)
    certs = config.parent.parent.parent / "certs" / "sandbox"
    daemon = Daemon(config, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await _serving(daemon)
        assert daemon.context is not None
        (certs / "ca.crl").write_bytes(sandbox_crl(config, "b2g-qual-as2"))
        _with_crl(config)
        assert await daemon.reload()
        registry = daemon.context.registry
        with pytest.raises(ConnectionStateError, match=r"b2g-qual-as2.* was revoked"):
            registry.check_traffic("b2g-qual-as2", now=dt.datetime.now(dt.UTC))
        assert registry.check_traffic("g2b-qual-sftp", now=dt.datetime.now(dt.UTC))
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0


def _replace(path: Path, data: bytes) -> None:
    """As a PKI's tooling or a cron job would: a new file renamed over the old one."""
    part = path.with_suffix(".new")
    part.write_bytes(data)
    os.replace(part, path)


async def _until(check: Callable[[], bool], *, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_a_crl_replaced_on_disk_takes_effect_without_sighup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon looks at its CRL files every `crl_check_interval`: a new list revoking a
    connection's certificate is applied by itself; a broken one is refused once (not every
    interval) and the running configuration stays."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = make_sandbox(tmp_path)
    crl_file = config.parent.parent.parent / "certs" / "sandbox" / "ca.crl"
    crl_file.write_bytes(sandbox_crl(config))  # lists nothing yet
    _with_crl(config, "crl_check_interval: 0.1")
    reloads = metrics.CONFIG_RELOADS
    applied, rejected = reloads.labels("applied"), reloads.labels("rejected")
    daemon = Daemon(config, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await _serving(daemon)
        assert daemon.context is not None
        now = dt.datetime.now(dt.UTC)
        assert daemon.context.registry.check_traffic("b2g-qual-as2", now=now)
        applied_before, rejected_before = applied._value.get(), rejected._value.get()

        _replace(crl_file, sandbox_crl(config, "b2g-qual-as2"))

        def revoked() -> bool:
            assert daemon.context is not None
            try:
                daemon.context.registry.check_traffic("b2g-qual-as2", now=now)
            except ConnectionStateError:
                return True
            return False

        await _until(lambda: applied._value.get() == applied_before + 1)  # reload complete
        assert revoked()
        assert daemon.context.registry.check_traffic("g2b-qual-sftp", now=now)

        _replace(crl_file, b"not a CRL at all")
        await _until(lambda: rejected._value.get() == rejected_before + 1)
        await asyncio.sleep(0.5)  # five more looks at the same broken file
        assert rejected._value.get() == rejected_before + 1
        assert applied._value.get() == applied_before + 1
        assert revoked()  # the configuration that was running still is
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("connections: [{name: x}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["event"] == "config_invalid"
    assert "connections[0].structure: Field required" in event["problems"]


class Gateway:
    """`raccord serve` as a child process, read through its JSON log lines."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "RACCORD_ADMIN_PORT": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.events: list[dict[str, Any]] = []

    def wait_for(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        stream: IO[str] | None = self.proc.stdout
        assert stream is not None
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                break
            try:
                event: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name} event; saw {[e.get('event') for e in self.events]}")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    config = make_sandbox(tmp_path)
    running = Gateway(config)
    yield running, config
    if running.proc.poll() is None:
        running.proc.kill()
    running.proc.wait()
    if running.proc.stdout is not None:
        running.proc.stdout.close()


@pytest.mark.slow
def test_sighup_keeps_old_config_when_new_one_is_invalid_and_sigterm_exits_0(
    gateway: tuple[Gateway, Path],
) -> None:
    running, config = gateway
    running.wait_for("gateway_started")
    original = config.read_text()
    config.write_text(original.replace('structure: "98765432400019"', 'structure: "1"', 1))
    running.proc.send_signal(signal.SIGHUP)
    rejected = running.wait_for("config_reload_rejected")
    assert any("structure" in p for p in rejected["problems"])
    config.write_text(original.replace("[XGB0001A, XGB0003A]", "[XGB0001A]", 1))
    running.proc.send_signal(signal.SIGHUP)
    running.wait_for("config_reloaded")
    running.proc.send_signal(signal.SIGTERM)
    running.wait_for("gateway_stopped")
    assert running.proc.wait(timeout=30) == 0


@pytest.mark.slow
async def test_modified_sheet_goes_back_en_cours_with_history(
    gateway: tuple[Gateway, Path],
) -> None:
    running, config = gateway
    running.wait_for("gateway_started")
    text = config.read_text()
    config.write_text(text.replace("[XGB0001A, XGB0003A]", "[XGB0001A]", 1))
    running.proc.send_signal(signal.SIGHUP)
    running.wait_for("config_reloaded")
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0
    store = await open_store(config.parent.parent.parent / "var" / "data")
    try:
        assert await store.connection_status("g2b-qual-sftp") is ConnectionStatus.EN_COURS
        assert await store.connection_status("b2g-qual-as2") is ConnectionStatus.ACTIF
        history = await store.connection_history("g2b-qual-sftp")
        assert [h.change["event"] for h in history] == ["created", "modified"]
        assert list(history[-1].change["changes"]) == ["subscriptions"]  # type: ignore[call-overload]
    finally:
        await store.close()


@pytest.mark.slow
def test_operator_commands_work_while_the_daemon_runs(tmp_path: Path) -> None:
    config = make_sandbox(tmp_path)
    text = config.read_text().replace(
        "  shutdown_timeout: 10", "  shutdown_timeout: 10\n  housekeeping_interval: 0.2"
    )
    config.write_text(text)
    running = Gateway(config)
    try:
        port = running.wait_for("gateway_started")["admin_port"]
        _operator_commands(config, running, port)
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
        running.proc.wait()
        if running.proc.stdout is not None:
            running.proc.stdout.close()


def _operator_commands(config: Path, running: Gateway, port: int) -> None:
    def raccord(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *argv, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = raccord("connections", "list")
    assert listed.returncode == 0, listed.stderr
    assert "b2g-prod-pesit" in listed.stdout
    changed = raccord("connections", "set-status", "b2g-prod-pesit", "inactif")
    assert changed.returncode == 0, changed.stderr
    assert raccord("messages", "list").returncode == 0
    running.wait_for("connection_status_changed")
    metrics_text = asyncio.run(_get(port, "/metrics"))[1]
    assert 'raccord_connection_status{connection="b2g-prod-pesit",status="inactif"} 1.0' in (
        metrics_text
    )
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=30) == 0


async def test_certificate_close_to_expiry_raises_a_warning_event(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=810)  # sandbox certificates last 825
    daemon = Daemon(sandbox, install_signals=False, clock=lambda: late)
    task = asyncio.create_task(daemon.run())
    for _ in range(200):
        if daemon.context is not None and daemon.admin is not None and daemon.admin.bound_port:
            break
        await asyncio.sleep(0.05)
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    expiring = [e for e in events if e["event"] == "certificate_expiring"]
    assert {e["connection"] for e in expiring} >= {"b2g-qual-as2", "g2b-prod-as2"}
    assert all(0 <= e["days_left"] <= 30 for e in expiring)


async def test_a_stale_crl_is_a_gauge_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CRL past its nextUpdate still counts, but revocations since then are unknown:
    housekeeping exposes each CRL's due date and warns (once a day) about one that passed."""
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = make_sandbox(tmp_path)
    stale = sandbox_crl(config, next_update=-dt.timedelta(days=1))  # issued 2 days ago
    (config.parent.parent.parent / "certs" / "sandbox" / "ca.crl").write_bytes(stale)
    _with_crl(config)
    due = x509.load_der_x509_crl(stale).next_update_utc
    assert due is not None
    daemon = Daemon(config, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await _serving(daemon)
        assert daemon.admin is not None
        _, text = await _get(daemon.admin.bound_port or 0, "/metrics")
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0
    series = 'raccord_crl_next_update_timestamp_seconds{crl="gateway.crls[0]"} '
    [value] = [line.removeprefix(series) for line in text.splitlines() if line.startswith(series)]
    assert float(value) == due.timestamp()
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [warned] = [e for e in events if e["event"] == "crl_stale"]
    assert warned["crl"] == "gateway.crls[0]"
    assert warned["days_late"] == 1
