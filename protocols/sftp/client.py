"""Our SFTP client's connection to AIFE's server: own key, pinned host key, AES-GCM first.

The server's host key must be one of the pinned keys: an unknown or changed key ends the
attempt before authentication, with its fingerprint in the error so the operator can compare
it with what AIFE published. With a `certificate_chain`, the connection's own key is presented
with its certificate per RFC 6187 (`x509v3-*`), and only that way. Every failure becomes a
`TransientSendError` naming the cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncssh

from protocols.errors import TransientSendError
from protocols.sftp.keys import fingerprint
from protocols.sftp.x509auth import x509_identity


@dataclass(frozen=True, slots=True)
class ClientParams:
    """Where and how one connection's client logs in."""

    connection: str
    host: str
    port: int
    username: str
    client_key: asyncssh.SSHKey
    pins: tuple[asyncssh.SSHKey, ...]
    ciphers: tuple[str, ...]
    connect_timeout: float = 30.0
    remote_dir: str = "."
    remote_dirs: Mapping[str, str] = field(default_factory=dict)
    temp_suffix: str = ".part"
    certificate_chain: tuple[bytes, ...] = ()  # DER, leaf first: log in per RFC 6187

    def directory(self, interface_code: str) -> str:
        return self.remote_dirs.get(interface_code, self.remote_dir)


class _PinnedHost(asyncssh.SSHClient):
    """Remembers the key a server presented when it was not one of the pins."""

    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        return False


def _where(params: ClientParams) -> str:
    return f"{params.host}:{params.port}"


async def connect(params: ClientParams) -> asyncssh.SSHClientConnection:
    """An authenticated SSH connection to the pinned server, or TransientSendError."""
    if not params.pins:
        raise TransientSendError(
            f"{params.connection}: no pinned host key for {_where(params)}; "
            "set settings.host_keys or settings.known_hosts"
        )
    watcher = _PinnedHost()
    try:
        identity = _identity(params)
    except ValueError as exc:
        raise TransientSendError(f"{params.connection}: {exc}") from None
    try:
        conn, _ = await asyncio.wait_for(
            asyncssh.create_connection(
                lambda: watcher,
                params.host,
                params.port,
                username=params.username,
                client_keys=[identity],
                known_hosts=([key.convert_to_public() for key in params.pins], [], []),
                x509_trusted_certs=[],  # never trust an X.509 host certificate: keys are pinned
                x509_trusted_cert_paths=[],
                encryption_algs=list(params.ciphers),
                agent_path=None,
                password=None,
                kbdint_auth=False,
                gss_host=None,
                config=None,
                preferred_auth="publickey",
            ),
            timeout=params.connect_timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise TransientSendError(_host_key_refusal(params, watcher.presented)) from None
    except asyncssh.PermissionDenied as exc:
        what = "certificate (RFC 6187)" if params.certificate_chain else "key"
        raise TransientSendError(
            f"{params.connection}: {_where(params)} refused our {what} for user "
            f"{params.username!r} ({exc.reason})"
        ) from None
    except asyncssh.KeyExchangeFailed as exc:
        raise TransientSendError(
            f"{params.connection}: key exchange with {_where(params)} failed: {exc.reason}"
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise TransientSendError(
            f"{params.connection}: cannot reach {_where(params)}: {_describe(exc)}"
        ) from None
    return conn


def _identity(params: ClientParams) -> asyncssh.SSHKey | asyncssh.SSHKeyPair:
    if params.certificate_chain:
        return x509_identity(params.client_key, params.certificate_chain)
    return params.client_key


def _host_key_refusal(params: ClientParams, presented: asyncssh.SSHKey | None) -> str:
    shown = f" presented {fingerprint(presented)}" if presented is not None else ""
    pinned = ", ".join(fingerprint(k) for k in params.pins)
    return (
        f"{params.connection}: host key of {_where(params)} is not pinned (unknown or "
        f"changed):{shown}; pinned: {pinned}. Transfer refused."
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
