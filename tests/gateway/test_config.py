"""Every configuration rule of the connection sheet, hostile first, each with its own test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config_load import ConfigErrors, load
from tests.gateway.conftest import connection

WriteConfig = Callable[[dict[str, Any]], Path]


def problems(write_config: WriteConfig, data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data), check_files=False, **kwargs)
    return [str(e) for e in caught.value.errors]


def one_problem(write_config: WriteConfig, data: dict[str, Any]) -> str:
    found = problems(write_config, data)
    assert len(found) == 1, found
    return found[0]


def test_valid_config_loads(write_config: WriteConfig) -> None:
    config = load(write_config({"connections": [connection()]}), check_files=False)
    assert config.connections[0].contact.phone == "+33123456789"
    assert config.connection("b2g-qual") is config.connections[0]


@pytest.mark.parametrize(
    ("structure", "reason"),
    [
        ("12345678901234", "SIRET 12345678901234 fails its check digit"),
        ("1234567890123", "must be exactly 14 digits"),
        ("9876543240001A", "must be exactly 14 digits"),
    ],
)
def test_siret_must_be_14_digits_with_luhn_check(
    write_config: WriteConfig, structure: str, reason: str
) -> None:
    found = one_problem(write_config, {"connections": [connection(structure=structure)]})
    assert found.startswith("connections[0].structure: ")
    assert reason in found


def test_name_longer_than_100_characters(write_config: WriteConfig) -> None:
    found = one_problem(write_config, {"connections": [connection(name="n" * 101)]})
    assert found.startswith("connections[0].name: ")


def test_name_unique_per_exchange_system_and_structure(write_config: WriteConfig) -> None:
    second = connection(environment="prod")
    found = one_problem(write_config, {"connections": [connection(), second]})
    assert found.startswith("connections[1].name: ")
    assert "exchange system CPRO and structure 98765432400019" in found


def test_pesit_is_b2g_only(write_config: WriteConfig) -> None:
    sheet = connection(protocol="pesit", circuit="g2b", subscriptions={})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == "connections[0].protocol: PeSIT is accepted for B2G only"


def test_validity_start_before_end(write_config: WriteConfig) -> None:
    sheet = connection(validity={"start": "2027-01-01", "end": "2026-01-01"})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found.startswith("connections[0].validity: start 2027-01-01 must be before end")


@pytest.mark.parametrize("missing", ["first_names", "name", "email", "phone"])
def test_contact_is_complete(write_config: WriteConfig, missing: str) -> None:
    sheet = connection()
    del sheet["contact"][missing]
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == f"connections[0].contact.{missing}: Field required"


@pytest.mark.parametrize(
    ("field", "value"), [("email", "not-an-address"), ("phone", "01 23 45 67 89")]
)
def test_contact_email_and_international_phone(
    write_config: WriteConfig, field: str, value: str
) -> None:
    sheet = connection()
    sheet["contact"][field] = value
    found = one_problem(write_config, {"connections": [sheet]})
    assert found.startswith(f"connections[0].contact.{field}: ")


def test_part_id_is_required(write_config: WriteConfig) -> None:
    sheet = connection()
    del sheet["network"]["partner"]["part_id"]
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == "connections[0].network.partner.part_id: Field required"


def test_subscribed_code_must_exist(write_config: WriteConfig) -> None:
    sheet = connection(subscriptions={"emission": ["FSO9999A"]})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == (
        "connections[0].subscriptions.emission[0]: FSO9999A is not in the interface catalogue"
    )


def test_subscribed_code_must_fit_direction(write_config: WriteConfig) -> None:
    sheet = connection(subscriptions={"emission": ["FEN1200A"]})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == (
        "connections[0].subscriptions.emission[0]: FEN1200A is a reception code, not emission"
    )


def test_subscribed_code_must_fit_circuit(write_config: WriteConfig) -> None:
    sheet = connection(circuit="g2b", subscriptions={"emission": ["FSO1100A"]})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == "connections[0].subscriptions.emission[0]: FSO1100A belongs to b2g, not to g2b"


def test_one_connection_per_environment_code_and_direction(write_config: WriteConfig) -> None:
    other = connection(
        name="b2g-qual-bis", subscriptions={"emission": ["FSO1100A"]}, settings={"as2_id": "PA-2"}
    )
    found = one_problem(write_config, {"connections": [connection(), other]})
    assert found.startswith("connections[1].subscriptions.emission[0]: FSO1100A (emission, qual)")
    assert "'b2g-qual'" in found


def test_same_code_in_another_environment_is_fine(write_config: WriteConfig) -> None:
    other = connection(name="b2g-prod", environment="prod")
    load(write_config({"connections": [connection(), other]}), check_files=False)


def test_unknown_keys_are_refused(write_config: WriteConfig) -> None:
    found = one_problem(write_config, {"connections": [connection(protocl="as2")]})
    assert found == "connections[0].protocl: Extra inputs are not permitted"


def test_every_problem_is_reported_at_once(write_config: WriteConfig) -> None:
    bad = connection(structure="12345678901234", name="x" * 101)
    bad["contact"]["email"] = "nope"
    found = problems(write_config, {"connections": [connection(), bad]})
    fields = sorted(p.split(":")[0] for p in found)
    assert fields == [
        "connections[1].contact.email",
        "connections[1].name",
        "connections[1].structure",
    ]


def test_operator_declared_codes_extend_the_catalogue(write_config: WriteConfig) -> None:
    extra = {
        "code": "XGB0001A",
        "description": "G2B invoice",
        "circuits": ["g2b"],
        "direction": "reception",
    }
    sheet = connection(circuit="g2b", subscriptions={"reception": ["XGB0001A"]})
    load(write_config({"interfaces": [extra], "connections": [sheet]}), check_files=False)


def test_declared_code_may_not_redefine_a_builtin_one(write_config: WriteConfig) -> None:
    extra = {
        "code": "FSO1100A",
        "description": "clash",
        "circuits": ["b2g"],
        "direction": "emission",
    }
    found = problems(write_config, {"interfaces": [extra], "connections": []})
    assert len(found) == 1
    assert found[0].startswith("interfaces[0].code: ")
    assert "FSO1100A" in found[0]


def test_env_references_are_expanded(write_config: WriteConfig) -> None:
    data = {"gateway": {"admin": {"api_token": "${TOKEN}"}}, "connections": []}
    config = load(write_config(data), check_files=False, env={"TOKEN": "s3cret-token"})
    assert config.gateway.admin.api_token is not None
    assert config.gateway.admin.api_token.get_secret_value() == "s3cret-token"
    assert "s3cret" not in repr(config)


def test_missing_env_reference_names_the_field(write_config: WriteConfig) -> None:
    data = {"gateway": {"admin": {"api_token": "${NOPE_NOT_SET}"}}, "connections": []}
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data), check_files=False, env={})
    assert [str(e) for e in caught.value.errors] == [
        "gateway.admin.api_token: environment variable NOPE_NOT_SET is not set"
    ]


def test_relative_paths_are_read_from_the_config_folder(write_config: WriteConfig) -> None:
    path = write_config({"gateway": {"data_dir": "data"}, "connections": []})
    config = load(path, check_files=False)
    assert config.gateway.data_dir == path.parent / "data"


@pytest.mark.parametrize("text", ["connections: [", "- a list", "\x00\x01binary"])
def test_malformed_files_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load(path)
    assert len(caught.value.errors) == 1


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="cannot read"):
        load(tmp_path / "absent.yaml")


def test_active_as2_sheet_needs_its_certificates(write_config: WriteConfig) -> None:
    found = problems(write_config, {"connections": [connection(status="actif")]})
    assert sorted(p.split(":")[0] for p in found) == [
        "connections[0].certificates.client",
        "connections[0].certificates.partner",
    ]


def test_same_key_file_for_two_connections(write_config: WriteConfig, tmp_path: Path) -> None:
    pair = {"certificate": str(tmp_path / "c.pem"), "key": str(tmp_path / "c.key")}
    first = connection(certificates={"client": pair})
    second = connection(name="other", environment="prod", certificates={"client": pair})
    found = problems(write_config, {"connections": [first, second]})
    assert "connections[1].certificates.client.certificate" in found[0]
    assert "also used by connection 'b2g-qual'" in found[0]
    assert len(found) == 2


def test_rules_still_run_on_the_sheets_that_validate(write_config: WriteConfig) -> None:
    broken = connection(structure="12345678901234")
    pesit_g2b = connection(name="p", protocol="pesit", circuit="g2b", subscriptions={})
    found = problems(write_config, {"connections": [broken, pesit_g2b]})
    assert found == [
        "connections[0].structure: SIRET 12345678901234 fails its check digit",
        "connections[1].protocol: PeSIT is accepted for B2G only",
    ]


def test_unconfirmed_default_codes_may_be_redefined(write_config: WriteConfig) -> None:
    extra = {
        "code": "CSO1100A",
        "description": "the real report code of FSO1100A",
        "circuits": ["b2g"],
        "direction": "reception",
    }
    load(write_config({"interfaces": [extra], "connections": [connection()]}), check_files=False)


def test_settings_are_checked_against_the_protocol_model(write_config: WriteConfig) -> None:
    sheet = connection(settings={"no_such_setting": 1})
    found = one_problem(write_config, {"connections": [sheet]})
    assert found == "connections[0].settings.no_such_setting: Extra inputs are not permitted"


def test_two_as2_sheets_with_the_same_as2_names(write_config: WriteConfig) -> None:
    second = connection(name="b2g-qual-bis", subscriptions={}, settings={"as2_id": "PA-1"})
    found = one_problem(write_config, {"connections": [connection(), second]})
    assert found.startswith("connections[1].settings.as2_id: AS2-From 'AIFE-QUAL' to AS2-To 'PA-1'")


def test_two_as2_sheets_sharing_a_listener_must_share_its_scheme(
    write_config: WriteConfig,
) -> None:
    second = connection(
        name="b2g-prod",
        environment="prod",
        subscriptions={},
        settings={"listen_scheme": "https"},
    )
    first = connection(settings={"listen_scheme": "http"})
    found = one_problem(write_config, {"connections": [first, second]})
    assert found.startswith("connections[1].settings.listen_scheme: 127.0.0.1:5080 is already")


def test_pesit_part_id_must_fit_pi_3(write_config: WriteConfig) -> None:
    sheet = connection(protocol="pesit", subscriptions={})
    sheet["network"]["partner"]["part_id"] = "P" * 25
    found = one_problem(write_config, {"connections": [sheet]})
    assert found.startswith("connections[0].network.partner.part_id: ")
    assert "PI 3" in found


def test_pesit_passwords_in_settings_are_redacted(write_config: WriteConfig) -> None:
    from gateway.logging import REDACTOR

    sheet = connection(protocol="pesit", subscriptions={}, settings={"password": "pw-Zq81"})
    load(write_config({"connections": [sheet]}), check_files=False)
    assert REDACTOR.scrub("login with pw-Zq81") == "login with [REDACTED]"
