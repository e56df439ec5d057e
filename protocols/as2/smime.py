"""S/MIME entities under construction, shared by messages and MDNs.

A `Part` keeps its body as a list of buffers so a payload travels from the caller to the final
join without intermediate copies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocols.as2.algorithms import DigestAlgorithm, SignatureScheme
from protocols.as2.cms import SigningIdentity
from protocols.as2.cms_sign import sign_detached
from protocols.as2.der import Chunk
from protocols.as2.mime import base64_lines, entity_parts, format_params
from protocols.as2.multipart import multipart_body, new_boundary

__all__ = ["Part", "pkcs7_part", "signed_part"]

_SIGNATURE_HEADERS = (
    ("Content-Type", 'application/pkcs7-signature; name="smime.p7s"'),
    ("Content-Transfer-Encoding", "base64"),
    ("Content-Disposition", 'attachment; filename="smime.p7s"'),
)


@dataclass(slots=True)
class Part:
    """An entity being built: headers, and a body not joined yet."""

    headers: list[tuple[str, str]]
    body: list[Chunk] = field(default_factory=list)

    def chunks(self) -> list[Chunk]:
        """The whole entity (header block + body) as buffers, in order."""
        return [*entity_parts(self.headers, b"")[:1], *self.body]


def pkcs7_part(der_bytes: bytes, smime_type: str, name: str) -> Part:
    """application/pkcs7-mime in binary transfer encoding (HTTP carries 8-bit data)."""
    content_type = format_params(
        "application/pkcs7-mime", [("smime-type", smime_type), ("name", name)]
    )
    headers = [
        ("Content-Type", content_type),
        ("Content-Transfer-Encoding", "binary"),
        ("Content-Disposition", format_params("attachment", [("filename", name)])),
    ]
    return Part(headers, [der_bytes])


def signed_part(
    content: Sequence[Chunk],
    *,
    identity: SigningIdentity,
    digest: DigestAlgorithm,
    scheme: SignatureScheme,
    now: dt.datetime,
    use_ski: bool = False,
    content_digest: bytes | None = None,
) -> Part:
    """multipart/signed over `content` (a whole entity, signed byte for byte)."""
    signature = sign_detached(
        content, identity=identity, now=now, digest=digest, scheme=scheme, use_ski=use_ski,
        content_digest=content_digest,
    )  # fmt: skip
    boundary = new_boundary()
    signature_part = entity_parts(_SIGNATURE_HEADERS, base64_lines(signature))
    body = multipart_body([content, signature_part], boundary)
    content_type = format_params(
        "multipart/signed",
        [
            ("protocol", "application/pkcs7-signature"),
            ("micalg", digest.value),
            ("boundary", boundary),
        ],
    )
    return Part([("Content-Type", content_type)], body)
