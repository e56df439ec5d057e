"""CRLs (`gateway.crls`): a revoked certificate stops its own connection, a forged CRL is
refused, a stale one still counts; hostile files first. CRLs come from the test PKI and, in
DER, from the OpenSSL command line."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway import certrevocation
from gateway.config_load import ConfigErrors, load
from gateway.connections import ConnectionRegistry
from gateway.credentials import credential_warnings, load_credentials
from gateway.errors import CertificateRevoked, ConnectionStateError
from gateway.model import ConnectionStatus
from tests.gateway.test_credentials import config_data, sheet
from tests.pki import Issued, TestCA, crl, now, rsa_key

WriteConfig = Callable[[dict[str, Any]], Path]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("Raccord CRL Test CA", intermediate=True)


@pytest.fixture(scope="module")
def aife(ca: TestCA) -> Issued:
    return ca.issue("aife")


def write_crl(path: Path, *crls: x509.CertificateRevocationList) -> str:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls))
    return str(path)


def two_connections(
    tmp_path: Path, ca: TestCA, aife: Issued, *, a: Issued, crls: list[str]
) -> dict[str, Any]:
    data = config_data(
        tmp_path,
        ca,
        sheet(tmp_path, ca, aife, "a", "qual", client=a),
        sheet(tmp_path, ca, aife, "b", "prod", client=ca.issue("b")),
    )
    data["gateway"]["crls"] = crls
    return data


def registry_of(path: Path) -> tuple[ConnectionRegistry, list[str]]:
    config = load(path)
    creds, errors = load_credentials(config, now=now())
    assert errors == []
    statuses = dict.fromkeys((c.name for c in config.connections), ConnectionStatus.ACTIF)
    return ConnectionRegistry(config, statuses, creds), credential_warnings(creds)


# --- hostile files first ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "no X509 CRL block"),
        (b"-----BEGIN X509 CRL-----\nMIIB\n", "truncated PEM"),
        (b"\x30\x82\x01\x00garbage", "not a valid CRL"),
        (b"x" * (5 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_an_unusable_crl_file_is_refused_by_field(
    tmp_path: Path, ca: TestCA, write_config: WriteConfig, content: bytes, reason: str
) -> None:
    bad = tmp_path / "bad.crl"
    bad.write_bytes(content)
    data = two_connections(tmp_path, ca, ca.issue("aife"), a=ca.issue("a"), crls=[str(bad)])
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    [error] = caught.value.errors
    assert error.field == "gateway.crls[0]"
    assert reason in str(error)


def test_a_crl_naming_the_issuer_but_signed_by_another_key_is_refused(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    a = ca.issue("a")
    forged = crl(ca.issuer, rsa_key(2048), [a.cert])  # the issuer's name, a stranger's key
    data = two_connections(tmp_path, ca, aife, a=a, crls=[write_crl(tmp_path / "f.crl", forged)])
    with pytest.raises(ConfigErrors) as caught:
        load(write_config(data))
    assert any(
        "gateway.crls[0] names" in str(e) and "not signed by its key" in str(e)
        for e in caught.value.errors
    )


def test_the_crl_of_an_earlier_key_of_the_same_ca_name_is_left_aside(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    """A CA renewed under the same name publishes a CRL per key: the old key's CRL does not
    make the new key's certificates unverifiable, and the new key's CRL still applies."""
    a = ca.issue("a")
    earlier = crl(ca.issuer, rsa_key(2048), [])  # same issuer name, the retired key
    current = crl(ca.issuer, ca.issuer_key, [a.cert])
    path = write_crl(tmp_path / "both.crl", earlier, current)
    data = two_connections(tmp_path, ca, aife, a=a, crls=[path])
    registry, _ = registry_of(write_config(data))
    with pytest.raises(ConnectionStateError, match="was revoked"):
        registry.check_traffic("a", now=now())
    assert registry.check_traffic("b", now=now()).config.name == "b"


# --- revocation -------------------------------------------------------------------------------


def test_a_revoked_client_certificate_stops_only_its_connection(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    a = ca.issue("a")
    listed = crl(ca.issuer, ca.issuer_key, [a.cert])
    data = two_connections(tmp_path, ca, aife, a=a, crls=[write_crl(tmp_path / "i.crl", listed)])
    registry, warnings = registry_of(write_config(data))
    assert any("was revoked" in w and "traffic stopped" in w for w in warnings)
    with pytest.raises(ConnectionStateError, match=r"CN=a.* was revoked .*keyCompromise"):
        registry.check_traffic("a", now=now())
    assert registry.check_traffic("b", now=now()).config.name == "b"


def test_a_revoked_partner_certificate_stops_the_connections_using_it(
    tmp_path: Path, ca: TestCA, write_config: WriteConfig
) -> None:
    aife = ca.issue("aife-revoked")
    listed = crl(ca.issuer, ca.issuer_key, [aife.cert])
    data = two_connections(
        tmp_path, ca, aife, a=ca.issue("a"), crls=[write_crl(tmp_path / "p.crl", listed)]
    )
    registry, _ = registry_of(write_config(data))
    for name in ("a", "b"):  # both sheets name this AIFE certificate
        with pytest.raises(ConnectionStateError, match="aife-revoked"):
            registry.check_traffic(name, now=now())


def test_a_revoked_intermediate_revokes_what_it_issued(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    [intermediate] = ca.chain
    listed = crl(ca.root, ca.root_key, [intermediate])
    unrelated = crl(ca.issuer, ca.issuer_key, [])  # the intermediate's own CRL lists nothing
    path = write_crl(tmp_path / "root.crl", listed, unrelated)
    data = two_connections(tmp_path, ca, aife, a=ca.issue("a"), crls=[path])
    registry, _ = registry_of(write_config(data))
    revoked = r"Test CA Intermediate,.* was revoked by CN=Raccord CRL Test CA,"
    with pytest.raises(ConnectionStateError, match=revoked):
        registry.check_traffic("a", now=now())


def test_a_crl_listing_others_changes_nothing_and_a_stale_one_still_counts(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    a = ca.issue("a")
    others = crl(ca.issuer, ca.issuer_key, [ca.issue("someone else").cert])
    data = two_connections(tmp_path, ca, aife, a=a, crls=[write_crl(tmp_path / "o.crl", others)])
    registry, warnings = registry_of(write_config(data))
    assert registry.check_traffic("a", now=now()).config.name == "a"
    assert not any("revoked" in w or "renewal" in w for w in warnings)

    stale = crl(ca.issuer, ca.issuer_key, [a.cert], next_update=-dt.timedelta(days=1))
    data["gateway"]["crls"] = [write_crl(tmp_path / "s.crl", stale)]
    registry, warnings = registry_of(write_config(data))
    assert any("due for renewal" in w for w in warnings)
    with pytest.raises(ConnectionStateError, match="was revoked"):
        registry.check_traffic("a", now=now())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_der_crl_converted_by_openssl_is_applied(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    a = ca.issue("a")
    pem = write_crl(tmp_path / "i.pem", crl(ca.issuer, ca.issuer_key, [a.cert]))
    der = tmp_path / "i.crl"
    subprocess.run(
        ["openssl", "crl", "-in", pem, "-outform", "DER", "-out", str(der)],
        check=True,
        capture_output=True,
    )
    assert not der.read_bytes().startswith(b"-----")
    data = two_connections(tmp_path, ca, aife, a=a, crls=[str(der)])
    registry, _ = registry_of(write_config(data))
    with pytest.raises(ConnectionStateError, match="was revoked"):
        registry.check_traffic("a", now=now())


def test_a_crl_signature_is_checked_once_however_many_certificates_it_covers(
    tmp_path: Path, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections sharing a CA share its CRL: its signature (a hash of the whole CRL) is
    verified once per issuer key, and a listed serial is still found among many."""
    calls: list[str] = []
    real = certrevocation._signed_by

    def counted(listed: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        calls.append(issuer.subject.rfc4514_string())
        return real(listed, issuer)

    monkeypatch.setattr(certrevocation, "_signed_by", counted)
    leaves = [ca.issue(f"leaf{n}") for n in range(5)]
    path = write_crl(tmp_path / "i.crl", crl(ca.issuer, ca.issuer_key, [leaves[3].cert]))
    revocations = certrevocation.Revocations(certrevocation.load_crls(path, source="crls[0]"))
    for leaf in leaves[:3] + leaves[4:]:
        assert revocations.check([leaf.cert, ca.issuer, ca.root], now=now(), connection="c") == []
    with pytest.raises(CertificateRevoked, match="leaf3"):
        revocations.check([leaves[3].cert, ca.issuer, ca.root], now=now(), connection="c")
    assert calls == [ca.issuer.subject.rfc4514_string()]  # the root is named by no CRL


def test_each_crl_file_is_due_when_the_earliest_list_it_holds_is(
    tmp_path: Path, ca: TestCA, aife: Issued, write_config: WriteConfig
) -> None:
    """The due dates the daemon turns into `raccord_crl_next_update_timestamp_seconds`."""
    soon = crl(ca.issuer, ca.issuer_key, [], next_update=dt.timedelta(days=2))
    later = crl(ca.issuer, ca.issuer_key, [], next_update=dt.timedelta(days=9))
    first = write_crl(tmp_path / "two.crl", later, soon)
    second = write_crl(tmp_path / "one.crl", later)
    data = two_connections(tmp_path, ca, aife, a=ca.issue("a"), crls=[first, second])
    creds, errors = load_credentials(load(write_config(data)), now=now())
    assert errors == []
    due = creds.revocations.next_updates()
    assert set(due) == {"gateway.crls[0]", "gateway.crls[1]"}
    assert due["gateway.crls[0]"] == soon.next_update_utc
    assert due["gateway.crls[1]"] == later.next_update_utc
