"""The simulator's AS2 side of one connection: AIFE's listener and AIFE's sender, mirrored.

Everything is the project's AS2 code (`protocols.as2`), given the sheet seen from AIFE: AIFE's
AS2 name is the gateway's `partner_as2_id` (AIFE-QUAL/AIFE-PROD by default), it signs with
`aife-*.key` and encrypts to the connection's client certificate, and accepts only what that
connection's certificate signed. It listens where the gateway sends (`network.aife`, the
gateway's `aife_scheme`/`aife_path`; HTTPS with the AIFE certificate) and sends where the
gateway listens (`network.partner`), asking for a signed synchronous MDN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import Config, ConnectionConfig
from gateway.logging import get_logger
from gateway.offload import run_blocking
from gateway.settings import settings_of
from gateway.settings.as2 import As2Settings, aife_as2_id, listen_address, our_as2_id
from gateway.simulator.desk import Desk
from gateway.simulator.timekeeping import utc_now
from protocols.as2.cms import DecryptionIdentity, SigningIdentity
from protocols.as2.endpoint import As2Endpoint, As2Listener, server_tls
from protocols.as2.inbound import Answered
from protocols.as2.params import As2ReceiveParams, As2SendParams, MdnParams
from protocols.as2.partners import PartnerProfile, Partners
from protocols.as2.receipts import MdnOutcome, StoredMdn
from protocols.as2.sender import (
    As2Client,
    MdnCourier,
    MdnWaiters,
    Outbound,
    client_tls,
    content_type_for,
    message_id_for,
)
from protocols.errors import PermanentSendError

__all__ = ["AifeIdentity", "As2Side", "load_aife_identity", "outbound_to_gateway", "post_flow"]

log = get_logger(__name__)
_DOMAIN = "chorus-pro-simulator.invalid"
_MDN_PATH = "/as2/simulator-mdn"


@dataclass(frozen=True, slots=True)
class AifeIdentity:
    """AIFE's key and certificate for one connection, and the gateway's certificate there."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    certificate_path: Path
    key_path: Path
    gateway: x509.Certificate

    @property
    def signing(self) -> SigningIdentity:
        return SigningIdentity(self.key, self.certificate, ())


def load_aife_identity(conn: ConnectionConfig, *, wearing: Path | None = None) -> AifeIdentity:
    """Blocking: `certificates.partner[0]` with its `.key` beside it (the sandbox's layout).

    `wearing` names another AIFE certificate (its `.key` beside it) to present instead: what a
    hostile or misconfigured peer does, for the campaign to see the gateway refuse it.
    """
    if not conn.certificates.partner or conn.certificates.client is None:
        raise ValueError(f"{conn.name}: needs certificates.partner and certificates.client")
    cert_path = wearing or conn.certificates.partner[0]
    key_path = cert_path.with_suffix(".key")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{key_path}: the simulator signs and decrypts with RSA keys only")
    aife = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    ours = x509.load_pem_x509_certificates(conn.certificates.client.certificate.read_bytes())[0]
    return AifeIdentity(key, aife, cert_path, key_path, ours)


def anchors_of(config: Config, conn: ConnectionConfig) -> bytes:
    paths = conn.certificates.trust_anchors or config.gateway.trust_anchors
    return b"".join(path.read_bytes() for path in paths)


class _Journal:
    """MDNs the simulator sent, so a repeated Message-ID gets the same bytes (in memory)."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, str], StoredMdn] = {}

    async def recall(self, message_id: str, original_message_id: str) -> StoredMdn | None:
        return self._sent.get((message_id, original_message_id))

    async def remember(self, message_id: str, mdn: StoredMdn) -> None:
        self._sent[(message_id, mdn.original_message_id)] = mdn

    async def receipt(self, connection: str, outcome: MdnOutcome) -> bool:
        del connection, outcome
        return False  # the simulator asks for synchronous MDNs only


async def _observe(answered: Answered) -> None:
    log.info("simulator.as2_answer", connection=answered.connection,
             disposition=answered.disposition.header_value(), status=answered.status,
             kind=answered.kind, reason=answered.reason)  # fmt: skip


def _profile(
    conn: ConnectionConfig, settings: As2Settings, identity: AifeIdentity
) -> PartnerProfile:
    """AIFE receiving: only the gateway's certificate of *this* connection may have signed."""
    gateway_id, aife_id = our_as2_id(conn, settings), aife_as2_id(conn, settings)
    cap = conn.max_size * 2 + (1 << 20)
    return PartnerProfile(
        connection=conn.name,
        receive=As2ReceiveParams(
            as2_from=gateway_id, as2_to=aife_id, partner_certificates=(identity.gateway,),
            decryption=(DecryptionIdentity(identity.key, identity.certificate),),
            max_body_size=cap, max_payload_size=conn.max_size,
        ),
        mdn=MdnParams(as2_from=aife_id, as2_to=gateway_id, signing=identity.signing,
                      reporting_ua="Chorus Pro simulator", message_id_domain=_DOMAIN),
        max_body_size=cap,
        receipt_hosts=frozenset({conn.network.partner.host}),
    )  # fmt: skip


def outbound_to_gateway(
    conn: ConnectionConfig, settings: As2Settings, identity: AifeIdentity, anchors: bytes
) -> Outbound:
    """AIFE sending: to the gateway's listener, signed, encrypted, signed sync MDN asked."""
    host, port, scheme = listen_address(conn, settings)
    shown = f"[{host}]" if ":" in host else host
    params = As2SendParams(
        as2_from=aife_as2_id(conn, settings), as2_to=our_as2_id(conn, settings),
        signing=identity.signing, encryption_certificate=identity.gateway,
        message_id_domain=_DOMAIN,
    )  # fmt: skip
    tls = client_tls(anchors_pem=anchors, verify_hostname=False) if scheme == "https" else None
    return Outbound(
        connection=conn.name, params=params, url=f"{scheme}://{shown}:{port}{settings.path}",
        partner_certificates=(identity.gateway,), signed_mdn_required=True,
        timeout=60.0, async_wait=30.0, tls=tls,
    )  # fmt: skip


class As2Side:
    """AIFE's listener and sender for one AS2 connection; start/stop like a daemon service."""

    def __init__(
        self, config: Config, conn: ConnectionConfig, identity: AifeIdentity, desk: Desk
    ) -> None:
        self.connection = conn.name
        settings = settings_of(conn, As2Settings)
        anchors = anchors_of(config, conn)
        self._courier = MdnCourier(
            tls_for=lambda _: client_tls(anchors_pem=anchors, verify_hostname=False)
        )
        endpoint = As2Endpoint(
            partners=Partners([_profile(conn, settings, identity)]), inbox=desk,
            journal=_Journal(), offload=run_blocking, observe=_observe, clock=utc_now,
            courier=self._courier,
        )  # fmt: skip
        tls = None
        if settings.aife_scheme == "https":
            tls = server_tls(certificate=identity.certificate_path, key=identity.key_path,
                             password=None, client_auth="none", anchors_pem=anchors)  # fmt: skip
        aife = conn.network.aife
        self._listener = As2Listener(endpoint, host=aife.host, port=aife.port, tls=tls,
                                     path=settings.aife_path, mdn_path=_MDN_PATH,
                                     drain_timeout=1.0)  # fmt: skip
        self._out = outbound_to_gateway(conn, settings, identity, anchors)
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return f"simulator-as2 {self.connection}"

    @property
    def ready(self) -> bool:
        """Listening (a listener that could not bind says so here rather than raising)."""
        return self._listener.ready

    async def start(self) -> None:
        await self._courier.start()
        try:
            await self._listener.start()
        except BaseException:
            await self._courier.stop(timeout=1.0)
            raise
        self._session = aiohttp.ClientSession()

    async def stop(self, *, timeout: float) -> None:
        await self._listener.stop(timeout=timeout)
        await self._courier.stop(timeout=timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, flow_id: str, file_name: str, body: bytes) -> str:
        """Send one flow to the gateway; its MDN must be positive, signed, with our MIC."""
        if self._session is None:
            raise PermanentSendError("the simulator's AS2 side is stopped")
        return await post_flow(self._session, self._out, flow_id=flow_id, file_name=file_name,
                               body=body)  # fmt: skip


async def post_flow(
    session: aiohttp.ClientSession, out: Outbound, *, flow_id: str, file_name: str, body: bytes
) -> str:
    """POST one flow (Message-ID from `flow_id`, so a retry repeats it); the MDN must be
    positive, signed, with our MIC, else PermanentSendError says why."""
    client = As2Client(session=session, offload=run_blocking, clock=utc_now,
                       waiters=MdnWaiters())  # fmt: skip
    params = dataclasses.replace(out.params, file_name=file_name, subject=file_name,
                                 content_type=content_type_for(file_name))  # fmt: skip
    out = dataclasses.replace(out, params=params)
    built = await client.build(body, out, message_id=message_id_for(flow_id, domain=_DOMAIN))
    posted = await client.send(built, out)
    if posted.outcome is None:
        raise PermanentSendError("no MDN came back")
    reason = posted.outcome.verdict(expected_mic=built.mic, signature_required=True)
    if reason is not None:
        raise PermanentSendError(reason)
    return built.message_id
