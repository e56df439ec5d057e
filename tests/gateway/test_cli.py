"""The `raccord` command line, run in-process on the sandbox configuration."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.model import Direction
from gateway.store import Submission
from gateway.store.sqlite import open_store
from tests.sandbox import make_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("cli"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_config_valid_prints_table(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check-config", str(sandbox))
    assert code == 0
    assert "b2g-prod-pesit  prod  b2g      pesit" in out
    assert out.rstrip().endswith("valid, 4 connection(s)")
    assert "no RGS policy nor eIDAS QWAC marker" in out


def test_check_config_lists_every_problem(
    tmp_path: Path, sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = sandbox.read_text().replace('"98765432400019"', '"12345678901234"', 1)
    bad.write_text(
        text.replace("circuit: b2g\n    protocol: pesit", "circuit: g2b\n    protocol: pesit")
    )
    code, out, _ = run(capsys, "check-config", str(bad), "--no-files")
    assert code == 2
    lines = out.splitlines()
    assert "connections[0].structure: SIRET 12345678901234 fails its check digit" in lines
    assert "connections[2].protocol: PeSIT is accepted for B2G only" in lines


def test_connections_lifecycle_from_the_cli(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(sandbox)]
    code, out, _ = run(capsys, "connections", "list", *config)
    assert code == 0
    assert "b2g-qual-as2" in out
    code, out, _ = run(capsys, "connections", "set-status", "b2g-qual-as2", "inactif", *config)
    assert code == 0
    assert "b2g-qual-as2: inactif" in out
    code, _, err = run(capsys, "connections", "set-status", "b2g-qual-as2", "brouillon", *config)
    assert code == 1
    assert "cannot go from inactif to brouillon" in err
    code, out, _ = run(capsys, "connections", "history", "b2g-qual-as2", *config)
    assert code == 0
    assert "created" in out
    assert any(line.split()[3:6] == ["actif", "inactif", "status"] for line in out.splitlines())
    code, out, _ = run(capsys, "connections", "show", "g2b-qual-sftp", *config)
    assert '"protocol": "sftp"' in out
    code, _, err = run(capsys, "connections", "show", "nope", *config)
    assert code == 1


def test_certs_commands(sandbox: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ["--config", str(sandbox)]
    p7b = tmp_path / "chain.p7b"
    code, out, _ = run(capsys, "certs", "export-p7b", "b2g-qual-as2", "--output", str(p7b), *config)
    assert code == 0
    printed = subprocess.run(
        ["openssl", "pkcs7", "-print_certs", "-in", str(p7b)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "subject=C = FR, O = Raccord sandbox, CN = b2g-qual-as2" in printed.stdout
    assert "PRIVATE" not in p7b.read_text()
    code, out, _ = run(capsys, "certs", "inspect", str(p7b))
    assert code == 0
    assert "CN=b2g-qual-as2" in out
    code, out, _ = run(
        capsys,
        "certs",
        "new",
        "b2g-qual-as2",
        "--role",
        "client",
        "--output-dir",
        str(tmp_path),
        *config,
    )
    assert code == 0
    key = tmp_path / "b2g-qual-as2-client.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    verify = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(tmp_path / "b2g-qual-as2-client.csr")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "verify OK" in verify.stdout + verify.stderr
    code, _, err = run(
        capsys,
        "certs",
        "new",
        "b2g-qual-as2",
        "--role",
        "client",
        "--output-dir",
        str(tmp_path),
        *config,
    )
    assert code == 1
    assert "refusing to overwrite" in err


def test_messages_commands(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> str:
        store = await open_store(sandbox.parent.parent.parent / "var" / "data")
        try:
            receipt = await store.accept(
                b"<Invoice/>",
                Submission(
                    source="api",
                    direction=Direction.EMISSION,
                    interface_code="FSO1100A",
                    protocol="api",
                    file_name="f.xml",
                ),
            )
            await store.route(receipt.message_id, connection="b2g-qual-as2")
            return receipt.message_id
        finally:
            await store.close()

    message_id = asyncio.run(seed())
    config = ["--config", str(sandbox)]
    code, out, _ = run(capsys, "messages", "list", "--interface", "FSO1100A", *config)
    assert code == 0
    assert message_id in out
    assert "queued" in out
    code, out, _ = run(capsys, "messages", "show", message_id, *config)
    assert code == 0
    assert "accepted" in out
    assert "sha256" in out
    code, _, err = run(capsys, "messages", "retry", message_id, *config)
    assert code == 1
    assert message_id in err
    code, _, err = run(capsys, "messages", "show", "nope", *config)
    assert code == 1
