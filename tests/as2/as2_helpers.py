"""Shared test material for the AS2 core: a PKI of named parties, OpenSSL, message plumbing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from protocols.as2.cms import DecryptionIdentity, SigningIdentity
from protocols.as2.params import As2ReceiveParams, As2SendParams
from tests.pki import Issued, TestCA, ec_key, now

AIFE = "AIFE CPRO"  # a name with a space: must travel quoted
PA = "PA-RACCORD"


@dataclass(frozen=True)
class Party:
    """A certificate holder, with its PEM files on disk for OpenSSL."""

    issued: Issued
    cert_path: Path
    key_path: Path

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def rsa_key(self) -> rsa.RSAPrivateKey:
        key = self.issued.key
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def signing(self) -> SigningIdentity:
        return SigningIdentity(self.issued.key, self.cert)

    def decryption(self) -> DecryptionIdentity:
        return DecryptionIdentity(self.rsa_key, self.cert)


@dataclass(frozen=True)
class Pki:
    """AIFE (the partner), PA (us), PA's next certificate, strangers and broken ones."""

    root_path: Path
    aife: Party
    pa: Party
    pa_next: Party
    other: Party
    expired: Party
    ec: Party
    directory: Path


def make_pki(directory: Path) -> Pki:
    ca = TestCA()
    root = ca.write_root(directory / "root.pem")

    def party(stem: str, issued: Issued) -> Party:
        cert_path, key_path = issued.write(directory, stem)
        return Party(issued, cert_path, key_path)

    past = now() - dt.timedelta(days=400)
    return Pki(
        root_path=root,
        aife=party("aife", ca.issue("aife")),
        pa=party("pa", ca.issue("pa")),
        pa_next=party("pa-next", ca.issue("pa")),  # same subject, new key and serial
        other=party("other", ca.issue("other-connection")),
        expired=party(
            "expired",
            ca.issue("aife-old", not_before=past, not_after=past + dt.timedelta(days=30)),
        ),
        ec=party("ec", ca.issue("aife-ec", key=ec_key())),
        directory=directory,
    )


def openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    """Run the OpenSSL CLI; a failure is a test failure with OpenSSL's own words."""
    proc = subprocess.run(
        ["openssl", *(str(a) for a in args)],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))}: {proc.stderr.decode()}")
    return proc.stdout


def split_smime(data: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of an S/MIME file as OpenSSL writes it (LF or CRLF), by the stdlib."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    cut = min(ends)
    separator = 4 if data[cut : cut + 4] == b"\r\n\r\n" else 2
    head, body = data[:cut], data[cut + separator :]
    message = HeaderParser().parsestr(head.decode("ascii"))
    return {k: " ".join(v.split()) for k, v in message.items()}, body


def as2_headers(*, as2_from: str = AIFE, as2_to: str = PA, mdn: bool = True) -> dict[str, str]:
    """The AS2 headers a partner adds on top of its S/MIME entity."""
    headers = {
        "AS2-Version": "1.2",
        "AS2-From": f'"{as2_from}"' if " " in as2_from else as2_from,
        "AS2-To": f'"{as2_to}"' if " " in as2_to else as2_to,
        "Message-ID": "<interop-1@aife.example>",
    }
    if mdn:
        headers["Disposition-Notification-To"] = "mailto:as2@aife.example"
        headers["Disposition-Notification-Options"] = (
            "signed-receipt-micalg=optional, sha-256; signed-receipt-protocol=optional, "
            "pkcs7-signature"
        )
    return headers


def receive_params(pki: Pki, **overrides: Any) -> As2ReceiveParams:
    """PA receiving from AIFE: signature and encryption required by default."""
    base = As2ReceiveParams(
        as2_from=AIFE,
        as2_to=PA,
        partner_certificates=(pki.aife.cert,),
        decryption=(pki.pa.decryption(),),
    )
    return dataclasses.replace(base, **overrides)


def payload_entity(payload: bytes, *, content_type: str = "application/xml") -> bytes:
    """A payload MIME entity as a partner writes it before signing."""
    head = (
        f"Content-Type: {content_type}\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        'Content-Disposition: attachment; filename="FSO1100A_42.xml"\r\n\r\n'
    )
    return head.encode("ascii") + payload


_ROW = re.compile(r"^\s*(\d+):d=\s*\d+\s+hl=\s*(\d+)\s+l=\s*(\d+)")


def der_octets(asn1parse_output: str, der: bytes, *, index: int = -1) -> bytes:
    """The content of an OCTET STRING located by `openssl asn1parse` (offset, hl, l)."""
    rows = [line for line in asn1parse_output.splitlines() if "OCTET STRING" in line]
    found = _ROW.match(rows[index])
    assert found is not None, rows[index]
    offset, header_len, length = (int(g) for g in found.groups())
    return der[offset + header_len : offset + header_len + length]


def send(pki: Pki, **overrides: Any) -> As2SendParams:
    """PA sending to AIFE with the domain defaults: signed, encrypted, compressed."""
    base = As2SendParams(
        as2_from=PA,
        as2_to=AIFE,
        signing=pki.pa.signing(),
        encryption_certificate=pki.aife.cert,
        file_name="FSO1100A_42.xml",
        content_type="application/xml",
    )
    return dataclasses.replace(base, **overrides)


def aife_receives(pki: Pki, **overrides: Any) -> As2ReceiveParams:
    base = As2ReceiveParams(
        as2_from=PA,
        as2_to=AIFE,
        partner_certificates=(pki.pa.cert,),
        decryption=(pki.aife.decryption(),),
    )
    return dataclasses.replace(base, **overrides)
