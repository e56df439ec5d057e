"""The PeSIT settings of a sheet: defaults from the sheet, and refusals named by field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config_load import ConfigErrors, load
from gateway.settings import settings_of
from gateway.settings.pesit import PesitSettings
from tests.sandbox import make_sandbox

INDEX = 2  # b2g-prod-pesit in the sandbox file


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("sandbox"))


def _with_settings(sandbox: Path, tmp_path: Path, settings: dict[str, Any]) -> Path:
    raw = yaml.safe_load(sandbox.read_text())
    raw["connections"][INDEX]["settings"] = settings
    raw.pop("x-contact", None)
    raw.pop("x-validity", None)
    target = sandbox.parent / f"{tmp_path.name}.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load(path, env={"RACCORD_ADMIN_PORT": "0"}, check_files=False)
    return [str(e) for e in caught.value.errors]


def test_defaults_come_from_the_sheet(sandbox: Path) -> None:
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"}, check_files=False)
    conn = config.connections[INDEX]
    settings = settings_of(conn, PesitSettings)
    assert settings.our_id(conn) == "PAB2GPRD"  # the Part ID
    assert settings.aife_id(conn) == "CPRO"  # the exchange system
    assert settings.listen_address(conn) == ("127.0.0.1", 18462)
    assert settings.virtual_name("FSO1100A") == "FSO1100A"  # PI 12 is the code
    assert settings.pulled_codes(conn) == conn.subscriptions.reception
    assert settings.pull_interval is None  # no polling unless asked
    assert (settings.sync_interval_kb, settings.sync_window) == (32, 16)


def test_mapped_names_and_overrides(sandbox: Path, tmp_path: Path) -> None:
    path = _with_settings(
        sandbox,
        tmp_path,
        {
            "local_id": "PA-ID-2",
            "remote_id": "AIFEPRD",
            "file_names": {"FEN1200A": "cpro.cycle"},
            "listen_port": 1762,
            "password": "${PESIT_PASSWORD}",
            "pull_interval": 60,
        },
    )
    config = load(path, env={"RACCORD_ADMIN_PORT": "0", "PESIT_PASSWORD": "pw1"}, check_files=False)
    conn = config.connections[INDEX]
    settings = settings_of(conn, PesitSettings)
    assert (settings.our_id(conn), settings.aife_id(conn)) == ("PA-ID-2", "AIFEPRD")
    assert settings.virtual_name("FEN1200A") == "cpro.cycle"
    assert settings.codes_by_name() == {"CPRO.CYCLE": "FEN1200A"}
    assert settings.listen_address(conn) == ("127.0.0.1", 1762)
    assert settings.password is not None
    assert settings.password.get_secret_value() == "pw1"


@pytest.mark.parametrize(
    ("settings", "field", "reason"),
    [
        ({"password": "longer-than-8"}, "settings.password", "at most 8"),
        ({"password": "pw", "password_file": "/x"}, "settings", "not both"),
        ({"local_id": "x" * 25}, "settings.local_id", "at most 24"),
        ({"sync_window": 256}, "settings.sync_window", "less than or equal to 255"),
        ({"entity_size": 10}, "settings.entity_size", "greater than or equal to 64"),
        ({"article_size": 0}, "settings.article_size", "greater than or equal to 1"),
        ({"file_names": {"FSO1100A": "X", "FSO1106A": "x"}}, "settings.file_names", "one code"),
        ({"file_names": {"not-a-code": "X"}}, "settings.file_names.not-a-code.[key]", ""),
        ({"preconnection": {"caller_id": "TOO-LONG-ID"}}, "settings.preconnection.caller_id", ""),
        ({"timers": {"tp": 0}}, "settings.timers.tp", "greater than 0"),
        ({"tls_min_version": "1.1"}, "settings.tls_min_version", ""),
        ({"listen_port": 70000}, "settings.listen_port", ""),
        ({"passwrd": "typo"}, "settings.passwrd", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_at_load_with_their_path(
    sandbox: Path, tmp_path: Path, settings: dict[str, Any], field: str, reason: str
) -> None:
    problems = _problems(_with_settings(sandbox, tmp_path, settings))
    where = f"connections[{INDEX}].{field}"
    assert any(p.startswith(f"{where}:") and reason in p for p in problems), problems
