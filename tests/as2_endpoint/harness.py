"""A real gateway for AS2 tests: real certificates, a YAML config, the daemon on loopback.

`Parties` are the certificate holders (our two connections, AIFE for each, strangers);
`write_config` writes a configuration naming them; `running_gateway` runs the daemon with only
the AS2 plug, in this process, and hands back its context (store, inbox port, registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway import plug_as2
from gateway.daemon import Daemon
from gateway.services import GatewayContext
from protocols.as2.cms import DecryptionIdentity, SigningIdentity
from tests.pki import Issued, TestCA, now

QUAL, PROD = "b2g-qual-as2", "b2g-prod-as2"
PA_QUAL, PA_PROD, AIFE_QUAL, AIFE_PROD = "PA-B2G-QUAL", "PA-B2G-PROD", "AIFE-QUAL", "AIFE-PROD"
TEST_CODE = "XTS0001A"  # an emission code the tests declare (format any)


@dataclass(frozen=True)
class Holder:
    """A certificate, its key, and their files."""

    issued: Issued
    cert_path: Path
    key_path: Path

    @property
    def cert(self) -> Any:
        return self.issued.cert

    def signing(self) -> SigningIdentity:
        key = self.issued.key
        return SigningIdentity(key, self.issued.cert)

    def decryption(self) -> DecryptionIdentity:
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = self.issued.key
        assert isinstance(key, rsa.RSAPrivateKey)
        return DecryptionIdentity(key, self.issued.cert)


@dataclass(frozen=True)
class Parties:
    directory: Path
    root: Path
    ca: TestCA
    pa_qual: Holder
    pa_prod: Holder
    pa_qual_server: Holder
    aife_qual: Holder
    aife_prod: Holder
    aife_short: Holder  # AIFE QUAL's certificate in a test that lets it expire
    aife_tls: Holder  # AIFE's HTTPS server (SAN localhost)
    stranger: Holder  # same subject style, another CA


def make_parties(directory: Path) -> Parties:
    ca = TestCA()
    other_ca = TestCA("Somebody Else Root CA")
    root = ca.write_root(directory / "root.pem")

    def holder(stem: str, issued: Issued) -> Holder:
        cert_path, key_path = issued.write(directory, stem)
        return Holder(issued, cert_path, key_path)

    soon = now() + dt.timedelta(days=2)
    return Parties(
        directory=directory,
        root=root,
        ca=ca,
        pa_qual=holder("pa-qual", ca.issue("pa-b2g-qual")),
        pa_prod=holder("pa-prod", ca.issue("pa-b2g-prod")),
        pa_qual_server=holder("pa-qual-server", ca.issue("localhost")),
        aife_qual=holder("aife-qual", ca.issue("aife-qual")),
        aife_prod=holder("aife-prod", ca.issue("aife-prod")),
        aife_short=holder("aife-short", ca.issue("aife-qual", not_after=soon)),
        aife_tls=holder("aife-tls", ca.issue("localhost")),
        stranger=holder("stranger", other_ca.issue("aife-qual")),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Layout:
    """What a test gateway looks like; `write_config` turns it into YAML."""

    directory: Path
    parties: Parties
    listen_port: int = field(default_factory=free_port)
    aife_port: int = 1  # where the sender POSTs (a test receiver's port)
    aife_host: str = "127.0.0.1"
    qual: dict[str, Any] = field(default_factory=dict)  # extra As2Settings of the QUAL sheet
    prod: dict[str, Any] = field(default_factory=dict)
    qual_partner: Holder | None = None  # AIFE QUAL's certificate (default aife_qual)
    qual_server: bool = False  # give the QUAL sheet an HTTPS server certificate
    max_size: int = 8 << 20
    prod_status: str = "actif"
    retry: Mapping[str, Any] = field(
        default_factory=lambda: {"max_attempts": 3, "base_delay": 0.05, "max_delay": 0.1}
    )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"


def _sheet(
    layout: Layout,
    *,
    name: str,
    env: str,
    part_id: str,
    ours: Holder,
    partner: Holder,
    settings: dict[str, Any],
    reception: list[str],
    emission: list[str],
) -> dict[str, Any]:
    return {
        "name": name, "structure": "98765432400019", "environment": env, "circuit": "b2g",
        "protocol": "as2", "status": "actif",
        "validity": {"start": "2025-01-01", "end": "2035-12-31"},
        "contact": {"first_names": "Camille", "name": "Martin", "email": "edi@example.fr",
                    "phone": "+33 1 23 45 67 89"},
        "network": {
            "aife": {"host": layout.aife_host, "port": layout.aife_port},
            "partner": {"host": "127.0.0.1", "port": layout.listen_port, "part_id": part_id},
        },
        "certificates": {
            "client": {"certificate": str(ours.cert_path), "key": str(ours.key_path)},
            "partner": [str(partner.cert_path)],
        },
        "subscriptions": {"emission": emission, "reception": reception},
        "retry": dict(layout.retry),
        "max_size": layout.max_size,
        "settings": {"aife_scheme": "http", **settings},
    }  # fmt: skip


def write_config(layout: Layout) -> Path:
    p = layout.parties
    qual = _sheet(layout, name=QUAL, env="qual", part_id=PA_QUAL, ours=p.pa_qual,
                  partner=layout.qual_partner or p.aife_qual, settings=layout.qual,
                  reception=["CSO1100A", "FEN1200A"], emission=[TEST_CODE])  # fmt: skip
    if layout.qual_server:
        qual["certificates"]["server"] = {
            "certificate": str(p.pa_qual_server.cert_path),
            "key": str(p.pa_qual_server.key_path),
        }
    prod = _sheet(layout, name=PROD, env="prod", part_id=PA_PROD, ours=p.pa_prod,
                  partner=p.aife_prod, settings=layout.prod, reception=["CSO1100A"],
                  emission=[])  # fmt: skip
    prod["status"] = layout.prod_status
    config = {
        "gateway": {
            "data_dir": str(layout.directory / "data"),
            "log_level": "warning",
            "shutdown_timeout": 5,
            "trust_anchors": [str(p.root)],
            "admin": {"host": "127.0.0.1", "port": 0},
        },
        "interfaces": [
            {
                "code": TEST_CODE,
                "description": "test emission flow",
                "circuits": ["b2g"],
                "direction": "emission",
                "format": "any",
            },
        ],
        "connections": [qual, prod],
    }
    path = layout.directory / "raccord.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Clock:
    """A clock a test can move forward (certificate expiry, MDN timeouts)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@dataclass
class Running:
    daemon: Daemon
    context: GatewayContext
    admin_port: int


def _listen_ports(config: Path) -> set[int]:
    """The ports the AS2 listeners of `config` bind (readiness is reported per service as
    each starts, so a test waits until every listener accepts connections)."""
    sheets = yaml.safe_load(config.read_text())["connections"]
    return {
        (sheet.get("settings") or {}).get("listen_port") or sheet["network"]["partner"]["port"]
        for sheet in sheets
        if sheet["protocol"] == "as2"
    }


async def _accepting(ports: set[int]) -> bool:
    for port in ports:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def running_gateway(
    config: Path, *, clock: Callable[[], dt.datetime] | None = None
) -> AsyncIterator[Running]:
    """The daemon with the AS2 plug only, until the block ends (then a clean stop)."""
    daemon = Daemon(
        config,
        factories=[plug_as2.factory],
        extensions=[plug_as2.admin_routes],
        clock=clock or Clock(),
        install_signals=False,
    )
    task = asyncio.create_task(daemon.run())
    try:
        ports = _listen_ports(config)
        for _ in range(400):
            if task.done():
                raise AssertionError(f"daemon exited with {task.result()}")
            ready = daemon.admin is not None and daemon.admin.bound_port and daemon.context
            if ready and (await daemon.readiness())["listeners"] and await _accepting(ports):
                break
            await asyncio.sleep(0.025)
        assert daemon.context is not None
        assert daemon.admin is not None
        assert daemon.admin.bound_port is not None
        yield Running(daemon, daemon.context, daemon.admin.bound_port)
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


def metric(name: str, **labels: str) -> float:
    """A sample of the gateway's registry (0 when never counted)."""
    from gateway import metrics

    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def raw_request(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Bytes on a socket, for what an HTTP client library refuses to send; the answer.

    The answer is read until the server closes or stays quiet for half a second after its
    header block. `half_close` ends our side first (a body cut short on the wire).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            while chunk := await asyncio.wait_for(reader.read(65536), 0.5):
                answer += chunk
        return answer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def post(
    url: str, headers: Mapping[str, str], body: bytes | Any, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    """One POST on a fresh connection; returns status, headers, body."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=dict(headers), **kwargs) as response,
    ):
        return response.status, dict(response.headers.items()), await response.read()
