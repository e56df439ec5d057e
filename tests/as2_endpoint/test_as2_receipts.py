"""HTTPS with client certificates, asynchronous MDNs out (with retries) and in (hostile)."""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from protocols.as2.errors import Modifier
from protocols.as2.mdn import Disposition, build_mdn
from protocols.as2.params import MdnMode, MdnParams
from tests.as2_endpoint.harness import (
    AIFE_QUAL,
    PA_QUAL,
    QUAL,
    Layout,
    Parties,
    free_port,
    post,
    running_gateway,
    write_config,
)
from tests.as2_endpoint.messages import core_message, openssl_message, read_mdn
from tests.pki import now

pytestmark = pytest.mark.interop
XML = b"<?xml version='1.0'?><Report/>"


def _client_tls(parties: Parties, *, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(parties.root))
    if with_certificate:
        context.load_cert_chain(parties.aife_qual.cert_path, parties.aife_qual.key_path)
    return context


async def test_https_listener_requires_a_client_certificate_from_our_anchors(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties, qual_server=True, qual={"tls_client_auth": "required"},
                    prod={"listen_port": free_port()})  # fmt: skip
    headers, body = openssl_message(parties, XML)
    url = f"https://localhost:{layout.listen_port}/as2"
    async with running_gateway(write_config(layout)) as gw:
        with pytest.raises(aiohttp.ClientError):
            await post(url, headers, body, ssl=_client_tls(parties, with_certificate=False))
        stranger = ssl.create_default_context(cafile=str(parties.root))
        stranger.load_cert_chain(parties.stranger.cert_path, parties.stranger.key_path)
        with pytest.raises(aiohttp.ClientError):
            await post(url, headers, body, ssl=stranger)
        assert await gw.context.store.list_messages() == []
        status, answer_headers, answer = await post(
            url, headers, body, ssl=_client_tls(parties, with_certificate=True)
        )
        assert status == 200
        assert read_mdn(answer_headers, answer, parties).disposition.ok
        assert len(await gw.context.store.list_messages(connection=QUAL)) == 1


@dataclass
class ReceiptBox:
    """AIFE's receipt URL: fails the first `fail` POSTs, keeps the others."""

    port: int = field(default_factory=free_port)
    fail: int = 0
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mdn"


@asynccontextmanager
async def receipt_box(fail: int = 0) -> AsyncIterator[ReceiptBox]:
    box = ReceiptBox(fail=fail)

    async def take(request: web.Request) -> web.Response:
        box.posts.append((dict(request.headers.items()), await request.read()))
        return web.Response(status=500 if len(box.posts) <= box.fail else 200)

    app = web.Application()
    app.router.add_post("/mdn", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", box.port).start()
    try:
        yield box
    finally:
        await runner.cleanup()


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_async_mdn_is_posted_with_retries_and_replayed_identically(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties, qual={"mdn_retry_delay": 0.05})
    async with receipt_box(fail=1) as box, running_gateway(write_config(layout)) as gw:
        built = core_message(parties, XML, mdn_mode=MdnMode.ASYNC, receipt_url=box.url)
        status, _, text = await post(f"{layout.base_url}/as2", built.headers, built.body)
        assert (status, text) == (200, b"")
        await _until(lambda: len(box.posts) == 2)
        assert box.posts[0] == box.posts[1]  # the same MDN retried
        headers, body = box.posts[1]
        mdn = read_mdn(headers, body, parties)
        assert mdn.disposition.ok
        assert mdn.mic is not None
        assert mdn.mic.matches(built.mic)
        assert mdn.original_message_id == built.message_id
        await post(f"{layout.base_url}/as2", built.headers, built.body)
        await _until(lambda: len(box.posts) == 3)
        assert box.posts[2][1] == body
        assert len(await gw.context.store.list_messages()) == 1


async def test_async_mdn_for_a_refused_message_is_negative(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    async with receipt_box() as box, running_gateway(write_config(layout)):
        built = core_message(parties, XML, mdn_mode=MdnMode.ASYNC, receipt_url=box.url,
                             signing=parties.aife_prod.signing())  # fmt: skip
        status, _, _ = await post(f"{layout.base_url}/as2", built.headers, built.body)
        assert status == 200
        await _until(lambda: len(box.posts) == 1)
        mdn = read_mdn(*box.posts[0], parties)
        assert mdn.disposition.error_modifier is Modifier.AUTHENTICATION_FAILED


def _mdn_post(
    parties: Parties,
    *,
    signer: object,
    original: str = "<nobody@raccord.invalid>",
    as2_from: str = AIFE_QUAL,
) -> tuple[dict[str, str], bytes]:
    from protocols.as2.mdn_request import MdnRequest, parse_disposition_options
    from tests.as2_endpoint.messages import MDN_OPTIONS

    request = MdnRequest("x", None, parse_disposition_options(MDN_OPTIONS))
    built = build_mdn(original_message_id=original, disposition=Disposition(), mic=None,
                      request=request, now=now(),
                      params=MdnParams(as2_from=as2_from, as2_to=PA_QUAL,
                                       signing=signer))  # type: ignore[arg-type]  # fmt: skip
    return built.headers, built.body


async def test_hostile_async_mdns_on_our_mdn_url(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    url = f"{layout.base_url}/as2/mdn"
    async with running_gateway(write_config(layout)) as gw:
        status, _, text = await post(url, *_mdn_post(parties, signer=parties.aife_qual.signing()))
        assert status == 404, text  # well signed, but for no message of ours
        status, _, text = await post(url, *_mdn_post(parties, signer=parties.aife_prod.signing()))
        assert (status, text.split(b":")[0]) == (403, b"authentication-failed")
        status, _, text = await post(url, *_mdn_post(parties, signer=None))
        assert (status, text.split(b":")[0]) == (403, b"insufficient-message-security")
        forged = _mdn_post(parties, signer=parties.aife_qual.signing(), as2_from="AIFE-EVIL")
        status, _, text = await post(url, *forged)
        assert (status, text.split(b":")[0]) == (403, b"unknown-trading-partner")
        headers, body = _mdn_post(parties, signer=parties.aife_qual.signing())
        status, _, _ = await post(url, headers, io.BytesIO(body + b"x" * (1 << 20)))
        assert status == 413
        stored_id = await _store_one(gw)
        status, _, _ = await post(
            url,
            *_mdn_post(
                parties,
                signer=parties.aife_qual.signing(),
                original=f"<{stored_id}.00@raccord.invalid>",
            ),
        )
        assert status == 404  # a real store id, but we never sent it with that Message-ID


async def _store_one(gw: object) -> str:
    from protocols.ports import Incoming

    accepted = await gw.context.inbox_port.accept(  # type: ignore[attr-defined]
        XML,
        Incoming(
            protocol="as2",
            direction="reception",
            source=QUAL,
            interface_code="CSO1100A",
            connection=QUAL,
            peer_message_id="<p@q>",
        ),
    )
    return str(accepted.message_id)
