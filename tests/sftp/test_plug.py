"""Settings, planning and the daemon plug: what the configuration becomes, and what it refuses."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pydantic import ValidationError

from gateway import start_retry
from gateway.cli import main
from gateway.config import Config, SftpServerConfig
from gateway.config_load import ConfigErrors, load
from gateway.credentials import load_credentials
from gateway.metrics import SERVICE_START_FAILURES
from gateway.model import Direction
from gateway.plug_sftp import ClientService, SftpServices, client_plan, config_problems, factory
from gateway.settings.sftp import SftpSettings, plan_listeners
from protocols.sftp.keys import KeyFileError, key_of_certificate, load_or_create_host_key, wire
from protocols.sftp.server import SftpListener
from tests.pki import TestCA
from tests.sftp.harness import (
    GatewayEnv,
    edited,
    gateway_env,
    invoice,
    make_key,
    sftp_sheet,
    utcnow,
)


class ConfigWithSftp(Config):
    """`Config` with the proposed top-level block, exactly as the lead would add it."""

    sftp: SftpServerConfig | None = None


# --- validation -------------------------------------------------------------------------------


def test_a_typo_in_sftp_settings_is_a_config_error_naming_the_field(
    sandbox: Path, tmp_path: Path
) -> None:
    path = edited(
        sandbox,
        tmp_path / "typo.yaml",
        lambda d: sftp_sheet(d).update(settings={"remote_dri": "/x"}),
    )
    with pytest.raises(ConfigErrors) as caught:
        load(path, check_files=False, env={"RACCORD_ADMIN_PORT": "0"})
    assert any("connections[1].settings.remote_dri" in str(e) for e in caught.value.errors)


@pytest.mark.parametrize(
    "settings",
    [
        {"host_keys": ["ssh-ed25519 AAAA"], "known_hosts": "/x"},
        {"temp_suffix": "part"},
        {"after_poll": "move", "poll_archive_dir": "."},
        {"listen_port": 70000},
        {"account": "../evil"},
        {"poll_dirs": {"not-a-code": "/x"}},
    ],
)
def test_hostile_or_inconsistent_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SftpSettings.model_validate(settings)


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        ({"accounts": [{"name": "a", "role": "deposit", "authorized_keys": "/k"}]}, "environment"),
        (
            {"accounts": [{"name": "a", "role": "connection", "authorized_keys": "/k"}]},
            "connection",
        ),
        (
            {"accounts": [{"name": "a", "role": "deposit", "environment": "qual"}]},
            "authorized_keys",
        ),
        (
            {
                "accounts": [
                    {"name": "a", "role": "deposit", "environment": "qual", "password_file": "/p"}
                ]
            },
            "password_login",
        ),
        (
            {
                "accounts": [
                    {"name": "a", "role": "deposit", "environment": "qual", "authorized_keys": "/k"}
                ]
                * 2
            },
            "unique",
        ),
        ({"deposit_dir": "in"}, "must differ"),
    ],
)
def test_server_block_rules(block: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        SftpServerConfig.model_validate(block)


# --- planning ----------------------------------------------------------------------------------


def test_each_sftp_sheet_gives_aife_an_account_keyed_by_its_certificate(sandbox: Path) -> None:
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert problems == []
    [plan] = plans
    assert (plan.params.host, plan.params.port) == ("127.0.0.1", 18422)
    [account] = plan.params.accounts
    partner = creds["g2b-qual-sftp"].partner[0]
    assert account.name == "g2b-qual-sftp"
    assert account.keys == frozenset({wire(key_of_certificate(partner))})
    assert account.direction == "reception"
    assert account.connection == "g2b-qual-sftp"
    assert account.jail.deposit_codes == frozenset({"XGB0001A", "XGB0003A"})
    assert plan.params.host_key.name == "host_key-18422"
    assert not plan.params.password_login


def with_block(sandbox: Path, block: dict[str, Any]) -> ConfigWithSftp:
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    return ConfigWithSftp.model_validate({**config.model_dump(), "sftp": block})


def test_the_server_block_adds_partner_accounts_with_keys_and_certificates(
    sandbox: Path, tmp_path: Path
) -> None:
    key = make_key(tmp_path, "partner")
    issued = TestCA().issue("partner-x509")
    cert, _ = issued.write(tmp_path, "partner-cert")
    block = {
        "listen": {"host": "127.0.0.1", "port": 2222},
        "after_download": "archive",
        "accounts": [
            {
                "name": "erp-qual",
                "role": "deposit",
                "environment": "qual",
                "authorized_keys": str(tmp_path / "partner.pub"),
                "certificate": str(cert),
                "collect_from": ["b2g-qual-as2"],
            }
        ],
    }
    config = with_block(sandbox, block)
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert problems == []
    plan = next(p for p in plans if p.params.port == 2222)
    [account] = plan.params.accounts
    assert account.keys == {key.wire, wire(key_of_certificate(issued.cert))}
    assert {"FSO1100A", "XGB0002A"} <= account.jail.deposit_codes
    assert "FEN1200A" in account.jail.collect_codes
    assert account.jail.archive_dir == "archive"
    assert plan.collect == {"erp-qual": ("b2g-qual-as2",)}


def test_a_key_configured_for_two_accounts_is_refused_for_both(
    sandbox: Path, tmp_path: Path
) -> None:
    make_key(tmp_path, "shared")
    account = {
        "role": "deposit",
        "environment": "qual",
        "authorized_keys": str(tmp_path / "shared.pub"),
    }
    block = {"accounts": [{"name": "one", **account}, {"name": "two", **account}]}
    config = with_block(sandbox, block)
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert any("sftp.accounts[0]" in p and "sftp.accounts[1]" in p for p in problems)
    assert all(a.name not in {"one", "two"} for p in plans for a in p.params.accounts)


def test_config_problems_name_the_fields_for_check_config(sandbox: Path, tmp_path: Path) -> None:
    make_key(tmp_path, "shared")
    account = {
        "role": "deposit",
        "environment": "qual",
        "authorized_keys": str(tmp_path / "shared.pub"),
    }
    config = with_block(
        sandbox, {"accounts": [{"name": "one", **account}, {"name": "b", **account}]}
    )
    creds, _ = load_credentials(config, now=utcnow())
    [error] = config_problems(config, creds)
    assert error.field == "sftp.accounts[0]"
    assert "one key per account or connection" in error.reason


def test_an_account_key_that_is_a_connection_client_key_is_refused(sandbox: Path) -> None:
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    creds, _ = load_credentials(config, now=utcnow())
    partner = wire(key_of_certificate(creds["g2b-qual-sftp"].partner[0]))
    _, problems = plan_listeners(config, creds, client_keys={"other": partner})
    assert any("one key per account or connection" in p for p in problems)


def test_the_client_logs_in_with_the_connection_certificate_key(sandbox: Path) -> None:
    config = load(sandbox, env={"RACCORD_ADMIN_PORT": "0"})
    creds, _ = load_credentials(config, now=utcnow())
    conn = config.connection("g2b-qual-sftp")
    assert conn is not None
    plan = client_plan(conn, creds)
    own = creds["g2b-qual-sftp"].own["client"].certificate
    assert wire(plan.client.client_key) == wire(key_of_certificate(own))
    assert plan.client.username == "PA-G2B-QUAL"  # the sheet's Part ID
    assert (plan.client.host, plan.client.port) == ("127.0.0.1", 18522)
    assert plan.client.ciphers[0] == "aes128-gcm@openssh.com"
    aife = wire(key_of_certificate(creds["g2b-qual-sftp"].partner[0]))
    assert [wire(key) for key in plan.client.pins] == [aife]  # the sandbox pins AIFE's host key
    assert plan.poll is None


# --- the plug in a context ------------------------------------------------------------------------


async def test_the_factory_serves_aife_with_its_certificate_key(
    sandbox: Path, tmp_path: Path
) -> None:
    path = edited(
        sandbox,
        tmp_path / "listen0.yaml",
        lambda d: sftp_sheet(d).update(settings={"listen_port": 0}),
    )
    env: GatewayEnv = await gateway_env(path, tmp_path / "data")
    [service] = factory(env.context())
    assert isinstance(service, SftpServices)
    try:
        await service.start()
        assert service.ready
        listener = next(s for s in service.services if isinstance(s, SftpListener))
        assert any(isinstance(s, ClientService) for s in service.services)
        key = asyncssh.read_private_key(
            sandbox.parent.parent.parent / "certs/sandbox/aife-qual-sftp.key"
        )
        async with (
            asyncssh.connect(
                "127.0.0.1",
                listener.port,
                username="g2b-qual-sftp",
                client_keys=[key],
                known_hosts=None,
                config=None,
                agent_path=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
            sftp.open("/out/XGB0001A/g2b.xml", "wb") as remote,
        ):
            await remote.write(invoice())
        [message] = await env.store.list_messages()
        assert message.direction is Direction.RECEPTION
        mode = stat.S_IMODE(listener.params.host_key.stat().st_mode)
        assert mode == 0o600
    finally:
        await service.stop(timeout=2)
        await env.store.close()


def test_cli_prints_a_stable_host_key_fingerprint(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sftp", "host-key", "--config", str(sandbox)]) == 0
    first = capsys.readouterr().out
    assert main(["sftp", "host-key", "--config", str(sandbox)]) == 0
    assert capsys.readouterr().out == first
    assert "127.0.0.1:18422  SHA256:" in first


async def _became_ready(service: SftpServices, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if service.ready:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_listener_whose_port_is_taken_is_retried_until_it_binds(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rest runs meanwhile and readiness says false; once the port is free, it listens."""
    monkeypatch.setattr(start_retry, "FIRST_DELAY", 0.05)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    path = edited(
        sandbox,
        tmp_path / "taken.yaml",
        lambda d: sftp_sheet(d).update(settings={"listen_port": taken}),
    )
    env = await gateway_env(path, tmp_path / "data")
    [service] = factory(env.context())
    failures = SERVICE_START_FAILURES.labels(service=f"sftp-listener-{taken}")
    before = failures._value.get()
    try:
        await service.start()
        assert not service.ready
        assert isinstance(service, SftpServices)
        assert [type(s) for s in service.services] == [ClientService]
        await asyncio.sleep(0.2)
        assert failures._value.get() >= before + 2  # tried again meanwhile, still refused
        blocker.close()
        assert await _became_ready(service)
        listener = next(s for s in service.services if isinstance(s, SftpListener))
        assert listener.port == taken
    finally:
        await service.stop(timeout=2)
        await env.store.close()
        blocker.close()


def test_a_host_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "host_key"
    key = load_or_create_host_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert wire(load_or_create_host_key(path)) == wire(key)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_host_key(path)
