"""gateway.certpolicy: each rule on real X.509 from tests.pki or OpenSSL, hostile cases first."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.certload import load_certificates, new_key_and_csr, parse_certificates
from gateway.certpolicy import (
    AssuranceLevel,
    CertRole,
    assurance_of,
    check_certificate,
    check_key_matches,
    check_key_strength,
    check_period,
    check_usage,
    check_validity,
    days_until_expiry,
    expires_soon,
    find_shared_material,
    fingerprint,
    inspect_file,
    report,
    verify_chain,
)
from gateway.errors import CertificateError
from tests.pki import Issued, PrivateKey, TestCA, ec_key, now, rsa_key

NOW = now()
DAY = dt.timedelta(days=1)
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
Ext = tuple[x509.ExtensionType, bool]


def build(
    common_name: str,
    *,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    key: PrivateKey,
    ca: bool,
    path_length: int | None = None,
    not_after: dt.datetime | None = None,
    extensions: Sequence[Ext] = (),
) -> x509.Certificate:
    """A certificate the TestCA cannot make: odd intermediates, self-signed leaves, extras."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(not_after or NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def der_oid(dotted: str) -> bytes:
    encoded: bytes = core.ObjectIdentifier(dotted).dump()
    return encoded


def der_seq(*parts: bytes) -> bytes:
    body = b"".join(parts)
    assert len(body) < 128
    return b"\x30" + bytes([len(body)]) + body


def qc_extension(der: bytes) -> Ext:
    oid = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
    return x509.UnrecognizedExtension(oid, der), False


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("Policy Root")


@pytest.fixture(scope="module")
def chained() -> TestCA:
    return TestCA("Policy Chain Root", intermediate=True)


@pytest.fixture(scope="module")
def good(ca: TestCA) -> Issued:
    return ca.issue("b2g-qual.pa.example.fr", key=ec_key())


# --- validity --------------------------------------------------------------------------------


def test_expired_certificate_is_refused_with_its_date(ca: TestCA) -> None:
    old = ca.issue("old", key=ec_key(), not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    with pytest.raises(CertificateError, match=r"CN=old.* expired on 20\d\d-") as info:
        check_certificate(
            "b2g-qual", chain=[old.cert], role=CertRole.TLS_CLIENT, anchors=[ca.root], now=NOW
        )
    assert info.value.connection == "b2g-qual"


def test_not_yet_valid_certificate_is_a_distinct_reason(ca: TestCA) -> None:
    early = ca.issue("early", key=ec_key(), not_before=NOW + DAY, not_after=NOW + 400 * DAY)
    with pytest.raises(CertificateError, match="is not valid before"):
        check_validity(early.cert, NOW, connection="g2b-qual")


def test_naive_now_is_a_programming_error(good: Issued) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_validity(good.cert, dt.datetime(2026, 1, 1))


def test_certificate_ending_before_the_connection_period_warns(good: Issued) -> None:
    end = good.cert.not_valid_after_utc
    assert check_period(good.cert, valid_until=end - DAY) is None
    warning = check_period(good.cert, valid_until=(end + 3 * DAY).date())
    assert warning is not None
    assert "before the connection's validity period ends" in warning
    assert check_period(good.cert, valid_until=end.date() - DAY) is None  # whole last day


def test_expiry_counting(ca: TestCA) -> None:
    soon = ca.issue("soon", key=ec_key(), not_after=NOW + 10 * DAY)
    assert days_until_expiry(soon.cert, NOW) == 10
    assert expires_soon(soon.cert, NOW)
    assert not expires_soon(soon.cert, NOW, days=9)
    assert days_until_expiry(soon.cert, NOW + 11 * DAY) == -1
    assert expires_soon(soon.cert, NOW + 11 * DAY)


# --- chain -----------------------------------------------------------------------------------


def test_untrusted_root_is_refused(ca: TestCA) -> None:
    stranger = TestCA("Stranger Root").issue("stranger", key=ec_key())
    with pytest.raises(CertificateError, match="neither a trust anchor nor in the supplied"):
        verify_chain(stranger.cert, anchors=[ca.root], now=NOW)


def test_self_signed_root_supplied_in_the_chain_is_still_untrusted(ca: TestCA) -> None:
    other = TestCA("Other Root")
    leaf = other.issue("other", key=ec_key())
    with pytest.raises(CertificateError, match="is not a configured trust anchor"):
        verify_chain(leaf.cert, intermediates=[other.root], anchors=[ca.root], now=NOW)


def test_impostor_root_with_the_trusted_name_is_refused(ca: TestCA) -> None:
    impostor = TestCA("Policy Root")  # same subject as the trust anchor, another key
    leaf = impostor.issue("victim", key=ec_key())
    with pytest.raises(CertificateError, match="does not verify with the key of"):
        verify_chain(leaf.cert, anchors=[ca.root], now=NOW, connection="b2g-prod")


def test_broken_signature_is_refused(ca: TestCA) -> None:
    der = bytearray(ca.issue("tampered").cert.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the RSA signature
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(CertificateError, match=r"signature of CN=tampered.* does not verify"):
        verify_chain(tampered, anchors=[ca.root], now=NOW)


def test_chain_with_intermediate_read_from_the_file(chained: TestCA, tmp_path: Path) -> None:
    leaf = chained.issue("chained", key=ec_key())
    (tmp_path / "chain.pem").write_bytes(leaf.cert_pem())
    leaf_cert, *rest = load_certificates(tmp_path / "chain.pem")
    verified = verify_chain(leaf_cert, intermediates=rest, anchors=[chained.root], now=NOW)
    assert verified.path == (leaf.cert, chained.issuer, chained.root)
    assert verified.warnings == ()


def test_missing_intermediate_is_named(chained: TestCA) -> None:
    leaf = chained.issue("orphan", key=ec_key())
    with pytest.raises(CertificateError, match=r"Intermediate.*missing intermediate"):
        verify_chain(leaf.cert, anchors=[chained.root], now=NOW)


def test_expired_intermediate_is_named(ca: TestCA) -> None:
    inter_key = ec_key()
    inter = build("Old Sub CA", issuer=(ca.root, ca.root_key), key=inter_key, ca=True,
                  not_after=NOW - DAY)  # fmt: skip
    leaf = build("leaf", issuer=(inter, inter_key), key=ec_key(), ca=False)
    with pytest.raises(CertificateError, match="intermediate CN=Old Sub CA expired on"):
        verify_chain(leaf, intermediates=[inter], anchors=[ca.root], now=NOW)


def test_end_entity_posing_as_issuer_is_refused(ca: TestCA) -> None:
    fake = ca.issue("fake-ca", key=ec_key())
    victim = build("victim", issuer=(fake.cert, fake.key), key=ec_key(), ca=False)
    with pytest.raises(CertificateError, match=r"CN=fake-ca.* issues certificates but is not a CA"):
        verify_chain(victim, intermediates=[fake.cert], anchors=[ca.root], now=NOW)


def test_path_length_constraint_is_enforced(ca: TestCA) -> None:
    k1, k2 = ec_key(), ec_key()
    top = build("Sub CA 0", issuer=(ca.root, ca.root_key), key=k1, ca=True, path_length=0)
    below = build("Sub CA 1", issuer=(top, k1), key=k2, ca=True)
    leaf = build("deep", issuer=(below, k2), key=ec_key(), ca=False)
    with pytest.raises(CertificateError, match="path length constraint exceeded"):
        verify_chain(leaf, intermediates=[below, top], anchors=[ca.root], now=NOW)


@pytest.mark.interop
def test_sha1_signed_certificate_made_by_openssl_is_refused(ca: TestCA, tmp_path: Path) -> None:
    _, csr = new_key_and_csr(common_name="sha1", role=CertRole.TLS_CLIENT, organization="PA",
                             key_type="ec-p256")  # fmt: skip
    (tmp_path / "req.csr").write_bytes(csr)
    (tmp_path / "ca.pem").write_bytes(ca.root_pem())
    plain = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    (tmp_path / "ca.key").write_bytes(
        ca.root_key.private_bytes(serialization.Encoding.PEM, pkcs8, plain)
    )
    done = subprocess.run(
        ["openssl", "x509", "-req", "-in", tmp_path / "req.csr", "-CA", tmp_path / "ca.pem",
         "-CAkey", tmp_path / "ca.key", "-sha1", "-days", "30", "-out", tmp_path / "sha1.pem"],
        capture_output=True, check=False, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"this OpenSSL refuses SHA-1 signing: {done.stderr.decode()[:120]}")
    (weak,) = load_certificates(tmp_path / "sha1.pem")
    with pytest.raises(CertificateError, match="is signed with sha1"):
        verify_chain(weak, anchors=[ca.root], now=now() + dt.timedelta(minutes=5))


def test_fallback_accepts_server_only_intermediate_with_a_warning(ca: TestCA) -> None:
    key = ec_key()
    server_only = x509.ExtendedKeyUsage([SERVER])
    inter = build("Server Sub CA", issuer=(ca.root, ca.root_key), key=key, ca=True,
                  extensions=[(server_only, False)])  # fmt: skip
    leaf = build("www", issuer=(inter, key), key=ec_key(), ca=False,
                 extensions=[(server_only, False)])  # fmt: skip
    verified = verify_chain(leaf, intermediates=[inter], anchors=[ca.root], now=NOW)
    assert verified.path == (leaf, inter, ca.root)
    assert len(verified.warnings) == 1
    assert "explicit signature checks" in verified.warnings[0]


def test_fallback_refuses_what_only_the_verifier_can_judge(ca: TestCA) -> None:
    key = ec_key()
    only_example = x509.NameConstraints([x509.DNSName("example.org")], None)
    inter = build("Constrained CA", issuer=(ca.root, ca.root_key), key=key, ca=True,
                  extensions=[(only_example, True)])  # fmt: skip
    evil = x509.SubjectAlternativeName([x509.DNSName("evil.test")])
    leaf = build("evil", issuer=(inter, key), key=ec_key(), ca=False, extensions=[(evil, False)])
    with pytest.raises(CertificateError, match=r"2\.5\.29\.30, which the explicit checks cannot"):
        verify_chain(leaf, intermediates=[inter], anchors=[ca.root], now=NOW)


def test_pinned_self_signed_certificate_is_its_own_anchor() -> None:
    key = ec_key()
    pinned = build("aife-partner", issuer=None, key=key, ca=False)
    assert verify_chain(pinned, anchors=[pinned], now=NOW).path == (pinned,)
    with pytest.raises(CertificateError, match="no trust anchor configured"):
        verify_chain(pinned, anchors=[], now=NOW)


# --- usage, strength, key match --------------------------------------------------------------


def test_wrong_eku_for_the_role_is_refused(ca: TestCA) -> None:
    server = ca.issue("server-only", key=ec_key(), eku=[SERVER])
    with pytest.raises(CertificateError, match="lacks clientAuth needed for tls-client"):
        check_usage(server.cert, role=CertRole.TLS_CLIENT, connection="sftp-prod")
    check_usage(server.cert, role=CertRole.TLS_SERVER)


def test_absent_or_any_eku_restricts_nothing(ca: TestCA) -> None:
    bare = ca.issue("no-eku", key=ec_key(), eku=[])
    anything = ca.issue("any", key=ec_key(), eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    for cert in (bare.cert, anything.cert):
        check_usage(cert, role=CertRole.TLS_CLIENT)
        check_usage(cert, role=CertRole.TLS_SERVER)


def test_key_usage_must_fit_the_role(ca: TestCA) -> None:
    no_ke = ca.issue("no-ke", key=rsa_key(), key_encipherment=False)
    with pytest.raises(CertificateError, match="does not allow encryption"):
        check_usage(no_ke.cert, role=CertRole.ENCRYPTION)
    no_ds = ca.issue("no-ds", key=ec_key(), digital_signature=False)
    with pytest.raises(CertificateError, match="needs one of digitalSignature"):
        check_usage(no_ds.cert, role=CertRole.TLS_CLIENT)
    ec_leaf = ca.issue("ec-enc", key=ec_key())  # EC encryption needs keyAgreement
    with pytest.raises(CertificateError, match="needs one of keyAgreement"):
        check_usage(ec_leaf.cert, role=CertRole.ENCRYPTION)


def test_ca_certificate_is_not_an_end_entity(ca: TestCA) -> None:
    with pytest.raises(CertificateError, match="is a CA certificate"):
        check_usage(ca.root, role=CertRole.SIGNING)


def test_rsa_1024_is_refused(ca: TestCA) -> None:
    weak = ca.issue("rsa1024", key=rsa_key(1024))
    with pytest.raises(CertificateError, match="RSA key of 1024 bits is too weak"):
        check_certificate(
            "pesit-prod", chain=[weak.cert], role=CertRole.TLS_SERVER, anchors=[ca.root], now=NOW
        )


def test_ec_p192_is_refused(ca: TestCA) -> None:
    weak = ca.issue("p192", key=ec_key(ec.SECP192R1()))
    with pytest.raises(CertificateError, match="EC key on secp192r1 is too weak"):
        check_key_strength(weak.cert, role=CertRole.TLS_CLIENT)


def test_odd_curve_and_ed25519_outside_signing_are_refused() -> None:
    with pytest.raises(CertificateError, match="secp256k1 is not accepted"):
        check_key_strength(ec_key(ec.SECP256K1()), role=CertRole.SIGNING)
    ed = ed25519.Ed25519PrivateKey.generate()
    check_key_strength(ed.public_key(), role=CertRole.SIGNING)
    with pytest.raises(CertificateError, match="Ed25519 keys are accepted for signing only"):
        check_key_strength(ed, role=CertRole.ENCRYPTION)
    check_key_strength(ec_key(ec.SECP384R1()), role=CertRole.TLS_SERVER)


def test_key_that_does_not_match_the_certificate_is_refused(ca: TestCA, good: Issued) -> None:
    with pytest.raises(CertificateError, match="private key does not match the certificate"):
        check_certificate("b2g-qual", chain=[good.cert], role=CertRole.TLS_CLIENT,
                          anchors=[ca.root], now=NOW, key=ec_key())  # fmt: skip
    check_key_matches(good.cert, good.key)


# --- one certificate, one connection ---------------------------------------------------------


def test_same_certificate_for_two_connections_names_both(good: Issued) -> None:
    errors = find_shared_material(
        {"b2g-qual": [good.cert, good.key], "b2g-prod": [good.cert, good.key]}
    )
    assert len(errors) == 1  # reported as the certificate, not again as its key
    (error,) = errors
    assert error.connection == "b2g-prod"
    assert error.reason == (
        f"certificate sha256 {fingerprint(good.cert)} is also used by connection b2g-qual"
    )


def test_same_key_under_two_certificates_is_caught(ca: TestCA) -> None:
    key = ec_key()
    first, second = ca.issue("first", key=key), ca.issue("second", key=key)
    errors = find_shared_material({"g2b-qual": [first.cert], "g2b-prod": [second.cert]})
    assert [(e.connection, e.reason.split(" (")[0]) for e in errors] == [("g2b-prod", "key")]
    assert "is also used by connection g2b-qual" in errors[0].reason
    errors = find_shared_material({"a": [key], "b": [second.cert, second.key]})
    assert [e.connection for e in errors] == ["b"]


def test_chains_and_repeats_inside_one_connection_are_not_sharing(ca: TestCA, good: Issued) -> None:
    other = ca.issue("other", key=ec_key())
    material = {
        "b2g-qual": [good.cert, ca.root, good.cert, good.key],
        "b2g-prod": [other.cert, other.key, ca.root],
    }
    assert find_shared_material(material) == []


# --- assurance -------------------------------------------------------------------------------


def test_qwac_from_qc_statements(ca: TestCA) -> None:
    qwac = ca.issue("qwac", key=ec_key(), qc_statements=True)
    assert assurance_of(qwac.cert) == (AssuranceLevel.QWAC, ())
    assert AssuranceLevel.QWAC.accepted_by_chorus_pro


@pytest.mark.parametrize(
    ("policy", "level"),
    [
        ("0.4.0.194112.1.4", AssuranceLevel.QWAC),
        ("0.4.0.194112.1.5", AssuranceLevel.QWAC),
        ("0.4.0.19495.3.1", AssuranceLevel.QWAC),
        ("0.4.0.194112.1.1", AssuranceLevel.EIDAS_QUALIFIED),
        ("1.2.250.1.223.42.1", AssuranceLevel.RGS_UNRATED),
        ("1.2.250.1.2230", AssuranceLevel.NONE),  # a prefix of digits is not the arc
    ],
)
def test_policy_oids_map_to_levels(ca: TestCA, policy: str, level: AssuranceLevel) -> None:
    cert = ca.issue("policy", key=ec_key(), policies=[policy]).cert
    found, warnings = assurance_of(cert)
    assert found is level
    assert bool(warnings) is not level.accepted_by_chorus_pro


def test_rgs_level_from_the_operator_table(ca: TestCA) -> None:
    cert = ca.issue("rgs", key=ec_key(), policies=["1.2.250.1.177.2.6.1.3"]).cert
    assert assurance_of(cert)[0] is AssuranceLevel.NONE
    table = {"1.2.250.1.177.2.6": AssuranceLevel.RGS_2}
    assert assurance_of(cert, extra_policies=table) == (AssuranceLevel.RGS_2, ())


def test_qc_statement_variants(ca: TestCA) -> None:
    compliance = der_seq(der_oid("0.4.0.1862.1.1"))
    web_type = der_seq(der_oid("0.4.0.1862.1.6"), der_seq(der_oid("0.4.0.1862.1.6.3")))
    key = ec_key()
    issuer = (ca.root, ca.root_key)
    only_compliance = build("seal", issuer=issuer, key=key, ca=False,
                            extensions=[qc_extension(der_seq(compliance))])  # fmt: skip
    assert assurance_of(only_compliance)[0] is AssuranceLevel.EIDAS_QUALIFIED
    only_web = build("web", issuer=issuer, key=key, ca=False,
                     extensions=[qc_extension(der_seq(web_type))])  # fmt: skip
    level, warnings = assurance_of(only_web)
    assert level is AssuranceLevel.NONE
    assert any("without QcCompliance" in w for w in warnings)
    broken = build("broken", issuer=issuer, key=key, ca=False,
                   extensions=[qc_extension(b"\x30\x05\x30\x03\x06\x01")])  # fmt: skip
    level, warnings = assurance_of(broken)
    assert level is AssuranceLevel.NONE
    assert any(w.startswith("malformed extensions") for w in warnings)


def test_malformed_extension_is_a_reason_never_a_crash(ca: TestCA) -> None:
    garbage = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.15"), b"\x04\x01")
    bad = build("bad-ku", issuer=(ca.root, ca.root_key), key=ec_key(), ca=False,
                extensions=[(garbage, True)])  # fmt: skip
    reason = r"malformed or unsupported X\.509 certificate \(extensions\)"
    with pytest.raises(CertificateError, match=reason) as info:
        check_certificate("b2g-qual", chain=[bad], role=CertRole.TLS_CLIENT, anchors=[ca.root],
                          now=NOW)  # fmt: skip
    assert info.value.connection == "b2g-qual"
    with pytest.raises(CertificateError, match=reason):
        report(bad, now=NOW)
    with pytest.raises(CertificateError, match=reason):
        parse_certificates(bad.public_bytes(serialization.Encoding.DER))
    (error,) = find_shared_material({"a": [bad]})
    assert error.connection == "a"


def test_sandbox_certificate_without_markers_only_warns(ca: TestCA, good: Issued) -> None:
    result = check_certificate(
        "b2g-qual",
        chain=[good.cert],
        role=CertRole.TLS_CLIENT,
        anchors=[ca.root],
        now=NOW,
        key=good.key,
        valid_until=good.cert.not_valid_after_utc + 30 * DAY,
    )
    assert result.assurance is AssuranceLevel.NONE
    assert any("not for Chorus Pro" in w for w in result.warnings)
    assert any("validity period" in w for w in result.warnings)


# --- reports ---------------------------------------------------------------------------------


@pytest.mark.interop
def test_report_fields_agree_with_openssl(ca: TestCA, tmp_path: Path) -> None:
    leaf = ca.issue("report", key=rsa_key(), policies=["0.4.0.194112.1.5"])
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem())
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-fingerprint", "-sha256",
         "-in", tmp_path / "leaf.pem"],
        capture_output=True, check=True, timeout=30,
    ).stdout.decode()  # fmt: skip
    (only,) = inspect_file(tmp_path / "leaf.pem", now=NOW)
    assert f"serial={only.serial}" in out.replace("serial=0", "serial=")
    assert f"Fingerprint={only.fingerprint_sha256}" in out
    assert only.subject == "CN=report,O=Raccord Tests,C=FR"
    assert only.issuer == "CN=Policy Root,O=Raccord Tests,C=FR"
    assert only.key == "RSA 2048"
    assert only.key_usages == ("digitalSignature", "keyEncipherment")
    assert only.extended_key_usages == ("serverAuth", "clientAuth")
    assert only.assurance is AssuranceLevel.QWAC
    assert only.warnings == ()
    assert only.not_after == leaf.cert.not_valid_after_utc


def test_inspect_chain_file_reports_each_certificate(chained: TestCA, tmp_path: Path) -> None:
    leaf = chained.issue("inspect", key=ec_key(), not_after=NOW + 5 * DAY)
    (tmp_path / "chain.pem").write_bytes(leaf.cert_pem())
    first, second = inspect_file(tmp_path / "chain.pem", now=NOW)
    assert first.key == "EC P-256"
    assert "expires in 5 days" in first.warnings
    assert any("RGS" in w for w in first.warnings)
    assert second.subject.startswith("CN=Policy Chain Root Intermediate")
    assert second.warnings == ()  # CA certificates carry no assurance warning
    assert report(leaf.cert).warnings == first.warnings[:-1]  # no `now`: no time warning


@pytest.fixture(scope="module")
def fuzz_leaf(chained: TestCA) -> Issued:
    return chained.issue("fuzz", key=ec_key(), policies=["1.2.250.1.223.1"], qc_statements=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_certificate_is_judged_never_crashes(
    data: st.DataObject, ca: TestCA, chained: TestCA, fuzz_leaf: Issued
) -> None:
    leaf = fuzz_leaf
    blob = bytearray(leaf.cert.public_bytes(serialization.Encoding.DER))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
        blob[position] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        (cert,) = parse_certificates(bytes(blob))
    except CertificateError:
        return
    report(cert, now=NOW)
    for role in CertRole:
        with contextlib.suppress(CertificateError):
            check_certificate("fuzz", chain=[cert, *leaf.chain], role=role,
                              anchors=[chained.root, ca.root], now=NOW, key=leaf.key)  # fmt: skip
    find_shared_material({"a": [cert], "b": [cert, leaf.key]})
