"""Found by the campaign: two protocols told to listen on one address passed validation.

The campaign's free-port helper once gave b2g-qual-as2's AS2 listener and b2g-qual-sftp's
SFTP listener the same port. The configuration loaded, the gateway started with its SFTP
listener unable to bind (an error in the log, readiness false), and every report and status
AIFE pushed on that connection waited at AIFE until the simulator gave up on them. Such a
configuration is now refused at load, naming the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config_load import ConfigErrors, load
from gateway.settings.sftp import sftp_settings
from gateway.simulator.campaign import with_b2g_sftp
from tests.sandbox import SANDBOX

ENV = {"RACCORD_ADMIN_PORT": "0"}


def _config(tmp_path: Path, ports: list[int]) -> Path:
    given = iter(ports)
    path = tmp_path / "raccord.yaml"
    path.write_text(with_b2g_sftp(SANDBOX.read_text(), free_port=lambda: next(given)))
    return path


def _ports(clash: dict[int, int]) -> list[int]:
    """Ten distinct ports in the order `with_b2g_sftp` asks for them, with some made equal."""
    ports = list(range(21000, 21010))
    for index, same_as in clash.items():
        ports[index] = ports[same_as]
    return ports


def test_distinct_ports_load(tmp_path: Path) -> None:
    load(_config(tmp_path, _ports({})), check_files=False, env=ENV)


def test_an_sftp_listener_on_an_as2_listeners_port_is_refused(tmp_path: Path) -> None:
    # asked in file order: b2g-qual-as2 aife, partner (1) ... b2g-qual-sftp aife, partner (9)
    with pytest.raises(ConfigErrors) as refused:
        load(_config(tmp_path, _ports({9: 1})), check_files=False, env=ENV)
    [error] = refused.value.errors
    assert error.field == "connections[4].network.partner.port"
    assert "AS2 listener of connection 'b2g-qual-as2'" in str(error)


def test_an_sftp_listener_on_any_free_port_claims_no_partner_port(tmp_path: Path) -> None:
    """`settings.listen_port: 0` binds a free port, as the SFTP plan does: the sheet's partner
    port, here the AS2 listener's, is then not the SFTP listener's and does not clash."""
    path = _config(tmp_path, _ports({9: 1}))
    data = yaml.safe_load(path.read_text())
    sheet = data["connections"][4]
    assert sheet["name"] == "b2g-qual-sftp"
    sheet.setdefault("settings", {})["listen_port"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load(path, check_files=False, env=ENV)
    assert sftp_settings(config.connections[4]).listen_address(config.connections[4])[1] == 0


def test_the_admin_port_on_a_pesit_listeners_port_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, _ports({}))
    pesit = 21005  # b2g-prod-pesit's partner port (the sixth asked for)
    with pytest.raises(ConfigErrors) as refused:
        load(path, check_files=False, env={"RACCORD_ADMIN_PORT": str(pesit)})
    assert [e.field for e in refused.value.errors] == ["gateway.admin.port"]


def test_two_aifes_on_one_port_are_not_the_gateways_business(tmp_path: Path) -> None:
    """`network.aife` is where AIFE listens, not the gateway: not checked here."""
    load(_config(tmp_path, _ports({2: 0})), check_files=False, env=ENV)
