"""A Chorus Pro stand-in for sender tests: our own endpoint, in the other role.

The listener, the unwrapping and the MDNs are the production `As2Endpoint`; only the inbox is a
small in-memory one (AIFE's back end), with switches to refuse files, fail the first requests
and keep quiet instead of posting asynchronous MDNs.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.offload import run_blocking
from protocols.as2.endpoint import Answered, As2Endpoint, As2Listener
from protocols.as2.params import As2ReceiveParams, MdnParams
from protocols.as2.partners import PartnerProfile, Partners
from protocols.as2.receipts import MdnOutcome, StoredMdn
from protocols.as2.sender import MdnCourier
from protocols.ports import Accepted, Incoming, TransferRefused
from tests.as2_endpoint.harness import AIFE_QUAL, PA_QUAL, Parties, free_port
from tests.pki import now


@dataclass
class MemoryInbox:
    """AIFE's back end: files by Message-ID; a repeat gets the original acceptance."""

    refuse: TransferRefused | None = None
    files: dict[str, tuple[bytes, Incoming]] = field(default_factory=dict)

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        if self.refuse is not None:
            raise self.refuse
        if not isinstance(data, bytes):
            data = b"".join([chunk async for chunk in data])
        key = incoming.peer_message_id or ""
        if key in self.files:
            stored = self.files[key][0]
            return Accepted(key, hashlib.sha256(stored).hexdigest(), len(stored), True)
        self.files[key] = (data, incoming)
        return Accepted(key, hashlib.sha256(data).hexdigest(), len(data), False)


@dataclass
class MemoryJournal:
    sent: dict[tuple[str, str], StoredMdn] = field(default_factory=dict)

    async def recall(self, message_id: str, original_message_id: str) -> StoredMdn | None:
        return self.sent.get((message_id, original_message_id))

    async def remember(self, message_id: str, mdn: StoredMdn) -> None:
        self.sent[(message_id, mdn.original_message_id)] = mdn

    async def receipt(self, connection: str, outcome: MdnOutcome) -> bool:
        return False


@dataclass
class Aife:
    """What the stand-in saw and how it behaves."""

    port: int
    inbox: MemoryInbox
    posts: list[str] = field(default_factory=list)  # Message-ID of every POST, in order
    fail_first: int = 0
    answers: list[Answered] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/as2"


def aife_profile(parties: Parties) -> PartnerProfile:
    receive = As2ReceiveParams(
        as2_from=PA_QUAL,
        as2_to=AIFE_QUAL,
        partner_certificates=(parties.pa_qual.cert,),
        decryption=(parties.aife_qual.decryption(),),
    )
    return PartnerProfile(
        connection="aife",
        receive=receive,
        mdn=MdnParams(as2_from=AIFE_QUAL, as2_to=PA_QUAL, signing=parties.aife_qual.signing(),
                      message_id_domain="aife.example"),
        max_body_size=64 << 20,
        receipt_hosts=frozenset({"127.0.0.1"}),
        mdn_retries=3,
        mdn_retry_delay=0.05,
    )  # fmt: skip


def _middleware(aife: Aife) -> Middleware:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/as2":
            aife.posts.append(request.headers.get("Message-ID", ""))
            if len(aife.posts) <= aife.fail_first:
                await request.read()
                return web.Response(status=503, text="injected failure")
        return await handler(request)

    return record


@contextlib.asynccontextmanager
async def aife_side(
    parties: Parties,
    *,
    port: int | None = None,
    inbox: MemoryInbox | None = None,
    fail_first: int = 0,
    post_mdns: bool = True,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Aife]:
    """AIFE's AS2 server on loopback, until the block ends."""
    aife = Aife(port or free_port(), inbox or MemoryInbox(), fail_first=fail_first)
    courier = MdnCourier(tls_for=lambda _name: None) if post_mdns else None

    async def observe(answered: Answered) -> None:
        aife.answers.append(answered)

    endpoint = As2Endpoint(
        partners=Partners([aife_profile(parties)]), inbox=aife.inbox, journal=MemoryJournal(),
        offload=run_blocking, observe=observe, clock=now, courier=courier,
    )  # fmt: skip
    listener = As2Listener(
        endpoint,
        host="127.0.0.1",
        port=aife.port,
        path="/as2",
        mdn_path="/as2/mdn",
        tls=tls,
        middlewares=[_middleware(aife)],
    )
    if courier is not None:
        await courier.start()
    await listener.start()
    try:
        yield aife
    finally:
        await listener.stop(timeout=5)
        if courier is not None:
            await courier.stop(timeout=5)
