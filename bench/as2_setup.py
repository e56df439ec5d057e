"""bench/as2.py's keys, messages and floor: the CMS work done with cryptography and zlib alone.

Split from bench/as2.py so the measurement reads on its own: here are the sandbox set-up (a
private config and certificates), the messages AIFE would send, and the floor that does the same
cryptographic work as the daemon without HTTP or a store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import secrets
import socket
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.config_load import load
from gateway.sandbox_pki import ensure_sandbox_certificates
from protocols.as2.cms import SigningIdentity
from protocols.as2.cms_compress import DEFAULT_LEVEL
from protocols.as2.message import BuiltMessage, build_message
from protocols.as2.params import As2SendParams

OURS, AIFE, CONNECTION = "PA-BENCH", "AIFE-QUAL", "bench-as2"
OPTIONS = (
    "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256"
)
Answer = tuple[dict[str, str], bytes]


@dataclass(frozen=True, slots=True)
class Keys:
    pa_cert: x509.Certificate
    pa_key: rsa.RSAPrivateKey
    aife_cert: x509.Certificate
    aife_key: rsa.RSAPrivateKey

    @staticmethod
    def public(cert: x509.Certificate) -> rsa.RSAPublicKey:
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key


@dataclass(frozen=True, slots=True)
class Sealed:
    """One message sealed the way AS2 seals it, with nothing but primitives."""

    wrapped_key: bytes
    iv: bytes
    ciphertext: bytes
    signature: bytes


# --- the floor: the same CMS work with cryptography and zlib alone ------------------------


def seal(keys: Keys, content: bytes) -> Sealed:
    """Signed, compressed at the level our messages use, encrypted for PA."""
    signature = keys.aife_key.sign(content, asym.PKCS1v15(), hashes.SHA256())
    compressed = zlib.compress(content + signature, DEFAULT_LEVEL)
    key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(compressed) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plain) + encryptor.finalize()
    wrapped = Keys.public(keys.pa_cert).encrypt(key, asym.PKCS1v15())
    return Sealed(wrapped, iv, ciphertext, signature)


def open_sealed(keys: Keys, sealed: Sealed) -> bytes:
    """Unwrap, decrypt, inflate, verify, sign the receipt: the floor of one inbound message."""
    return _opened(keys, sealed)[1]


def _opened(keys: Keys, sealed: Sealed) -> tuple[bytes, bytes]:
    """`open_sealed`, returning the content too."""
    key = keys.pa_key.decrypt(sealed.wrapped_key, asym.PKCS1v15())
    decryptor = Cipher(algorithms.AES(key), modes.CBC(sealed.iv)).decryptor()
    plain = decryptor.update(sealed.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    inflated = zlib.decompress(unpadder.update(plain) + unpadder.finalize())
    content = inflated[: -len(sealed.signature)]
    Keys.public(keys.aife_cert).verify(sealed.signature, content, asym.PKCS1v15(), hashes.SHA256())
    return content, keys.pa_key.sign(content[:512], asym.PKCS1v15(), hashes.SHA256())


def floor_rate(keys: Keys, sealed: Sequence[Sealed], *, threads: int) -> float:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        started = time.perf_counter()
        list(pool.map(lambda item: open_sealed(keys, item), sealed))
        return len(sealed) / (time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class DurableFloor:
    """The floor plus the payload made durable: messages per second, CPU ms per message."""

    rate: float
    cpu_ms: float


def durable_floor(
    keys: Keys, sealed: Sequence[Sealed], directory: Path, *, threads: int
) -> DurableFloor:
    """The floor, then what the issue requires before the MDN leaves: the payload durable, as
    store.py's floor places it (temp file, fsync, rename into its sha256 bucket, fsync of the
    bucket). Still no HTTP, no MIME, no database: the least any durable receiver pays here."""
    tmp = directory / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for n in range(256):
        (directory / f"{n:02x}").mkdir(exist_ok=True)

    def one(item: Sealed) -> None:
        content, _ = _opened(keys, item)
        name = hashlib.sha256(content).hexdigest()
        temp = tmp / secrets.token_hex(16)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        bucket = directory / name[:2]
        os.replace(temp, bucket / name)
        dir_fd = os.open(bucket, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        cpu, started = time.process_time(), time.perf_counter()
        list(pool.map(one, sealed))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return DurableFloor(len(sealed) / elapsed, cpu * 1000 / len(sealed))


def crypto_round_trip(keys: Keys, payload: bytes) -> None:
    """The round trip's primitives alone: seal, open (as the floor), verify the receipt."""
    receipt = open_sealed(keys, seal(keys, payload))
    Keys.public(keys.pa_cert).verify(receipt, payload[:512], asym.PKCS1v15(), hashes.SHA256())


# --- setup -------------------------------------------------------------------------------


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_setup(root: Path, *, max_size: int) -> tuple[Path, int, Keys]:
    """A one-connection configuration with sandbox certificates; returns it, its port, keys."""
    port = free_port()
    certs = root / "certs"
    sheet = {
        "name": CONNECTION, "structure": "98765432400019", "environment": "qual",
        "circuit": "b2g", "protocol": "as2", "status": "actif",
        "validity": {"start": "2025-01-01", "end": "2035-12-31"},
        "contact": {"first_names": "B", "name": "Bench", "email": "bench@example.fr",
                    "phone": "+33 1 23 45 67 89"},
        "network": {"aife": {"host": "127.0.0.1", "port": 1},
                    "partner": {"host": "127.0.0.1", "port": port, "part_id": OURS}},
        "certificates": {"client": {"certificate": str(certs / "pa.pem"),
                                    "key": str(certs / "pa.key")},
                         "partner": [str(certs / "aife.pem")]},
        "subscriptions": {"reception": ["CSO1100A"]},
        "max_size": max_size,
    }  # fmt: skip
    config = {
        "gateway": {"data_dir": str(root / "data"), "log_level": "error", "shutdown_timeout": 30,
                    "trust_anchors": [str(certs / "ca.pem")],
                    "admin": {"host": "127.0.0.1", "port": 0}},
        "connections": [sheet],
    }  # fmt: skip
    path = root / "raccord.yaml"
    path.write_text(yaml.safe_dump(config))
    ensure_sandbox_certificates(load(path, check_files=False), now=now_utc())

    def pair(stem: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        cert = x509.load_pem_x509_certificate((certs / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key((certs / f"{stem}.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return cert, key

    return path, port, Keys(*pair("pa"), *pair("aife"))


def payload_of(size: int) -> bytes:
    """An XML-like payload, unique per call (so no two are content duplicates)."""
    head = f'<?xml version="1.0"?>\n<Report id="{secrets.token_hex(8)}">\n'.encode()
    lines: list[bytes] = []
    total = len(head)
    while total < size:
        lines.append(f"  <Line n='{len(lines)}' amount='{secrets.randbelow(10**9)}'/>\n".encode())
        total += len(lines[-1])
    return (head + b"".join(lines))[:size]


def aife_params(keys: Keys) -> As2SendParams:
    """AIFE's sending parameters, made once like a daemon's plan (then one file name each)."""
    return As2SendParams(
        as2_from=AIFE, as2_to=OURS, signing=SigningIdentity(keys.aife_key, keys.aife_cert),
        encryption_certificate=keys.pa_cert, file_name="CSO1100A_0.xml",
        content_type="application/xml",
    )  # fmt: skip


def build_all(keys: Keys, payloads: Sequence[bytes]) -> list[BuiltMessage]:
    params = aife_params(keys)
    return [
        build_message(data, now=now_utc(),
                      params=dataclasses.replace(params, file_name=f"CSO1100A_{i}.xml"))
        for i, data in enumerate(payloads)
    ]  # fmt: skip
