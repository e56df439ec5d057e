"""Messages AIFE would send us: built by OpenSSL (independent) or by our core playing AIFE."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Mapping
from typing import Any

from protocols.as2.mdn import ReceivedMdn, parse_mdn
from protocols.as2.message import BuiltMessage, build_message
from protocols.as2.params import As2SendParams, MdnMode
from tests.as2.as2_helpers import openssl
from tests.as2_endpoint.harness import AIFE_QUAL, PA_QUAL, Holder, Parties
from tests.pki import now

_ids = itertools.count(1)
MDN_OPTIONS = (
    "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256"
)


def message_id() -> str:
    return f"<test-{next(_ids)}-{now():%H%M%S%f}@aife.example>"


def entity(payload: bytes, file_name: str = "CSO1100A_42.xml") -> bytes:
    """The payload MIME entity as AIFE writes it before signing."""
    head = (
        "Content-Type: application/xml\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f'Content-Disposition: attachment; filename="{file_name}"\r\n\r\n'
    )
    return head.encode("ascii") + payload


def as2_headers(
    *, as2_from: str = AIFE_QUAL, as2_to: str = PA_QUAL, mdn: bool = True, msg_id: str = ""
) -> dict[str, str]:
    headers = {
        "AS2-Version": "1.2",
        "AS2-From": as2_from,
        "AS2-To": as2_to,
        "Message-ID": msg_id or message_id(),
        "MIME-Version": "1.0",
    }
    if mdn:
        headers["Disposition-Notification-To"] = "mailto:as2@aife.example"
        headers["Disposition-Notification-Options"] = MDN_OPTIONS
    return headers


def openssl_signed(signer: Holder, content: bytes) -> bytes:
    """S/MIME multipart/signed, written by OpenSSL."""
    return openssl(
        "cms", "-sign", "-binary", "-md", "sha256", "-signer", signer.cert_path,
        "-inkey", signer.key_path, stdin=content,
    )  # fmt: skip


def openssl_encrypted(recipient: Holder, content: bytes) -> bytes:
    """DER EnvelopedData (AES-256-CBC) for `recipient`, written by OpenSSL."""
    return openssl(
        "cms", "-encrypt", "-binary", "-aes-256-cbc", "-recip", recipient.cert_path,
        "-outform", "DER", stdin=content,
    )  # fmt: skip


ENVELOPED = "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m"


def openssl_message(
    parties: Parties,
    payload: bytes,
    *,
    signer: Holder | None = None,
    recipient: Holder | None = None,
    file_name: str = "CSO1100A_42.xml",
    tamper: bool = False,
    **headers: Any,
) -> tuple[dict[str, str], bytes]:
    """Signed then encrypted by OpenSSL, as Chorus Pro sends (domain.md §4)."""
    signed = openssl_signed(signer or parties.aife_qual, entity(payload, file_name))
    if tamper:  # one payload byte changed after signing
        at = signed.index(payload[:16]) + 5
        signed = signed[:at] + bytes([signed[at] ^ 0x01]) + signed[at + 1 :]
    body = openssl_encrypted(recipient or parties.pa_qual, signed)
    return {**as2_headers(**headers), "Content-Type": ENVELOPED}, body


def aife_params(parties: Parties, **overrides: Any) -> As2SendParams:
    """AIFE QUAL sending to our QUAL connection with the domain defaults."""
    base: dict[str, Any] = {
        "as2_from": AIFE_QUAL,
        "as2_to": PA_QUAL,
        "signing": parties.aife_qual.signing(),
        "encryption_certificate": parties.pa_qual.cert,
        "file_name": "CSO1100A_42.xml",
        "content_type": "application/xml",
        "mdn_mode": MdnMode.SYNC,
        "message_id_domain": "aife.example",
    }
    return As2SendParams(**{**base, **overrides})


def core_message(parties: Parties, payload: bytes, **overrides: Any) -> BuiltMessage:
    """A message built by our own core playing AIFE."""
    return build_message(payload, params=aife_params(parties, **overrides), now=now())


def read_mdn(
    headers: Mapping[str, str], body: bytes, parties: Parties, *, signer: Holder | None = None
) -> ReceivedMdn:
    """Our MDN as AIFE reads it: signed by our connection's certificate, or refused."""
    return parse_mdn(
        headers,
        body,
        partner_certificates=[(signer or parties.pa_qual).cert],
        require_signature=True,
        now=now(),
    )


def mic_of(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode() + ", sha-256"
