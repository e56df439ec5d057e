"""Certificate rules applied to whole configurations, with real X.509 from the test PKI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config_load import ConfigErrors, load
from gateway.connections import ConnectionRegistry
from gateway.credentials import credential_warnings, load_credentials
from gateway.errors import ConnectionStateError
from gateway.model import ConnectionStatus
from tests.gateway.conftest import connection
from tests.pki import Issued, TestCA, now

WriteConfig = Callable[[dict[str, Any]], Path]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def aife(ca: TestCA) -> Issued:
    return ca.issue("aife")


def pair(tmp_path: Path, issued: Issued, stem: str) -> dict[str, str]:
    cert, key = issued.write(tmp_path, stem)
    return {"certificate": str(cert), "key": str(key)}


def sheet(
    tmp_path: Path, ca: TestCA, aife: Issued, name: str, env: str, **own: Issued
) -> dict[str, Any]:
    partner, _ = aife.write(tmp_path, f"aife-{name}")
    certificates: dict[str, Any] = {
        role: pair(tmp_path, issued, f"{name}-{role}") for role, issued in own.items()
    }
    certificates["partner"] = [str(partner)]
    subs = {"emission": ["FSO1100A"], "reception": []} if env == "qual" else {}
    return connection(
        name=name, environment=env, status="actif", certificates=certificates, subscriptions=subs
    )


def config_data(tmp_path: Path, ca: TestCA, *sheets: dict[str, Any]) -> dict[str, Any]:
    anchor = ca.write_root(tmp_path / "ca.pem")
    return {"gateway": {"trust_anchors": [str(anchor)]}, "connections": list(sheets)}


def test_valid_certificates_load(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    data = config_data(tmp_path, ca, sheet(tmp_path, ca, aife, "a", "qual", client=ca.issue("a")))
    config = load(write_config(data))
    creds, errors = load_credentials(config, now=now())
    assert errors == []
    assert creds["a"].own["client"].certificate.subject.rfc4514_string().startswith("CN=a,")
    assert len(creds["a"].partner) == 1


def test_one_certificate_for_two_connections_names_both(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    shared = ca.issue("shared")
    data = config_data(
        tmp_path,
        ca,
        sheet(tmp_path, ca, aife, "first", "qual", client=shared),
        sheet(tmp_path, ca, aife, "second", "prod", client=shared),
    )
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    (error,) = caught.value.errors
    assert error.field == "connections[1].certificates"
    assert "first" in error.reason


def test_same_key_under_two_certificates_is_refused(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    first = ca.issue("first")
    second = ca.issue("second", key=first.key)
    data = config_data(
        tmp_path,
        ca,
        sheet(tmp_path, ca, aife, "first", "qual", client=first),
        sheet(tmp_path, ca, aife, "second", "prod", client=second),
    )
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    assert [e.field for e in caught.value.errors] == ["connections[1].certificates"]


def test_key_that_does_not_match_names_the_field(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    good = ca.issue("a")
    data = config_data(tmp_path, ca, sheet(tmp_path, ca, aife, "a", "qual", client=good))
    other_key = tmp_path / "other.key"
    other_key.write_bytes(ca.issue("b").key_pem())
    data["connections"][0]["certificates"]["client"]["key"] = str(other_key)
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    (error,) = caught.value.errors
    assert error.field == "connections[0].certificates.client.certificate"


def test_untrusted_chain_is_refused(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    stranger = TestCA("Stranger CA").issue("a")
    data = config_data(tmp_path, ca, sheet(tmp_path, ca, aife, "a", "qual", client=stranger))
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    assert caught.value.errors[0].field == "connections[0].certificates.client.certificate"


def test_encrypted_key_passphrase_from_file(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    issued = ca.issue("a")
    data = config_data(tmp_path, ca, sheet(tmp_path, ca, aife, "a", "qual", client=issued))
    key = tmp_path / "enc.key"
    key.write_bytes(issued.key_pem(b"pass-phrase-1"))
    secret = tmp_path / "pass.txt"
    secret.write_text("pass-phrase-1\n")
    client = data["connections"][0]["certificates"]["client"]
    client.update(key=str(key), key_passphrase_file=str(secret))
    load(write_config(data))
    client["key_passphrase_file"] = str(tmp_path / "missing.txt")
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    fields = [e.field for e in caught.value.errors]
    assert "connections[0].certificates.client.key_passphrase_file" in fields
    assert all("pass-phrase-1" not in str(e) for e in caught.value.errors)


def test_expired_certificate_stops_only_its_connection(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    expired = ca.issue(
        "old", not_before=now() - dt.timedelta(days=30), not_after=now() - dt.timedelta(days=1)
    )
    data = config_data(
        tmp_path,
        ca,
        sheet(tmp_path, ca, aife, "old", "qual", client=expired),
        sheet(tmp_path, ca, aife, "fresh", "prod", client=ca.issue("fresh")),
    )
    config = load(write_config(data))
    creds, errors = load_credentials(config, now=now())
    assert errors == []
    assert any("expired" in w and "traffic stopped" in w for w in credential_warnings(creds))
    statuses = dict.fromkeys(("old", "fresh"), ConnectionStatus.ACTIF)
    registry = ConnectionRegistry(config, statuses, creds)
    with pytest.raises(ConnectionStateError, match="client certificate expired"):
        registry.check_traffic("old", now=now())
    assert registry.check_traffic("fresh", now=now()).config.name == "fresh"


def test_missing_trust_anchors(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    data = config_data(tmp_path, ca, sheet(tmp_path, ca, aife, "a", "qual", client=ca.issue("a")))
    data["gateway"]["trust_anchors"] = []
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    assert [e.field for e in caught.value.errors] == ["connections[0].certificates.trust_anchors"]


def test_unreadable_anchor_reported_once_under_gateway(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    data = config_data(
        tmp_path,
        ca,
        sheet(tmp_path, ca, aife, "a", "qual", client=ca.issue("a")),
        sheet(tmp_path, ca, aife, "b", "prod", client=ca.issue("b")),
    )
    data["gateway"]["trust_anchors"].append(str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    assert [e.field for e in caught.value.errors] == ["gateway.trust_anchors[1]"]
