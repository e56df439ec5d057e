"""AS2 settings of a connection sheet (`connections[i].settings` when protocol is as2), and the
sheet translated into the protocol's parameter objects (`plan_for`).

Every field has a default that makes the sandbox work: AS2 names derived from the sheet (ours is
the Part ID, AIFE's `AIFE-QUAL`/`AIFE-PROD`), the listener on the sheet's partner host and port,
the domain.md §7 algorithms (SHA-256, AES-256-CBC, compression) and a signed synchronous MDN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field, StringConstraints, field_validator, model_validator

from gateway.config import ConnectionConfig, Frozen
from protocols.as2.algorithms import ContentCipher, DigestAlgorithm, KeyTransport, SignatureScheme
from protocols.as2.cms import DecryptionIdentity, SigningIdentity
from protocols.as2.cms_compress import DEFAULT_LEVEL
from protocols.as2.params import As2ReceiveParams, As2SendParams, MdnMode, MdnParams
from protocols.as2.partners import PartnerProfile

if TYPE_CHECKING:
    from gateway.credentials import ConnectionCredentials

As2Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[ -~]+$")]
UrlPath = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._~/-]*$", max_length=200)]
Seconds = Annotated[float, Field(gt=0, le=86400)]
Scheme = Literal["http", "https"]


class As2Settings(Frozen):
    """Identifiers, listener, outbound algorithms and receipt handling of one AS2 connection."""

    # identifiers (domain.md §7: per connection; defaults derived from the sheet)
    as2_id: As2Name | None = None  # ours, in AS2-To inbound; default: network.partner.part_id
    partner_as2_id: As2Name | None = None  # AIFE's, in AS2-From inbound; default: AIFE-<ENV>
    # listener (inbound messages and asynchronous MDNs)
    listen_host: str | None = None  # default: network.partner.host
    listen_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: partner port
    listen_scheme: Scheme | None = None  # default: https when certificates.server is set
    path: UrlPath = "/as2"
    mdn_path: UrlPath = "/as2/mdn"
    tls_client_auth: Literal["none", "optional", "required"] = "none"
    # inbound security floor and caps (the size cap is the sheet's max_size)
    require_signature: bool = True
    require_encryption: bool = True
    max_compression_ratio: Annotated[int, Field(ge=1, le=100_000)] = 300
    receipt_hosts: tuple[str, ...] = ()  # hosts async MDNs may go to; default: network.aife.host
    mdn_retries: Annotated[int, Field(ge=0, le=100)] = 5
    mdn_retry_delay: Seconds = 10.0
    # outbound (network.aife host and port + scheme and path)
    aife_scheme: Scheme = "https"
    aife_path: UrlPath = "/as2"
    tls_client_certificate: bool = False  # present certificates.client to AIFE's TLS server
    tls_verify_hostname: bool = True
    sign: bool = True
    encrypt: bool = True
    compress: bool = True
    compress_before_sign: bool = False
    # zlib level of outbound compression: 1 is the fastest (the default: on XML ~3.5x faster
    # than 6 for a ~12 % larger stream), 9 the smallest; inbound accepts any level
    compression_level: Annotated[int, Field(ge=1, le=9)] = DEFAULT_LEVEL
    digest: DigestAlgorithm = DigestAlgorithm.SHA256
    signature_scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15
    cipher: ContentCipher = ContentCipher.AES256_CBC
    key_transport: KeyTransport = KeyTransport.RSA_PKCS1V15
    chunked: bool = False  # Content-Length by default
    message_id_domain: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,200}$")] = (
        "raccord.invalid"
    )
    # receipts we ask for
    mdn_mode: Literal["sync", "async", "none"] = "sync"
    signed_mdn: bool = True  # ask for a signed MDN and refuse an unsigned one
    mdn_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None
    async_mdn_wait: Seconds = 30.0  # waited in the sender before leaving the message `sent`
    mdn_timeout: Seconds = 3600.0  # a `sent` message without its MDN is sent again after this
    http_timeout: Seconds = 300.0

    @field_validator("cipher")
    @classmethod
    def _never_send_3des(cls, value: ContentCipher) -> ContentCipher:
        if value is ContentCipher.DES3_CBC:
            raise ValueError("3DES is accepted inbound only, never sent")
        return value

    @model_validator(mode="after")
    def _async_wait_below_timeout(self) -> As2Settings:
        if self.async_mdn_wait > self.mdn_timeout:
            raise ValueError("async_mdn_wait must not exceed mdn_timeout")
        if self.path == self.mdn_path:
            raise ValueError("path and mdn_path must differ")
        return self


def our_as2_id(conn: ConnectionConfig, settings: As2Settings) -> str:
    """Our AS2 name on this connection (AS2-To of what AIFE sends us)."""
    return settings.as2_id or conn.network.partner.part_id


def aife_as2_id(conn: ConnectionConfig, settings: As2Settings) -> str:
    """AIFE's AS2 name on this connection (AS2-From of what it sends us)."""
    return settings.partner_as2_id or f"AIFE-{conn.environment.value.upper()}"


def listen_address(conn: ConnectionConfig, settings: As2Settings) -> tuple[str, int, Scheme]:
    """Where this connection's listener binds, and whether it speaks TLS."""
    host = settings.listen_host or conn.network.partner.host
    port = settings.listen_port or conn.network.partner.port
    scheme: Scheme = settings.listen_scheme or (
        "https" if conn.certificates.server is not None else "http"
    )
    return host, port, scheme


def aife_url(conn: ConnectionConfig, settings: As2Settings) -> str:
    """The URL outbound messages are POSTed to."""
    aife = conn.network.aife
    host = f"[{aife.host}]" if ":" in aife.host else aife.host
    return f"{settings.aife_scheme}://{host}:{aife.port}{settings.aife_path}"


def receipt_url(conn: ConnectionConfig, settings: As2Settings) -> str:
    """The URL we give AIFE for asynchronous MDNs (our listener's MDN path by default)."""
    if settings.mdn_url:
        return settings.mdn_url
    _, port, scheme = listen_address(conn, settings)
    partner = conn.network.partner.host
    host = f"[{partner}]" if ":" in partner else partner
    return f"{scheme}://{host}:{port}{settings.mdn_path}"


def receipt_hosts(conn: ConnectionConfig, settings: As2Settings) -> frozenset[str]:
    """Hosts an asynchronous MDN may be POSTed to (never wherever a peer says)."""
    return frozenset(settings.receipt_hosts or (conn.network.aife.host,))


# --- the sheet as protocol parameters ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class As2Plan:
    """One AS2 connection translated: what its listener and its sender are given."""

    conn: ConnectionConfig
    settings: As2Settings
    profile: PartnerProfile
    send: As2SendParams | None  # None: no key to sign with while signing is required
    partner_certificates: tuple[x509.Certificate, ...]
    anchors_pem: bytes

    @property
    def name(self) -> str:
        return self.conn.name


def _identities(
    creds: ConnectionCredentials,
) -> tuple[SigningIdentity | None, tuple[DecryptionIdentity, ...]]:
    """Our signing key (client certificate) and every key that may decrypt (client, next)."""
    signing = None
    decryption: list[DecryptionIdentity] = []
    for role in ("client", "next_client"):
        material = creds.own.get(role)
        if material is None:
            continue
        key = material.key
        if isinstance(key, rsa.RSAPrivateKey):
            decryption.append(DecryptionIdentity(key, material.certificate))
        if role == "client" and isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            signing = SigningIdentity(key, material.certificate, tuple(material.chain[1:]))
    return signing, tuple(decryption)


def _receive_params(
    conn: ConnectionConfig, settings: As2Settings, creds: ConnectionCredentials
) -> As2ReceiveParams:
    _, decryption = _identities(creds)
    return As2ReceiveParams(
        as2_from=aife_as2_id(conn, settings),
        as2_to=our_as2_id(conn, settings),
        partner_certificates=creds.partner,
        decryption=decryption,
        require_signature=settings.require_signature,
        require_encryption=settings.require_encryption,
        max_body_size=conn.max_size + conn.max_size // 2 + (1 << 20),  # base64, CMS, MIME
        max_payload_size=conn.max_size,
        max_compression_ratio=settings.max_compression_ratio,
    )


def _send_params(
    conn: ConnectionConfig,
    settings: As2Settings,
    signing: SigningIdentity | None,
    partner: tuple[x509.Certificate, ...],
) -> As2SendParams:
    return As2SendParams(
        as2_from=our_as2_id(conn, settings),
        as2_to=aife_as2_id(conn, settings),
        signing=signing if settings.sign else None,
        encryption_certificate=partner[0] if settings.encrypt and partner else None,
        digest=settings.digest,
        signature_scheme=settings.signature_scheme,
        cipher=settings.cipher,
        key_transport=settings.key_transport,
        compress=settings.compress,
        compress_before_sign=settings.compress_before_sign,
        compression_level=settings.compression_level,
        mdn_mode=MdnMode(settings.mdn_mode),
        signed_mdn=settings.signed_mdn,
        receipt_url=receipt_url(conn, settings) if settings.mdn_mode == "async" else None,
        message_id_domain=settings.message_id_domain,
    )


def plan_for(conn: ConnectionConfig, creds: ConnectionCredentials) -> As2Plan:
    """The profile the listener answers with and the parameters the sender builds with."""
    settings = settings_model_of(conn)
    signing, _ = _identities(creds)
    receive = _receive_params(conn, settings, creds)
    profile = PartnerProfile(
        connection=conn.name,
        receive=receive,
        mdn=MdnParams(
            as2_from=receive.as2_to,
            as2_to=receive.as2_from,
            signing=signing,
            signature_scheme=settings.signature_scheme,
            message_id_domain=settings.message_id_domain,
        ),
        max_body_size=receive.max_body_size,
        receipt_hosts=receipt_hosts(conn, settings),
        mdn_retries=settings.mdn_retries,
        mdn_retry_delay=settings.mdn_retry_delay,
        signed_mdn_required=settings.signed_mdn,
    )
    can_send = signing is not None or not settings.sign
    send = _send_params(conn, settings, signing, creds.partner) if can_send else None
    anchors = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in creds.trust_anchors)
    return As2Plan(conn, settings, profile, send, creds.partner, anchors)


def settings_model_of(conn: ConnectionConfig) -> As2Settings:
    """The sheet's AS2 settings (validated at load; parsed again here, typed)."""
    return As2Settings.model_validate(conn.settings.model_dump())
