"""The Message Integrity Check returned in an MDN (RFC 4130 §7.3.1, RFC 5402 §4).

Which bytes are digested:
- signed message (encrypted or not): the signed MIME entity, headers and body, exactly as
  they were signed (with compression before signing, that is the compressed entity);
- unsigned but encrypted or compressed: the decrypted/decompressed payload entity, headers
  included;
- neither: the payload content only, without headers (transports may rewrite them).
Sender and receiver must pick the same rule or the MDN will never match.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from protocols.as2.algorithms import DigestAlgorithm, digest_from_micalg
from protocols.as2.der import Chunk, chunks_of
from protocols.as2.errors import As2Error, Modifier

__all__ = ["Mic", "choose_mic_algorithm", "compute_mic"]


@dataclass(frozen=True, slots=True)
class Mic:
    """A digest and its algorithm; renders as `base64, sha-256`."""

    digest: bytes
    algorithm: DigestAlgorithm

    def header_value(self) -> str:
        return f"{base64.b64encode(self.digest).decode('ascii')}, {self.algorithm.value}"

    @classmethod
    def parse(cls, value: str) -> Mic:
        """Read a Received-Content-MIC value; algorithm spellings sha1/sha-1 both accepted."""
        encoded, comma, name = value.partition(",")
        algorithm = digest_from_micalg(name)
        if not comma or algorithm is None:
            raise As2Error(
                Modifier.UNEXPECTED_PROCESSING_ERROR, f"unreadable MIC value {value[:80]!r}"
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise As2Error(
                Modifier.UNEXPECTED_PROCESSING_ERROR, f"MIC digest is not base64: {exc}"
            ) from exc
        return cls(digest, algorithm)

    def matches(self, other: Mic) -> bool:
        return self.algorithm is other.algorithm and hmac.compare_digest(self.digest, other.digest)


def compute_mic(data: Chunk | Sequence[Chunk], algorithm: DigestAlgorithm) -> Mic:
    """Digest `data` (one buffer or several, hashed in order, never joined)."""
    hasher = hashes.Hash(algorithm.hash())
    for chunk in chunks_of(data):
        hasher.update(chunk)
    return Mic(hasher.finalize(), algorithm)


def choose_mic_algorithm(
    requested: Sequence[str], *, signed_with: DigestAlgorithm | None
) -> DigestAlgorithm:
    """First requested algorithm we support; else the signature's; else SHA-256.

    Whether an unsupported *required* request must fail the MDN is the MDN request's call
    (`MdnRequest.failure`), not this function's.
    """
    for token in requested:
        algorithm = digest_from_micalg(token)
        if algorithm is not None:
            return algorithm
    return signed_with or DigestAlgorithm.SHA256
