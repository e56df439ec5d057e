"""TLS contexts for PeSIT (pesit.md §2): TLS 1.2 at least, the peer's certificate required.

Both sides verify the peer's chain against the connection's trust anchors; the adapters then
pin the peer's leaf to the connection's partner certificates. Host names are not checked:
AIFE is addressed by IP in the sheets, and the pin is stricter than a name.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

__all__ = ["client_context", "server_context"]

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
MinVersion = Literal["1.2", "1.3"]


def _harden(
    context: ssl.SSLContext,
    *,
    certificate: Path,
    key: Path,
    password: bytes | None,
    anchors: str,
    minimum: MinVersion,
) -> ssl.SSLContext:
    context.minimum_version = _VERSIONS[minimum]
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=anchors)
    context.load_cert_chain(certificate, key, password=password)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def server_context(
    *,
    certificate: Path,
    key: Path,
    password: bytes | None = None,
    anchors: str,
    minimum: MinVersion = "1.2",
) -> ssl.SSLContext:
    """Our server side: presents `certificate`, requires a client certificate under `anchors`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return _harden(
        context, certificate=certificate, key=key, password=password, anchors=anchors,
        minimum=minimum,
    )  # fmt: skip


def client_context(
    *,
    certificate: Path,
    key: Path,
    password: bytes | None = None,
    anchors: str,
    minimum: MinVersion = "1.2",
) -> ssl.SSLContext:
    """Our requester side: presents `certificate`, verifies AIFE's chain under `anchors`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    return _harden(
        context, certificate=certificate, key=key, password=password, anchors=anchors,
        minimum=minimum,
    )  # fmt: skip
