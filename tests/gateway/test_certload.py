"""gateway.certload: every format from real files (ours and OpenSSL's), hostile input first."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.certload import (
    MAX_FILE_BYTES,
    CertRole,
    DerError,
    MaterialKind,
    der_children,
    der_oid,
    export_p7b,
    load_certificates,
    load_pkcs12,
    load_private_key,
    new_key_and_csr,
    parse_certificates,
    parse_private_key,
    read_material,
    sniff,
    write_private_key,
)
from gateway.errors import CertificateError
from tests.pki import Issued, TestCA

PASS = "Tr0ub4dor&3-secret"
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def run_openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    command = ["openssl", *map(str, args)]
    return subprocess.run(command, capture_output=True, check=False, timeout=30)


def openssl(*args: str | Path) -> bytes:
    done = run_openssl(*args)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def assert_csr_verifies(path: Path, *, form: str = "PEM") -> None:
    """OpenSSL 3.0 `req -verify` exits 0 even on failure: read what it says."""
    done = run_openssl("req", "-verify", "-noout", "-inform", form, "-in", path)
    assert b"verify OK" in done.stderr, done.stderr.decode()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("Load Test Root", intermediate=True)


@pytest.fixture(scope="module")
def leaf(ca: TestCA) -> Issued:
    return ca.issue("edi.example.fr")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, leaf: Issued) -> Path:
    """leaf.pem (leaf + intermediate), leaf.key, and OpenSSL-made derivatives of them."""
    d = tmp_path_factory.mktemp("material")
    (d / "leaf.pem").write_bytes(leaf.cert_pem())
    (d / "leaf.key").write_bytes(leaf.key_pem())
    (d / "leaf-only.pem").write_bytes(leaf.cert_pem(with_chain=False))
    return d


# --- hostile input ---------------------------------------------------------------------------


def test_file_over_5_mb_is_refused_from_its_size(tmp_path: Path) -> None:
    big = tmp_path / "huge.p7b"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: its size alone must refuse it
    with pytest.raises(CertificateError, match="larger than 5242880 bytes"):
        load_certificates(big)


def test_file_of_exactly_5_mb_is_read_and_judged_on_content(tmp_path: Path) -> None:
    edge = tmp_path / "edge.pem"
    edge.write_bytes(b"\0" * MAX_FILE_BYTES)
    with pytest.raises(CertificateError, match="unrecognised content"):
        load_certificates(edge)


def test_devices_and_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="not a regular file"):
        read_material("/dev/zero")
    fifo = tmp_path / "planted.pem"
    os.mkfifo(fifo)  # no writer: a blocking open would hang here forever
    with pytest.raises(CertificateError, match="not a regular file"):
        load_certificates(fifo)
    with pytest.raises(CertificateError, match=r"not a regular file|Is a directory"):
        load_certificates(tmp_path)


def test_missing_and_empty_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="cannot read"):
        load_certificates(tmp_path / "nope.pem")
    (tmp_path / "empty.pem").write_bytes(b"")
    with pytest.raises(CertificateError, match="file is empty"):
        load_certificates(tmp_path / "empty.pem")


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "cert.crt"
    junk.write_bytes(os.urandom(2048).replace(b"\x30", b"\x31"))
    with pytest.raises(CertificateError, match=r"cert\.crt: unrecognised content"):
        load_certificates(junk)


def test_truncated_pem_is_refused(files: Path, tmp_path: Path) -> None:
    text = (files / "leaf-only.pem").read_bytes()
    cut = tmp_path / "cut.pem"
    cut.write_bytes(text[: len(text) // 2])
    with pytest.raises(CertificateError, match="truncated PEM: BEGIN CERTIFICATE without its END"):
        load_certificates(cut)


def test_pem_block_cut_then_followed_by_another_is_truncated(files: Path) -> None:
    text = (files / "leaf.pem").read_bytes()
    first_end = text.index(b"-----END CERTIFICATE-----")
    spliced = text[: first_end - 40] + text[first_end + 26 :]
    with pytest.raises(CertificateError, match="truncated PEM"):
        parse_certificates(spliced)


def test_pem_with_invalid_base64_is_refused(files: Path) -> None:
    text = (files / "leaf-only.pem").read_bytes().replace(b"M", b"*", 1)
    with pytest.raises(CertificateError, match="not valid base64"):
        parse_certificates(text)


def test_pem_of_valid_base64_but_not_a_certificate(files: Path) -> None:
    text = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(CertificateError, match=r"malformed X\.509 certificate"):
        parse_certificates(text)


def test_pem_without_certificate_lists_what_it_found() -> None:
    csr = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CertificateError, match=r"found: CERTIFICATE REQUEST"):
        parse_certificates(csr)


def test_key_file_given_as_certificate_and_the_reverse(files: Path, leaf: Issued) -> None:
    der_key = leaf.key.private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CertificateError, match="holds a private key, not a certificate"):
        parse_certificates(der_key)
    with pytest.raises(CertificateError, match="holds certificates, not a private key"):
        parse_private_key(leaf.cert.public_bytes(DER))
    with pytest.raises(CertificateError, match="expected one private key in PEM, found 0"):
        load_private_key(files / "leaf.pem")


def test_two_private_keys_in_one_pem_are_refused(leaf: Issued) -> None:
    with pytest.raises(CertificateError, match="found 2"):
        parse_private_key(leaf.key_pem() + leaf.key_pem())


def test_unsupported_key_type_is_named() -> None:
    key = dsa.generate_private_key(2048)
    pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(CertificateError, match="unsupported private key type"):
        parse_private_key(pem)


def test_encrypted_pkcs8_wrong_passphrase_is_precise_and_never_echoed(
    files: Path, tmp_path: Path
) -> None:
    enc = tmp_path / "enc.key"
    openssl(
        "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", files / "leaf.key",
        "-out", enc, "-passout", f"pass:{PASS}",
    )  # fmt: skip
    wrong = b"not-" + PASS.encode()
    with pytest.raises(CertificateError) as info:
        load_private_key(enc, passphrase=wrong)
    assert "wrong passphrase" in info.value.reason
    for text in (str(info.value), repr(info.value), info.value.reason):
        assert PASS not in text
        assert wrong.decode() not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_encrypted_key_without_passphrase_and_plain_key_with_one(files: Path, leaf: Issued) -> None:
    with pytest.raises(CertificateError, match="encrypted and no passphrase was given"):
        parse_private_key(leaf.key_pem(PASS.encode()))
    with pytest.raises(CertificateError, match="given but the private key is not encrypted"):
        load_private_key(files / "leaf.key", passphrase=b"whatever")


def test_encrypted_pkcs8_right_passphrase_pem_and_der(files: Path, tmp_path: Path) -> None:
    for form in ("PEM", "DER"):
        out = tmp_path / f"enc.{form}"
        openssl(
            "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", files / "leaf.key",
            "-outform", form, "-out", out, "-passout", f"pass:{PASS}",
        )  # fmt: skip
        assert sniff(out.read_bytes()) in (MaterialKind.PEM, MaterialKind.ENCRYPTED_PKCS8)
        key = load_private_key(out, passphrase=PASS.encode())
        assert isinstance(key, rsa.RSAPrivateKey)


def test_traditional_openssl_keys_load(files: Path, tmp_path: Path) -> None:
    trad = tmp_path / "trad.der"
    openssl("rsa", "-in", files / "leaf.key", "-traditional", "-outform", "DER", "-out", trad)
    assert sniff(trad.read_bytes()) is MaterialKind.TRADITIONAL_KEY
    assert isinstance(load_private_key(trad), rsa.RSAPrivateKey)
    legacy = tmp_path / "legacy.pem"  # Proc-Type/DEK-Info headers inside the PEM block
    openssl("rsa", "-in", files / "leaf.key", "-traditional", "-aes256", "-out", legacy,
            "-passout", f"pass:{PASS}")  # fmt: skip
    assert b"Proc-Type: 4,ENCRYPTED" in legacy.read_bytes()
    assert isinstance(load_private_key(legacy, passphrase=PASS.encode()), rsa.RSAPrivateKey)
    with pytest.raises(CertificateError, match="wrong passphrase"):
        load_private_key(legacy, passphrase=b"bad")
    ec_pem = tmp_path / "ec.pem"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ec_pem)
    assert isinstance(load_private_key(ec_pem), ec.EllipticCurvePrivateKey)


# --- formats ---------------------------------------------------------------------------------


def test_der_certificate_is_recognised_whatever_its_suffix(leaf: Issued, tmp_path: Path) -> None:
    for name in ("leaf.cer", "leaf.crt", "misnamed.pem"):
        (tmp_path / name).write_bytes(leaf.cert.public_bytes(DER))
        assert load_certificates(tmp_path / name) == [leaf.cert]


def test_pem_bundle_keeps_file_order_and_skips_keys(leaf: Issued) -> None:
    bundle = b"Bag Attributes: junk\n" + leaf.key_pem() + leaf.cert_pem()
    assert parse_certificates(bundle) == [leaf.cert, *leaf.chain]


@pytest.mark.interop
@pytest.mark.parametrize("form", ["PEM", "DER"])
def test_pkcs7_from_openssl_crl2pkcs7(files: Path, leaf: Issued, form: str) -> None:
    p7b = files / f"chain-{form}.p7b"
    openssl("crl2pkcs7", "-nocrl", "-certfile", files / "leaf.pem", "-outform", form, "-out", p7b)
    assert sniff(p7b.read_bytes()) is (MaterialKind.PEM if form == "PEM" else MaterialKind.PKCS7)
    assert set(load_certificates(p7b)) == {leaf.cert, *leaf.chain}


@pytest.mark.interop
def test_pkcs12_with_passphrase_from_openssl(files: Path, leaf: Issued, ca: TestCA) -> None:
    p12 = files / "bundle.pfx"
    openssl(
        "pkcs12", "-export", "-inkey", files / "leaf.key", "-in", files / "leaf-only.pem",
        "-certfile", files / "leaf.pem", "-out", p12, "-passout", f"pass:{PASS}",
    )  # fmt: skip
    assert sniff(p12.read_bytes()) is MaterialKind.PKCS12
    bundle = load_pkcs12(p12, passphrase=PASS.encode())
    assert bundle.certificate == leaf.cert
    assert ca.issuer in bundle.chain
    assert bundle.key is not None
    assert bundle.key.public_key() == leaf.key.public_key()
    key = load_private_key(p12, passphrase=PASS.encode())
    assert key.public_key() == leaf.key.public_key()
    assert leaf.cert in load_certificates(p12, passphrase=PASS.encode())
    with pytest.raises(CertificateError, match="wrong passphrase or corrupted") as info:
        load_pkcs12(p12, passphrase=b"nope")
    assert PASS not in str(info.value)
    with pytest.raises(CertificateError, match="not a PKCS#12 file"):
        load_pkcs12(files / "leaf.pem", passphrase=None)


def test_sniff_tells_structures_apart(leaf: Issued) -> None:
    rsa_key = leaf.key
    pkcs8 = rsa_key.private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert sniff(pkcs8) is MaterialKind.PKCS8
    assert sniff(leaf.cert.public_bytes(DER)) is MaterialKind.CERTIFICATE
    assert sniff(export_p7b([leaf.cert], pem=False)) is MaterialKind.PKCS7
    assert sniff(b"0 leading zero then text") is MaterialKind.UNKNOWN
    assert sniff(b"\x30\x80\x06\x03\x2a\x03\x04") is MaterialKind.UNKNOWN  # ContentInfo of data


# --- DER reader ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=39),
)
def test_der_oid_agrees_with_asn1crypto(tail: list[int], first: int, second: int) -> None:
    dotted = ".".join(map(str, [first, second, *tail]))
    encoded: bytes = core.ObjectIdentifier(dotted).dump()
    assert der_oid(encoded[2:]) == dotted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_der_reader_raises_only_der_error(data: bytes) -> None:
    try:
        for _, content in der_children(data):
            der_children(content)
    except DerError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_material_never_escapes_as_a_bare_exception(
    data: st.DataObject, leaf: Issued
) -> None:
    seeds = [
        leaf.cert.public_bytes(DER),
        leaf.cert_pem(),
        export_p7b([leaf.cert], pem=False),
        leaf.key_pem(b"pw"),
    ]
    blob = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
        blob[position] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=1, max_value=len(blob)))
    for parse in (parse_certificates, parse_private_key):
        with contextlib.suppress(CertificateError):
            parse(bytes(blob[:cut]), passphrase=b"pw")


# --- export, new keys, CSRs ------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("pem", [True, False])
def test_export_p7b_is_read_back_by_openssl(leaf: Issued, tmp_path: Path, pem: bool) -> None:
    chain = [leaf.cert, *leaf.chain, leaf.cert]  # duplicates are dropped
    out = tmp_path / "chain.p7b"
    out.write_bytes(export_p7b(chain, pem=pem))
    text = openssl(
        "pkcs7", "-print_certs", "-noout", "-inform", "PEM" if pem else "DER", "-in", out
    )
    assert text.count(b"subject=") == 2
    assert b"CN = edi.example.fr" in text
    assert b"CN = Load Test Root Intermediate" in text
    assert set(load_certificates(out)) == {leaf.cert, *leaf.chain}  # a SET: DER sorts it


def test_export_of_nothing_is_refused() -> None:
    with pytest.raises(CertificateError, match="empty certificate chain"):
        export_p7b([], pem=True)


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)  # prove 0600 comes from os.open, not from a kind umask
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_write_private_key_is_0600_and_never_overwrites(tmp_path: Path, leaf: Issued) -> None:
    target = tmp_path / "new.key"
    write_private_key(target, leaf.key_pem())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == leaf.key_pem()
    with pytest.raises(CertificateError, match="already exists; refusing to overwrite"):
        write_private_key(target, b"-----BEGIN PRIVATE KEY-----\nother\n")
    assert target.read_bytes() == leaf.key_pem()


def test_write_private_key_refuses_symlinks_and_non_keys(tmp_path: Path, leaf: Issued) -> None:
    victim = tmp_path / "victim"
    link = tmp_path / "link.key"
    link.symlink_to(victim)  # dangling: O_EXCL must not follow it
    with pytest.raises(CertificateError, match="already exists"):
        write_private_key(link, leaf.key_pem())
    assert not victim.exists()
    with pytest.raises(CertificateError, match="not a PEM key"):
        write_private_key(tmp_path / "x.key", leaf.cert_pem())
    with pytest.raises(CertificateError, match="cannot create"):
        write_private_key(tmp_path / "missing-dir" / "x.key", leaf.key_pem())


def _csr_extensions(csr_pem: bytes) -> tuple[x509.KeyUsage, list[x509.ObjectIdentifier]]:
    csr = x509.load_pem_x509_csr(csr_pem)
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    try:
        ekus = list(csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = []
    return usage, ekus


@pytest.mark.interop
@pytest.mark.parametrize(
    ("role", "eku", "flag"),
    [
        (CertRole.TLS_SERVER, [ExtendedKeyUsageOID.SERVER_AUTH], "digital_signature"),
        (CertRole.TLS_CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH], "digital_signature"),
        (CertRole.SIGNING, [], "digital_signature"),
        (CertRole.ENCRYPTION, [], "key_agreement"),
    ],
)
def test_csr_requests_the_role_usages_and_openssl_verifies_it(
    tmp_path: Path, role: CertRole, eku: list[x509.ObjectIdentifier], flag: str
) -> None:
    key_pem, csr_pem = new_key_and_csr(
        common_name="pa.example.fr", role=role, organization="PA SAS", key_type="ec-p256",
        dns_names=["pa.example.fr"],
    )  # fmt: skip
    (tmp_path / "req.csr").write_bytes(csr_pem)
    assert_csr_verifies(tmp_path / "req.csr")
    usage, ekus = _csr_extensions(csr_pem)
    assert getattr(usage, flag)
    assert ekus == eku
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FR"
    assert parse_private_key(key_pem).public_key() == csr.public_key()


@pytest.mark.interop
def test_default_csr_is_rsa_3072_with_encrypted_key(tmp_path: Path) -> None:
    key_pem, csr_pem = new_key_and_csr(
        common_name="b2g-prod", role=CertRole.ENCRYPTION, organization="PA", passphrase=b"pw"
    )
    (tmp_path / "req.csr").write_bytes(csr_pem)
    assert_csr_verifies(tmp_path / "req.csr")
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(DER))
    der[-5] ^= 0x01  # inside the signature: OpenSSL must now refuse it
    (tmp_path / "bad.csr").write_bytes(bytes(der))
    with pytest.raises(AssertionError, match="verify failure"):
        assert_csr_verifies(tmp_path / "bad.csr", form="DER")
    key = parse_private_key(key_pem, passphrase=b"pw")
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072
    assert _csr_extensions(csr_pem)[0].key_encipherment


def test_csr_refuses_bad_requests() -> None:
    with pytest.raises(CertificateError, match="cannot serve the tls-client role"):
        new_key_and_csr(common_name="x", role=CertRole.TLS_CLIENT, organization="o",
                        key_type="ed25519")  # fmt: skip
    with pytest.raises(CertificateError, match="unknown key type 'rsa1024'"):
        new_key_and_csr(common_name="x", role=CertRole.SIGNING, organization="o",
                        key_type="rsa1024")  # fmt: skip
    with pytest.raises(CertificateError, match="cannot build the CSR"):
        new_key_and_csr(common_name="x", role=CertRole.SIGNING, organization="o",
                        country="FRA", key_type="ec-p256")  # fmt: skip
    key_pem, _ = new_key_and_csr(
        common_name="x", role=CertRole.SIGNING, organization="o", key_type="ed25519"
    )
    assert isinstance(parse_private_key(key_pem), ed25519.Ed25519PrivateKey)
