"""SSH key material: authorized keys of an account, the listener's host key, pins, fingerprints.

Blocking file I/O: callers run these at start-up or through the offload pool. Every problem is
a `KeyFileError` naming the file (and line) so configuration checks can report it precisely.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from protocols.errors import RaccordError

HOST_KEY_ALGORITHM = "ssh-ed25519"
_MAX_KEY_FILE = 1 << 20


class KeyFileError(RaccordError):
    """A key, authorized-keys, certificate or known-hosts file that cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_KEY_FILE:
            raise KeyFileError(path, f"larger than {_MAX_KEY_FILE} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(path, exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise KeyFileError(path, "not UTF-8 text") from exc


def parse_authorized_keys(text: str, *, path: Path) -> list[asyncssh.SSHKey]:
    """Public keys of an OpenSSH authorized_keys file; options are refused, not ignored."""
    keys: list[asyncssh.SSHKey] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or "=" in fields[0] or "," in fields[0]:
            raise KeyFileError(
                path, f"line {number}: expected 'type base64 [comment]' (options unsupported)"
            )
        try:
            keys.append(asyncssh.import_public_key(f"{fields[0]} {fields[1]}"))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise KeyFileError(path, f"line {number}: {exc}") from exc
    return keys


def load_authorized_keys(path: Path) -> list[asyncssh.SSHKey]:
    """The keys of one authorized_keys file (at least one)."""
    keys = parse_authorized_keys(_read_text(path), path=path)
    if not keys:
        raise KeyFileError(path, "holds no public key")
    return keys


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM or DER file (the leaf, when the file holds a chain)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(path, exc.strerror or str(exc)) from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise KeyFileError(path, f"not a usable certificate: {exc}") from exc


def certificate_key(path: Path) -> asyncssh.SSHKey:
    """The public key of an X.509 certificate (PEM or DER), for certificate-bound accounts."""
    return certificate_and_key(path)[1]


def certificate_and_key(path: Path) -> tuple[x509.Certificate, asyncssh.SSHKey]:
    """A certificate file's leaf and its SSH public key (RFC 6187 logins need both)."""
    cert = load_certificate(path)
    try:
        return cert, key_of_certificate(cert)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise KeyFileError(path, f"not a usable certificate: {exc}") from exc


def key_of_certificate(cert: x509.Certificate) -> asyncssh.SSHKey:
    """The SSH public key of a certificate's subject key (RSA, EC or Ed25519)."""
    pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return asyncssh.import_public_key(pem)


def key_of_private(key: object) -> asyncssh.SSHKey:
    """An asyncssh private key from a `cryptography` private key object."""
    if not hasattr(key, "private_bytes"):
        raise TypeError(f"not a private key: {type(key).__name__}")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return asyncssh.import_private_key(pem)


def wire(key: asyncssh.SSHKey) -> bytes:
    """The key's OpenSSH wire encoding: what two configurations compare to find a shared key."""
    return bytes(key.public_data)


def fingerprint(key: asyncssh.SSHKey) -> str:
    """`SHA256:…`, as `ssh-keygen -l` prints it."""
    return key.get_fingerprint("sha256")


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The listener's persistent host key; generated (0600, Ed25519) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key(HOST_KEY_ALGORITHM, comment="raccord sftp host key")
        data = key.export_private_key("openssh")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            return load_or_create_host_key(path)  # another process won the race
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    mode = path.stat().st_mode & 0o077
    if mode:
        raise KeyFileError(path, f"host key is readable by others (mode {oct(mode)}); chmod 600")
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise KeyFileError(path, f"cannot read the host key: {exc}") from exc


def load_client_key(path: Path, *, passphrase: str | None = None) -> asyncssh.SSHKey:
    """A private key for our SFTP client (OpenSSH, PKCS#8 or PKCS#1 PEM)."""
    try:
        return asyncssh.read_private_key(path, passphrase)
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise KeyFileError(path, f"cannot read the private key: {exc}") from exc


def parse_pins(entries: Iterable[str], *, origin: Path) -> list[asyncssh.SSHKey]:
    """Host keys to pin, each `type base64` (a known_hosts line without its host field)."""
    return parse_authorized_keys("\n".join(entries), path=origin)


def load_known_hosts(path: Path) -> list[asyncssh.SSHKey]:
    """Keys of a known_hosts file (host patterns ignored: the file is per connection)."""
    keys: list[asyncssh.SSHKey] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@") or len(fields) < 3:
            raise KeyFileError(path, f"line {number}: expected 'hosts type base64'")
        try:
            keys.append(asyncssh.import_public_key(f"{fields[1]} {fields[2]}"))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise KeyFileError(path, f"line {number}: {exc}") from exc
    return keys
