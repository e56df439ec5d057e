"""A private copy of the sandbox configuration, with its certificates, in a temporary folder."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config_load import load
from gateway.sandbox_pki import ensure_sandbox_certificates
from tests.pki import PrivateKey, crl

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "config" / "sandbox" / "raccord.yaml"


def make_sandbox(root: Path) -> Path:
    """Copy config/sandbox into `root` (so certs/ and var/ land under it); return the YAML path."""
    target = root / "config" / "sandbox" / "raccord.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SANDBOX, target)
    ensure_sandbox_certificates(
        load(target, check_files=False, env={"RACCORD_ADMIN_PORT": "0"}),
        now=dt.datetime.now(dt.UTC),
    )
    return target


def sandbox_crl(
    config: Path, *revoked: str, next_update: dt.timedelta = dt.timedelta(days=7)
) -> bytes:
    """A DER CRL of the sandbox CA of `config` (made by `make_sandbox`) listing the sandbox
    certificates named `revoked` (`b2g-qual-as2`, `aife-qual-sftp`...), due for renewal
    `next_update` from now (negative: already stale)."""
    certs = config.parent.parent.parent / "certs" / "sandbox"
    key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), None)
    assert isinstance(key, PrivateKey)
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    listed = [x509.load_pem_x509_certificate((certs / f"{n}.pem").read_bytes()) for n in revoked]
    return crl(ca, key, listed, next_update=next_update).public_bytes(serialization.Encoding.DER)
