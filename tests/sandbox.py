"""A private copy of the sandbox configuration, with its certificates, in a temporary folder."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from gateway.config_load import load
from gateway.sandbox_pki import ensure_sandbox_certificates

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
