"""`raccord sandbox`, registered on a parser the way gateway/cli.py will."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from gateway.cli_sandbox import register
from gateway.config_load import load
from protocols.sftp.keys import load_known_hosts
from tests.simulator.world import simulator_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator_sandbox(tmp_path_factory.mktemp("sandbox"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raccord")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    return parser


def test_defaults_follow_the_gateway_defaults() -> None:
    args = _parser().parse_args(["sandbox"])
    assert args.config == Path("config/sandbox/raccord.yaml")
    assert (args.report_delay, args.status_interval) == (2.0, 4.0)
    assert (args.reject_share, args.suspend_share) == (0.15, 0.10)
    assert not args.no_feed
    assert args.duration is None


@pytest.mark.parametrize("argv", [["--reject-share", "1.5"], ["--suspend-share", "-0.1"],
                                  ["--status-interval", "-1"], ["--seed", "x"]])  # fmt: skip
def test_nonsense_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["sandbox", *argv])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_invalid_config_exits_2_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("connections: [{name: x}]\n")
    args = _parser().parse_args(["sandbox", "--config", str(bad)])
    assert args.handler(args) == 2
    assert "connections[0].structure" in capsys.readouterr().err


@pytest.mark.parametrize("taken", ["b2g-qual-as2", "g2b-qual-sftp", "b2g-prod-pesit"])
def test_a_busy_port_stops_one_side_not_the_simulator(
    taken: str, sandbox: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = sandbox
    root = sandbox.parent.parent.parent
    conn = next(c for c in load(config, check_files=False).connections if c.name == taken)
    args = _parser().parse_args(["sandbox", "--config", str(config), "--no-feed",
                                 "--duration", "0.5", "--summary-every", "0.1"])  # fmt: skip
    with socket.socket() as squatter:
        squatter.bind((conn.network.aife.host, conn.network.aife.port))
        squatter.listen()
        assert args.handler(args) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "not running" in rows[taken]
    assert all("not running" not in row for name, row in rows.items() if name != taken)
    assert (root / "var" / "simulator" / "simulator.sqlite3").is_file()
    assert not (root / "var" / "drop" / "qual").exists()  # --no-feed


def test_prepare_writes_the_sftp_pin_the_gateway_loads(
    sandbox: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = sandbox
    pin = sandbox.parent.parent.parent / "certs" / "sandbox" / "aife-qual-sftp.known_hosts"
    pin.unlink()
    args = _parser().parse_args(["sandbox", "--config", str(config), "--prepare"])
    assert args.handler(args) == 0
    assert "aife-qual-sftp.known_hosts" in capsys.readouterr().out
    [line] = pin.read_text().splitlines()
    assert line.split()[1] == "ssh-rsa"
    assert load_known_hosts(pin)  # what the gateway's SFTP client reads
