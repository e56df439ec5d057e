"""RFC 6187 in the configuration and the daemon plug: settings, planning, metrics, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from gateway import certload, metrics
from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.credentials import load_credentials
from gateway.plug_sftp import SftpServices, client_plan, factory, plan_clients
from gateway.settings.sftp import SftpSettings, plan_listeners
from protocols.sftp.keys import key_of_certificate, key_of_private, wire
from protocols.sftp.server import SftpListener
from protocols.sftp.x509auth import der
from tests.pki import Issued, TestCA, crl
from tests.sandbox import sandbox_crl
from tests.sftp.harness import edited, gateway_env, invoice, make_key, sftp_sheet, utcnow
from tests.sftp.x509kit import QUIET_PYOPENSSL, plain_keys, refusal, session, x509_keys

pytestmark = QUIET_PYOPENSSL
ENV = {"RACCORD_ADMIN_PORT": "0"}


def with_settings(sandbox: Path, tmp_path: Path, **settings: Any) -> Path:
    """The sandbox with the SFTP sheet's settings replaced (a file of its own per test)."""
    target = tmp_path / f"{tmp_path.name}.yaml"
    return edited(sandbox, target, lambda d: sftp_sheet(d).update(settings=settings))


# --- settings ------------------------------------------------------------------------------------


def test_x509_only_with_bare_authorized_keys_is_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError, match=r"x509_only.*authorized_keys"):
        SftpSettings.model_validate({"x509_only": True, "authorized_keys": "/keys"})


@pytest.mark.parametrize("field", ["x509_only", "x509_login"])
def test_the_x509_switches_are_booleans(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        SftpSettings.model_validate({field: "sometimes"})
    assert getattr(SftpSettings(), field) is False  # today's behaviour unless asked


# --- planning: AIFE's account on our listener ------------------------------------------------


def test_aife_may_log_in_with_its_certificate_and_still_its_key_by_default(sandbox: Path) -> None:
    config = load(sandbox, env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    [plan], problems = plan_listeners(config, creds)
    assert problems == []
    [account] = plan.params.accounts
    found = creds["g2b-qual-sftp"]
    assert account.x509 is not None
    assert account.x509.certificates == found.partner
    assert account.x509.anchors == found.trust_anchors
    assert not account.x509.only


def test_x509_only_makes_the_certificate_the_only_way_in(sandbox: Path, tmp_path: Path) -> None:
    config = load(with_settings(sandbox, tmp_path, x509_only=True), env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    [plan], _ = plan_listeners(config, creds)
    [account] = plan.params.accounts
    assert account.x509 is not None
    assert account.x509.only


def test_bare_authorized_keys_give_no_certificate_login(sandbox: Path, tmp_path: Path) -> None:
    make_key(tmp_path, "aife")
    path = with_settings(sandbox, tmp_path, authorized_keys=str(tmp_path / "aife.pub"))
    config = load(path, env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    [plan], _ = plan_listeners(config, creds)
    assert plan.params.accounts[0].x509 is None


def test_aife_whose_certificate_a_crl_revokes_is_refused_at_login_too(
    sandbox: Path, tmp_path: Path
) -> None:
    """The sheet's traffic stops (a warning), and its login is marked like a block account's:
    the revoked certificate and its key are refused as `x509-revoked`, not let in to be
    refused file by file."""
    certs = sandbox.parent.parent.parent / "certs" / "sandbox"
    aife = x509.load_pem_x509_certificate((certs / "aife-qual-sftp.pem").read_bytes())
    crl_path = tmp_path / "ca.crl"
    crl_path.write_bytes(sandbox_crl(sandbox, "aife-qual-sftp"))
    loaded = load(sandbox, env=ENV)
    gateway = loaded.gateway.model_copy(update={"crls": (crl_path,)})
    config = loaded.model_copy(update={"gateway": gateway})
    creds, errors = load_credentials(config, now=utcnow())
    assert errors == []
    sheet = creds["g2b-qual-sftp"]
    assert any("traffic stopped" in w for w in sheet.warnings)
    assert sheet.unusable_reason(utcnow()) is not None
    [plan], problems = plan_listeners(config, creds)
    assert problems == []
    [account] = plan.params.accounts
    assert account.x509 is not None
    [why] = account.x509.revoked.values()
    assert "was revoked" in why
    assert account.x509.revoked == {der(aife): why}
    assert account.revoked_keys == {wire(key_of_certificate(aife)): why}


def test_aife_with_no_crl_listing_it_is_marked_nowhere(sandbox: Path) -> None:
    config = load(sandbox, env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    [plan], _ = plan_listeners(config, creds)
    [account] = plan.params.accounts
    assert account.x509 is not None
    assert account.x509.revoked == {}
    assert account.revoked_keys == {}


# --- planning: partner accounts of the sftp: block ----------------------------------------------


def _block(config: Config, account: dict[str, Any], **extra: Any) -> Config:
    block = Config.model_validate({**config.model_dump(), "sftp": {"accounts": [account]}})
    assert block.sftp is not None
    if not extra:
        return block
    [parsed] = block.sftp.accounts
    accounts = (parsed.model_copy(update=extra),)  # the field the lead's model will declare
    return block.model_copy(update={"sftp": block.sftp.model_copy(update={"accounts": accounts})})


def _with_crl(config: Config, ca: TestCA, tmp_path: Path, crl_path: Path) -> Config:
    """`config` trusting `ca` too, with the CRL at `crl_path`."""
    anchors = (*config.gateway.trust_anchors, ca.write_root(tmp_path / "ca.pem"))
    gateway = config.gateway.model_copy(update={"trust_anchors": anchors, "crls": (crl_path,)})
    return config.model_copy(update={"gateway": gateway})


def _partner(tmp_path: Path) -> tuple[Issued, Path]:
    """A partner's certificate file (planning does not verify it: logins do)."""
    issued = TestCA().issue("erp-x509")
    cert, _ = issued.write(tmp_path, "erp")
    return issued, cert


def test_a_block_account_with_a_certificate_logs_in_by_it_against_the_gateway_anchors(
    sandbox: Path, tmp_path: Path
) -> None:
    issued, cert = _partner(tmp_path)
    config = _block(
        load(sandbox, env=ENV),
        {"name": "erp", "role": "deposit", "environment": "qual", "certificate": str(cert)},
    )
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert problems == []
    account = next(a for p in plans for a in p.params.accounts if a.name == "erp")
    assert account.x509 is not None
    assert account.x509.certificates == (issued.cert,)
    assert account.x509.anchors == creds["b2g-qual-as2"].trust_anchors  # gateway.trust_anchors
    assert not account.x509.only


def test_a_block_account_whose_certificate_a_crl_revokes_stays_configured_but_refused(
    sandbox: Path, tmp_path: Path
) -> None:
    """The configuration stays valid (a SIGHUP with a new CRL is never refused); the account's
    certificate and its key are marked, for the listener to refuse as `x509-revoked`."""
    ca = TestCA("Partner CA")
    issued = ca.issue("erp-revoked")
    cert, _ = issued.write(tmp_path, "erp")
    listed = crl(ca.root, ca.root_key, [issued.cert])
    crl_path = tmp_path / "partner.crl"
    crl_path.write_bytes(listed.public_bytes(serialization.Encoding.PEM))
    account = {"name": "erp", "role": "deposit", "environment": "qual", "certificate": str(cert)}
    config = _with_crl(_block(load(sandbox, env=ENV), account), ca, tmp_path, crl_path)
    reads: list[str] = []
    real = certload.read_material

    def counted(path: str) -> bytes:
        reads.append(path)
        return real(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gateway.certrevocation.read_material", counted)  # what load_crls reads
        creds, _ = load_credentials(config, now=utcnow())
        plans, problems = plan_listeners(config, creds)
    assert reads == [str(crl_path)]  # planning checks against the credentials' CRLs
    assert problems == []
    [built] = [a for p in plans for a in p.params.accounts if a.name == "erp"]
    assert built.x509 is not None
    [why] = built.x509.revoked.values()
    assert "erp-revoked" in why
    assert "was revoked" in why
    assert built.revoked_keys == {wire(key_of_certificate(issued.cert)): why}


def test_a_block_account_x509_only_logs_in_by_its_certificate_only(
    sandbox: Path, tmp_path: Path
) -> None:
    _, cert = _partner(tmp_path)
    account = {"name": "erp", "role": "deposit", "environment": "qual", "certificate": str(cert)}
    config = _block(load(sandbox, env=ENV), account, x509_only=True)
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert problems == []
    [built] = [a for p in plans for a in p.params.accounts if a.name == "erp"]
    assert built.x509 is not None
    assert built.x509.only


def test_a_block_account_x509_only_with_bare_keys_is_a_problem_naming_the_field(
    sandbox: Path, tmp_path: Path
) -> None:
    _, cert = _partner(tmp_path)
    make_key(tmp_path, "erp")
    account = {
        "name": "erp",
        "role": "deposit",
        "environment": "qual",
        "certificate": str(cert),
        "authorized_keys": str(tmp_path / "erp.pub"),
    }
    config = _block(load(sandbox, env=ENV), account, x509_only=True)
    creds, _ = load_credentials(config, now=utcnow())
    plans, problems = plan_listeners(config, creds)
    assert any(p.startswith("sftp.accounts[0].x509_only: ") for p in problems), problems
    assert all(a.name != "erp" for p in plans for a in p.params.accounts)


# --- planning: our client --------------------------------------------------------------------


def test_x509_login_presents_the_connection_certificate_chain(
    sandbox: Path, tmp_path: Path
) -> None:
    config = load(with_settings(sandbox, tmp_path, x509_login=True), env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    conn = config.connection("g2b-qual-sftp")
    assert conn is not None
    plan = client_plan(conn, creds)
    own = creds["g2b-qual-sftp"].own["client"]
    assert plan.client.certificate_chain == tuple(der(c) for c in own.chain)
    assert plan.client.client_key.public_data == key_of_private(own.key).public_data


def test_without_x509_login_the_client_presents_its_bare_key(sandbox: Path) -> None:
    config = load(sandbox, env=ENV)
    creds, _ = load_credentials(config, now=utcnow())
    conn = config.connection("g2b-qual-sftp")
    assert conn is not None
    assert client_plan(conn, creds).client.certificate_chain == ()


def test_x509_login_with_a_client_key_not_of_the_certificate_names_the_field(
    sandbox: Path, tmp_path: Path
) -> None:
    other = make_key(tmp_path, "other", "ssh-rsa")
    path = with_settings(sandbox, tmp_path, x509_login=True, client_key=str(other.private))
    with pytest.raises(ConfigErrors) as caught:
        load(path, env=ENV)  # check-config reports it, through config_problems
    [error] = caught.value.errors
    assert error.field == "connections[1].settings.client_key"
    assert "x509_login presents certificates.client" in error.reason
    config = load(path, env=ENV, check_files=False)
    creds, _ = load_credentials(config, now=utcnow())
    plans, _ = plan_clients(config, creds)
    assert plans == []  # and the daemon starts no client with it


# --- the plug, end to end --------------------------------------------------------------------


def _failures(reason: str) -> float:
    labels = {"protocol": "sftp", "reason": reason}
    return metrics.REGISTRY.get_sample_value("raccord_authentication_failures_total", labels) or 0.0


async def test_aife_logs_in_by_certificate_and_a_bare_key_is_counted_as_refused(
    sandbox: Path, tmp_path: Path
) -> None:
    path = with_settings(sandbox, tmp_path, listen_port=0, x509_only=True)
    env = await gateway_env(path, tmp_path / "data")
    [service] = factory(env.context())
    assert isinstance(service, SftpServices)
    key_file = sandbox.parent.parent.parent / "certs" / "sandbox" / "aife-qual-sftp.key"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    aife = Issued(cert=env.credentials["g2b-qual-sftp"].partner[0], key=key)
    before = _failures("x509-required")
    try:
        await service.start()
        listener = next(s for s in service.services if isinstance(s, SftpListener))
        async with (
            session(listener.port, "g2b-qual-sftp", x509_keys(aife)) as conn,
            conn.start_sftp_client() as sftp,
            sftp.open("/out/XGB0001A/by-certificate.xml", "wb") as remote,
        ):
            await remote.write(invoice())
        await refusal(listener.port, "g2b-qual-sftp", plain_keys(aife))
        for _ in range(200):
            if _failures("x509-required") > before:
                break
            await asyncio.sleep(0.01)
        assert _failures("x509-required") == before + 1
        [message] = await env.store.list_messages()
        assert (message.connection, message.interface_code) == ("g2b-qual-sftp", "XGB0001A")
    finally:
        await service.stop(timeout=2)
        await env.store.close()
