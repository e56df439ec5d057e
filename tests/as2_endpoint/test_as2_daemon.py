"""The whole daemon once: the sandbox configuration, an AS2 message from "AIFE", its MDN."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.daemon import Daemon
from protocols.as2.cms import SigningIdentity
from protocols.as2.mdn import parse_mdn
from protocols.as2.message import build_message
from protocols.as2.params import As2SendParams
from tests.as2_endpoint.harness import free_port
from tests.pki import now
from tests.sandbox import make_sandbox

pytestmark = pytest.mark.e2e
STATUSES = b'<?xml version="1.0"?>\n<CycleDeVie><Statut>MISE_A_DISPOSITION</Statut></CycleDeVie>\n'


def _load(certs: Path, stem: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    cert = x509.load_pem_x509_certificate((certs / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((certs / f"{stem}.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return cert, key


async def test_sandbox_daemon_stores_an_as2_message_and_answers_its_mdn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RACCORD_ADMIN_PORT", "0")
    config = make_sandbox(tmp_path)
    port = free_port()
    text = config.read_text()
    anchor = "    protocol: as2\n    status: actif\n"
    config.write_text(text.replace(anchor, f"{anchor}    settings: {{listen_port: {port}}}\n", 1))
    certs = tmp_path / "certs" / "sandbox"
    aife_cert, aife_key = _load(certs, "aife-qual")
    ours, _ = _load(certs, "b2g-qual-as2")
    params = As2SendParams(
        as2_from="AIFE-QUAL", as2_to="PA-B2G-QUAL", signing=SigningIdentity(aife_key, aife_cert),
        encryption_certificate=ours, file_name="FEN1200A_2026-000042.xml",
        content_type="application/xml",
    )  # fmt: skip
    built = build_message(STATUSES, params=params, now=now())

    daemon = Daemon(config, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(400):
            if daemon.context is not None and (await daemon.readiness())["listeners"]:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
            await asyncio.sleep(0.025)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/as2", data=built.body,
                                    headers=built.headers) as response:  # fmt: skip
                assert response.status == 200
                headers, body = dict(response.headers.items()), await response.read()
            assert daemon.admin is not None
            async with session.get(f"http://127.0.0.1:{daemon.admin.bound_port}/metrics") as m:
                exposition = await m.text()
        mdn = parse_mdn(headers, body, partner_certificates=[ours], expected_mic=built.mic,
                        expected_message_id=built.message_id, now=now())  # fmt: skip
        assert mdn.accepted
        assert mdn.signed
        assert daemon.context is not None
        store = daemon.context.store
        [message] = await store.list_messages(connection="b2g-qual-as2")
        assert message.interface_code == "FEN1200A"
        assert store.payload_path(message).read_bytes() == STATUSES
        assert (
            'raccord_as2_mdn_total{connection="b2g-qual-as2",direction="sent",'
            'disposition="processed",modifier="none"}'
        ) in exposition
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
