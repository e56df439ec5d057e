"""Certificate and key material: bytes in (PEM, DER, PKCS#7, PKCS#8, PKCS#12), objects out.

Pure apart from reading the one file it is asked to load. The format is sniffed from the
content (the file suffix is never trusted), every file is capped at `MAX_FILE_BYTES`
before it is read in full, and every failure is a `CertificateError` whose reason names
the file and what was wrong with it, never a passphrase or a byte of key material.

Creating keys and CSRs lives in `gateway.certrequest`, the DER reader in `gateway.der`;
their public names are re-exported here for existing callers.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from gateway.certrequest import (
    KEY_TYPES,
    CertRole,
    PrivateKey,
    PublicKey,
    RoleProfile,
    key_family,
    new_key_and_csr,
    role_profile,
    write_private_key,
)
from gateway.der import (
    OID_SIGNED_DATA,
    DerError,
    der_children,
    der_elements,
    der_header,
    der_oid,
    pkcs7_certificate_ders,
)
from gateway.errors import CertificateError

__all__ = [
    "KEY_TYPES",
    "MAX_FILE_BYTES",
    "CertRole",
    "DerError",
    "KeyAndChain",
    "MaterialKind",
    "PrivateKey",
    "PublicKey",
    "RoleProfile",
    "der_children",
    "der_elements",
    "der_oid",
    "ensure_well_formed",
    "export_p7b",
    "key_family",
    "load_certificates",
    "load_pkcs12",
    "load_private_key",
    "new_key_and_csr",
    "parse_certificates",
    "parse_pkcs12",
    "parse_private_key",
    "read_material",
    "role_profile",
    "sniff",
    "write_private_key",
]

MAX_FILE_BYTES = 5 * 1024 * 1024  # the connection sheet's limit: "at most 5 MB" per file
_LOAD_ERRORS = (  # what cryptography raises on hostile bytes (not all are ValueErrors)
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_CERT_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_P7_LABELS = frozenset({b"PKCS7", b"CMS"})
_KEY_LABELS = frozenset(
    {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
)


class MaterialKind(StrEnum):
    """What a blob of bytes holds, judged from its content alone."""

    PEM = "pem"
    CERTIFICATE = "der-certificate"
    PKCS7 = "pkcs7"
    PKCS12 = "pkcs12"
    PKCS8 = "pkcs8"
    ENCRYPTED_PKCS8 = "encrypted-pkcs8"
    TRADITIONAL_KEY = "traditional-key"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class KeyAndChain:
    """What a PKCS#12 file carries: the key, its certificate and the chain above it."""

    key: PrivateKey | None
    certificate: x509.Certificate | None
    chain: tuple[x509.Certificate, ...]


def _fail(source: str, reason: str) -> CertificateError:
    return CertificateError(None, f"{source}: {reason}")


# --- format sniffing -----------------------------------------------------------------------


def _sniff_sequence(data: bytes) -> MaterialKind:
    _, start, _ = der_header(data, 0)
    tag1, start1, len1 = der_header(data, start)
    if tag1 == 0x06 and len1 is not None:  # ContentInfo: contentType OID first
        oid = der_oid(data[start1 : start1 + len1])
        return MaterialKind.PKCS7 if oid == OID_SIGNED_DATA else MaterialKind.UNKNOWN
    if tag1 == 0x02 and len1 is not None:  # version INTEGER: PFX(3), PKCS#8(0/1), RSA/EC keys
        version = int.from_bytes(data[start1 : start1 + len1], "big", signed=True)
        if version == 3:
            return MaterialKind.PKCS12
        tag2, _, _ = der_header(data, start1 + len1)
        if tag2 == 0x30 and version in (0, 1):
            return MaterialKind.PKCS8
        return MaterialKind.TRADITIONAL_KEY if tag2 in (0x02, 0x04) else MaterialKind.UNKNOWN
    if tag1 == 0x30:  # Certificate (tbs first) or EncryptedPrivateKeyInfo (algorithm first)
        tag2, _, _ = der_header(data, start1)
        return MaterialKind.ENCRYPTED_PKCS8 if tag2 == 0x06 else MaterialKind.CERTIFICATE
    return MaterialKind.UNKNOWN


def sniff(data: bytes) -> MaterialKind:
    """Tell PEM from the DER structures by their content, never by a file name."""
    kind = MaterialKind.UNKNOWN
    if len(data) >= 4 and data[0] == 0x30:
        try:
            kind = _sniff_sequence(data)
        except DerError:
            kind = MaterialKind.UNKNOWN
    if kind is MaterialKind.UNKNOWN and _PEM_BEGIN.search(data):
        return MaterialKind.PEM
    return kind


# --- PEM -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PemBlock:
    label: bytes
    text: bytes  # the whole block, BEGIN to END line included
    body: bytes  # the base64 text between the armour lines


def pem_blocks(data: bytes, source: str) -> list[PemBlock]:
    blocks: list[PemBlock] = []
    pos = 0
    while match := _PEM_BEGIN.search(data, pos):
        label = match.group(1)
        end_line = b"-----END " + label + b"-----"
        end = data.find(end_line, match.end())
        following = data.find(b"-----BEGIN ", match.end())
        if end < 0 or 0 <= following < end:
            raise _fail(source, f"truncated PEM: BEGIN {label.decode()} without its END line")
        blocks.append(
            PemBlock(label, data[match.start() : end + len(end_line)], data[match.end() : end])
        )
        pos = end + len(end_line)
    return blocks


def pem_der(block: PemBlock, source: str) -> bytes:
    if b":" in block.body:
        raise _fail(source, f"PEM {block.label.decode()} block carries headers; not expected")
    try:
        return base64.b64decode(b"".join(block.body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(source, f"PEM {block.label.decode()} block is not valid base64") from None


# --- certificates --------------------------------------------------------------------------


def ensure_well_formed(cert: x509.Certificate, *, source: str = "certificate") -> None:
    """Parse now what cryptography parses lazily, so later checks meet no surprise."""
    part = "subject"
    try:
        _ = cert.subject, cert.not_valid_before_utc, cert.not_valid_after_utc
        part = "issuer"
        _ = cert.issuer
        part = "extensions"
        _ = list(cert.extensions)
        part = "public key"
        _ = cert.public_key()
        part = "signature algorithm"
        _ = cert.signature_hash_algorithm
    except _LOAD_ERRORS:
        raise _fail(source, f"malformed or unsupported X.509 certificate ({part})") from None


def _serial_is_positive(der: bytes) -> bool:
    """RFC 5280 wants a positive serial; cryptography only warns today, and will refuse."""
    try:
        ((_, body),) = der_children(der)
        tbs = der_children(der_children(body)[0][1])
        tag, serial = tbs[1] if tbs[0][0] == 0xA0 else tbs[0]
    except (DerError, IndexError, ValueError):
        return True  # not our call: the full parser judges the structure
    return tag != 0x02 or (bool(serial) and serial[0] < 0x80 and serial.strip(b"\0") != b"")


def _der_certificate(der: bytes, source: str) -> x509.Certificate:
    if not _serial_is_positive(der):
        raise _fail(source, "X.509 serial number is zero or negative (RFC 5280 forbids it)")
    try:
        return x509.load_der_x509_certificate(der)
    except _LOAD_ERRORS:
        raise _fail(source, "malformed X.509 certificate") from None


def _p7_certificates(der: bytes, source: str) -> list[x509.Certificate]:
    """Read with our DER reader: it keeps file order, and OpenSSL's unsorted SETs pass."""
    try:
        certs = [_der_certificate(c, source) for c in pkcs7_certificate_ders(der)]
    except (DerError, ValueError):  # BER (indefinite lengths): cryptography reads that
        try:
            certs = pkcs7.load_der_pkcs7_certificates(der)
        except _LOAD_ERRORS:
            raise _fail(source, "malformed PKCS#7 (or not a certs-only SignedData)") from None
    if not certs:
        raise _fail(source, "PKCS#7 holds no certificate")
    return certs


def _pem_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    blocks = pem_blocks(data, source)
    certs: list[x509.Certificate] = []
    for block in blocks:
        if block.label in _CERT_LABELS:
            certs.append(_der_certificate(pem_der(block, source), source))
        elif block.label in _P7_LABELS:
            certs.extend(_p7_certificates(pem_der(block, source), source))
    if not certs:
        found = ", ".join(sorted({b.label.decode() for b in blocks})) or "nothing"
        raise _fail(source, f"no certificate in PEM (found: {found})")
    return certs


def parse_certificates(
    data: bytes, *, source: str = "<bytes>", passphrase: bytes | None = None
) -> list[x509.Certificate]:
    """Every certificate in PEM (certs and PKCS#7 blocks), DER, PKCS#7 or PKCS#12 bytes."""
    certs = _certificates(data, source, passphrase)
    for cert in certs:
        ensure_well_formed(cert, source=source)
    return certs


def _certificates(data: bytes, source: str, passphrase: bytes | None) -> list[x509.Certificate]:
    kind = sniff(data)
    if kind is MaterialKind.PEM:
        return _pem_certificates(data, source)
    if kind is MaterialKind.CERTIFICATE:
        return [_der_certificate(data, source)]
    if kind is MaterialKind.PKCS7:
        return _p7_certificates(data, source)
    if kind is MaterialKind.PKCS12:
        bundle = parse_pkcs12(data, source=source, passphrase=passphrase)
        certs = [c for c in (bundle.certificate, *bundle.chain) if c is not None]
        if not certs:
            raise _fail(source, "PKCS#12 holds no certificate")
        return certs
    if kind in (MaterialKind.PKCS8, MaterialKind.ENCRYPTED_PKCS8, MaterialKind.TRADITIONAL_KEY):
        raise _fail(source, "holds a private key, not a certificate")
    raise _fail(source, "unrecognised content: neither PEM, DER X.509, PKCS#7 nor PKCS#12")


# --- private keys --------------------------------------------------------------------------


def _checked_key(key: object, source: str) -> PrivateKey:
    if isinstance(key, PrivateKey):
        return key
    raise _fail(source, f"unsupported private key type {type(key).__name__}")


def _decode_key(data: bytes, *, pem: bool, source: str, passphrase: bytes | None) -> PrivateKey:
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        key = loader(data, passphrase)
    except TypeError:  # cryptography's answer to a missing or superfluous password
        if passphrase is None:
            raise _fail(source, "private key is encrypted and no passphrase was given") from None
        raise _fail(source, "a passphrase was given but the private key is not encrypted") from None
    except ValueError:
        if passphrase is not None:
            raise _fail(source, "wrong passphrase, or corrupted encrypted private key") from None
        raise _fail(source, "malformed private key") from None
    except UnsupportedAlgorithm:
        raise _fail(source, "private key uses an unsupported algorithm or cipher") from None
    return _checked_key(key, source)


def parse_private_key(
    data: bytes, *, source: str = "<bytes>", passphrase: bytes | None = None
) -> PrivateKey:
    """The one private key in PEM, DER PKCS#8 (encrypted or not) or PKCS#12 bytes."""
    secret = passphrase or None
    kind = sniff(data)
    if kind is MaterialKind.PEM:
        keys = [b for b in pem_blocks(data, source) if b.label in _KEY_LABELS]
        if len(keys) != 1:
            raise _fail(source, f"expected one private key in PEM, found {len(keys)}")
        return _decode_key(keys[0].text, pem=True, source=source, passphrase=secret)
    if kind in (MaterialKind.PKCS8, MaterialKind.ENCRYPTED_PKCS8, MaterialKind.TRADITIONAL_KEY):
        return _decode_key(data, pem=False, source=source, passphrase=secret)
    if kind is MaterialKind.PKCS12:
        bundle = parse_pkcs12(data, source=source, passphrase=secret)
        if bundle.key is None:
            raise _fail(source, "PKCS#12 holds no private key")
        return bundle.key
    if kind in (MaterialKind.CERTIFICATE, MaterialKind.PKCS7):
        raise _fail(source, "holds certificates, not a private key")
    raise _fail(source, "unrecognised content: neither PEM, PKCS#8 nor PKCS#12")


def parse_pkcs12(
    data: bytes, *, source: str = "<bytes>", passphrase: bytes | None = None
) -> KeyAndChain:
    """Key, certificate and chain of a PKCS#12 (.p12/.pfx) blob."""
    try:
        bundle = pkcs12.load_pkcs12(data, passphrase or None)
    except _LOAD_ERRORS:
        raise _fail(source, "cannot open PKCS#12: wrong passphrase or corrupted file") from None
    key = None if bundle.key is None else _checked_key(bundle.key, source)
    cert = bundle.cert.certificate if bundle.cert is not None else None
    return KeyAndChain(key, cert, tuple(c.certificate for c in bundle.additional_certs))


# --- files ---------------------------------------------------------------------------------


def read_material(path: Path | str, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `path`, refused before reading it all when larger than `max_bytes`."""
    where = str(path)
    try:  # O_NONBLOCK: a FIFO planted in place of a certificate must not hang the daemon
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _fail(where, "not a regular file")
            if info.st_size > max_bytes:
                raise _fail(where, f"file is larger than {max_bytes} bytes")
            data = handle.read(max_bytes + 1)  # a file growing meanwhile is caught here
    except OSError as exc:
        raise _fail(where, f"cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise _fail(where, f"file is larger than {max_bytes} bytes")
    if not data:
        raise _fail(where, "file is empty")
    return data


def load_certificates(
    path: Path | str, *, passphrase: bytes | None = None, max_bytes: int = MAX_FILE_BYTES
) -> list[x509.Certificate]:
    """Every certificate of a .pem/.crt/.cer/.p7b/.p12 file, in file order."""
    data = read_material(path, max_bytes=max_bytes)
    return parse_certificates(data, source=str(path), passphrase=passphrase)


def load_private_key(
    path: Path | str, *, passphrase: bytes | None = None, max_bytes: int = MAX_FILE_BYTES
) -> PrivateKey:
    """The private key of a PEM/PKCS#8 (possibly encrypted) or PKCS#12 file."""
    data = read_material(path, max_bytes=max_bytes)
    return parse_private_key(data, source=str(path), passphrase=passphrase)


def load_pkcs12(
    path: Path | str, *, passphrase: bytes | None, max_bytes: int = MAX_FILE_BYTES
) -> KeyAndChain:
    """Key + certificate + chain of a .p12/.pfx file."""
    data = read_material(path, max_bytes=max_bytes)
    if sniff(data) is not MaterialKind.PKCS12:
        raise _fail(str(path), "not a PKCS#12 file")
    return parse_pkcs12(data, source=str(path), passphrase=passphrase)


def export_p7b(chain: Sequence[x509.Certificate], *, pem: bool) -> bytes:
    """The public chain as a certs-only PKCS#7 SignedData, the form Chorus Pro's portal takes.

    Duplicates are dropped; DER encodes the certificates as a SET, so their order is the
    encoder's, not the caller's (readers rebuild the path from names and signatures).
    """
    unique = list(_dedupe(chain))
    if not unique:
        raise CertificateError(None, "cannot export an empty certificate chain")
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    return pkcs7.serialize_certificates(unique, encoding)


def _dedupe(certs: Iterable[x509.Certificate]) -> Iterable[x509.Certificate]:
    seen: set[bytes] = set()
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            yield cert
