"""AS2 settings: sandbox-friendly defaults derived from the sheet, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import ConnectionConfig
from gateway.credentials import ConnectionCredentials
from gateway.settings.as2 import (
    As2Settings,
    aife_as2_id,
    aife_url,
    listen_address,
    our_as2_id,
    plan_for,
    receipt_hosts,
    receipt_url,
)
from protocols.as2.cms_compress import DEFAULT_LEVEL


def _sheet(**settings: Any) -> ConnectionConfig:
    return ConnectionConfig.model_validate({
        "name": "b2g-qual-as2", "structure": "98765432400019", "environment": "qual",
        "circuit": "b2g", "protocol": "as2",
        "validity": {"start": "2026-01-01", "end": "2028-12-31"},
        "contact": {"first_names": "C", "name": "M", "email": "a@example.fr",
                    "phone": "+33 1 23 45 67 89"},
        "network": {"aife": {"host": "aife.example", "port": 443},
                    "partner": {"host": "203.0.113.7", "port": 18401, "part_id": "PA-1"}},
        "settings": settings,
    })  # fmt: skip


def test_defaults_come_from_the_sheet() -> None:
    conn = _sheet()
    settings = As2Settings.model_validate(conn.settings.model_dump())
    assert our_as2_id(conn, settings) == "PA-1"
    assert aife_as2_id(conn, settings) == "AIFE-QUAL"
    assert listen_address(conn, settings) == ("203.0.113.7", 18401, "http")
    assert aife_url(conn, settings) == "https://aife.example:443/as2"
    assert receipt_url(conn, settings) == "http://203.0.113.7:18401/as2/mdn"
    assert receipt_hosts(conn, settings) == {"aife.example"}


def test_explicit_settings_win() -> None:
    conn = _sheet(as2_id="PA RACCORD", partner_as2_id="CPRO", listen_host="::1", listen_port=9,
                  listen_scheme="https", aife_scheme="http", aife_path="/x",
                  mdn_url="https://pa.example/mdn", receipt_hosts=["a", "b"])  # fmt: skip
    settings = As2Settings.model_validate(conn.settings.model_dump())
    assert (our_as2_id(conn, settings), aife_as2_id(conn, settings)) == ("PA RACCORD", "CPRO")
    assert listen_address(conn, settings) == ("::1", 9, "https")
    assert aife_url(conn, settings) == "http://aife.example:443/x"
    assert receipt_url(conn, settings) == "https://pa.example/mdn"
    assert receipt_hosts(conn, settings) == {"a", "b"}


@pytest.mark.parametrize(
    "settings",
    [{"cipher": "des-ede3-cbc"}, {"async_mdn_wait": 10, "mdn_timeout": 5},
     {"path": "/same", "mdn_path": "/same"}, {"as2_id": "bad\nname"}, {"as2_id": ""},
     {"path": "no-slash"}, {"mdn_url": "ftp://x"}, {"mdn_retries": -1}, {"unknown": 1},
     {"message_id_domain": "a b"}, {"tls_client_auth": "maybe"}, {"compression_level": 0},
     {"compression_level": 10}],
)  # fmt: skip
def test_refused_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        As2Settings.model_validate(settings)


def test_compression_level_is_a_setting_passed_to_the_sender() -> None:
    assert As2Settings.model_validate({}).compression_level == DEFAULT_LEVEL == 1  # fastest
    conn = _sheet(sign=False, compression_level=9)
    plan = plan_for(conn, ConnectionCredentials(conn.name))
    assert plan.send is not None
    assert plan.send.compression_level == 9
