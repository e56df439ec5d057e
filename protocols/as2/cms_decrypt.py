"""Inbound decryption of EnvelopedData / AuthEnvelopedData with one of several keys.

The RecipientInfo names the certificate (issuer+serial or SKI); among our identities (current
and next certificate during a rollover) the one it names opens the content-encryption key.
No match, a bad key or a bad padding/tag all end in `decryption-failed` with the same
wording for padding and tag, so the reply is no padding oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from asn1crypto import cms as asn1_cms
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes

from protocols.as2.algorithms import OID, ContentCipher, KeyTransport, digest_from_oid
from protocols.as2.cms import (
    DecryptionIdentity,
    Identifier,
    describe_identifier,
    read_content_info,
    read_identifier,
)
from protocols.as2.cms_envelope import oaep_padding
from protocols.as2.der import CONTEXT, OCTET_STRING, SEQUENCE, SET, UNIVERSAL, Chunk, DerError, Tlv
from protocols.as2.errors import As2Error, Modifier, reported_as

__all__ = ["Decrypted", "decrypt"]

_FAILED = Modifier.DECRYPTION_FAILED
_MIN_TAG = 12
_OTHER_KINDS = MappingProxyType({1: "kari", 2: "kekri", 3: "pwri", 4: "ori"})  # RFC 5652 §6.2


@dataclass(frozen=True, slots=True)
class Decrypted:
    """The plaintext (a MIME entity in AS2) and how it was protected."""

    content: bytearray
    cipher: ContentCipher
    key_transport: KeyTransport
    identity: DecryptionIdentity


@dataclass(frozen=True, slots=True)
class _Ktri:
    """KeyTransRecipientInfo: who it is for, how the key is wrapped, the wrapped key."""

    rid: Identifier
    algorithm: Tlv  # KeyEncryptionAlgorithmIdentifier
    encrypted_key: bytes


@dataclass(frozen=True, slots=True)
class _Envelope:
    recipient_infos: list[_Ktri | str]  # a RecipientInfo we cannot use is named by its kind
    algorithm_oid: str
    algorithm_params: Tlv | None
    content: list[memoryview]
    mac: bytes | None
    auth_attrs: bytes | None


def decrypt(
    data: Chunk,
    *,
    identities: Sequence[DecryptionIdentity],
    allow_3des: bool = True,
) -> Decrypted:
    """Open an (Auth)EnvelopedData ContentInfo with whichever identity it designates."""
    with reported_as(_FAILED, "malformed EnvelopedData"):
        envelope = _envelope(data)
        cipher = ContentCipher.from_oid(envelope.algorithm_oid)
        if cipher is None:
            raise As2Error(_FAILED, f"unsupported content encryption {envelope.algorithm_oid}")
        if cipher is ContentCipher.DES3_CBC and not allow_3des:
            raise As2Error(Modifier.INSUFFICIENT_MESSAGE_SECURITY, "3DES refused by policy")
        if cipher.aead != (envelope.mac is not None):
            raise As2Error(_FAILED, f"{cipher} does not fit this envelope type")
        iv = _mode_parameters(envelope, cipher)
        candidates = [
            (identity, ktri, _key_transport(ktri.algorithm))
            for identity, ktri in _candidates(envelope.recipient_infos, identities)
        ]
    for identity, ktri, transport in candidates:
        try:
            key = identity.key.decrypt(ktri.encrypted_key, oaep_padding(transport))
            plain = _decrypt_content(envelope, cipher, iv, key)
        except (As2Error, ValueError, InvalidTag):
            continue  # one wording for every secret-dependent failure: no oracle
        return Decrypted(plain, cipher, transport, identity)
    raise As2Error(_FAILED, "content decryption failed")


def _envelope(data: Chunk) -> _Envelope:
    oid, inner = read_content_info(data)
    if oid not in (OID.ENVELOPED_DATA, OID.AUTH_ENVELOPED_DATA):
        raise As2Error(_FAILED, f"expected EnvelopedData, got content type {oid}")
    fields = inner.expect(UNIVERSAL, SEQUENCE, "EnvelopedData").child_list("EnvelopedData")
    fields = [f for f in fields[1:] if not f.is_(CONTEXT, 0)]  # version, originatorInfo
    if len(fields) < 2:
        raise As2Error(_FAILED, "EnvelopedData lacks recipients or content")
    infos = [
        _recipient_info(info)
        for info in fields[0].expect(UNIVERSAL, SET, "RecipientInfos").children()
    ]
    encrypted = fields[1].expect(UNIVERSAL, SEQUENCE, "EncryptedContentInfo")
    info = encrypted.child_list("EncryptedContentInfo", minimum=3)
    algorithm = info[1].expect(UNIVERSAL, SEQUENCE, "ContentEncryptionAlgorithm")
    alg_fields = algorithm.child_list("ContentEncryptionAlgorithm", minimum=1)
    content = list(info[2].expect(CONTEXT, 0, "encryptedContent").octets())
    mac: bytes | None = None
    auth_attrs: bytes | None = None
    if oid == OID.AUTH_ENVELOPED_DATA:
        rest = fields[2:]
        if rest and rest[0].is_(CONTEXT, 1):
            auth_attrs = b"\x31" + bytes(rest[0].raw[1:])  # AAD is the DER SET OF
            rest = rest[1:]
        if not rest:
            raise As2Error(_FAILED, "AuthEnvelopedData lacks its MAC")
        mac = bytes(rest[0].expect(UNIVERSAL, OCTET_STRING, "mac").body)
    params = alg_fields[1] if len(alg_fields) > 1 else None
    return _Envelope(infos, alg_fields[0].as_oid(), params, content, mac, auth_attrs)


def _recipient_info(node: Tlv) -> _Ktri | str:
    """A KeyTransRecipientInfo (an untagged SEQUENCE), or the name of another kind."""
    if not node.is_(UNIVERSAL, SEQUENCE):
        if node.tag_class == CONTEXT and node.number in _OTHER_KINDS:
            return _OTHER_KINDS[node.number]
        raise DerError(f"RecipientInfo: unexpected tag [{node.tag_class}:{node.number}]")
    fields = node.child_list("KeyTransRecipientInfo", minimum=4)
    if len(fields) != 4:
        raise DerError("KeyTransRecipientInfo: 4 elements expected")
    fields[0].as_int()  # version: an INTEGER, its value implied by the rid's kind
    algorithm = fields[2].expect(UNIVERSAL, SEQUENCE, "KeyEncryptionAlgorithm")
    key = b"".join(fields[3].expect(UNIVERSAL, OCTET_STRING, "encryptedKey").octets())
    return _Ktri(read_identifier(fields[1]), algorithm, key)


def _candidates(
    infos: list[_Ktri | str], identities: Sequence[DecryptionIdentity]
) -> list[tuple[DecryptionIdentity, _Ktri]]:
    found = [
        (identity, info)
        for info in infos
        if isinstance(info, _Ktri)
        for identity in identities
        if identity.ref.matches(info.rid)
    ]
    if not found:
        named = [
            describe_identifier(info.rid)
            if isinstance(info, _Ktri)
            else f"unsupported recipient kind {info}"
            for info in infos
        ]
        raise As2Error(_FAILED, f"no RecipientInfo for our certificates: {'; '.join(named)}")
    return found


def _key_transport(node: Tlv) -> KeyTransport:
    oid = node.child_list("KeyEncryptionAlgorithm", minimum=1)[0].as_oid()
    if oid == OID.RSA_ENCRYPTION:
        return KeyTransport.RSA_PKCS1V15
    if oid != OID.RSAES_OAEP:
        raise As2Error(_FAILED, f"unsupported key transport {oid}")
    params = asn1_cms.KeyEncryptionAlgorithm.load(bytes(node.raw))["parameters"]  # rare
    hash_oid = params["hash_algorithm"]["algorithm"].dotted
    mgf = params["mask_gen_algorithm"]
    mgf_oid = mgf["parameters"]["algorithm"].dotted
    label = params["p_source_algorithm"]["parameters"].native
    if hash_oid != mgf_oid or mgf["algorithm"].dotted != OID.MGF1 or label:
        raise As2Error(_FAILED, "RSAES-OAEP parameters not supported (hash/MGF/label)")
    digest = digest_from_oid(hash_oid)
    if digest is None or digest.value not in ("sha-1", "sha-256"):
        raise As2Error(_FAILED, f"RSAES-OAEP hash {hash_oid} not supported")
    return KeyTransport.RSA_OAEP_SHA256 if digest.value == "sha-256" else KeyTransport.RSA_OAEP_SHA1


def _mode_parameters(envelope: _Envelope, cipher: ContentCipher) -> bytes:
    """The IV (CBC) or nonce (GCM), checked before any secret is touched."""
    params = envelope.algorithm_params
    if params is None:
        raise As2Error(_FAILED, "content encryption algorithm lacks parameters")
    if not cipher.aead:
        iv = bytes(params.expect(UNIVERSAL, OCTET_STRING, "IV").body)
        if len(iv) != cipher.block_size:
            raise As2Error(_FAILED, "IV length does not match the cipher")
        total = sum(len(chunk) for chunk in envelope.content)
        if total == 0 or total % cipher.block_size:
            raise As2Error(_FAILED, "ciphertext length is not a whole number of blocks")
        return iv
    fields = params.expect(UNIVERSAL, SEQUENCE, "GCMParameters").child_list("GCM", minimum=1)
    nonce = bytes(fields[0].expect(UNIVERSAL, OCTET_STRING, "aes-nonce").body)
    tag_size = fields[1].as_int() if len(fields) > 1 else 12  # aes-ICVlen DEFAULT 12
    if not 8 <= len(nonce) <= 64:
        raise As2Error(_FAILED, "GCM nonce length not acceptable")
    if envelope.mac is None or len(envelope.mac) != tag_size or tag_size < _MIN_TAG:
        raise As2Error(_FAILED, "authentication tag length not acceptable")
    return nonce


def _decrypt_content(
    envelope: _Envelope, cipher: ContentCipher, iv: bytes, key: bytes
) -> bytearray:
    if len(key) != cipher.key_size:
        raise As2Error(_FAILED, "content decryption failed")
    algorithm: CipherAlgorithm
    if cipher.aead:
        mode: modes.Mode = modes.GCM(iv, envelope.mac, min_tag_length=_MIN_TAG)
        algorithm = algorithms.AES(key)
    else:
        mode = modes.CBC(iv)
        algorithm = TripleDES(key) if cipher is ContentCipher.DES3_CBC else algorithms.AES(key)
    return _run(Cipher(algorithm, mode), envelope, cipher)


def _run(engine: Cipher[Any], envelope: _Envelope, cipher: ContentCipher) -> bytearray:
    """Decrypt chunk by chunk into one preallocated buffer; strip CBC padding in place."""
    total = sum(len(chunk) for chunk in envelope.content)
    out = bytearray(total + 2 * cipher.block_size)
    decryptor = engine.decryptor()
    if envelope.auth_attrs is not None:
        decryptor.authenticate_additional_data(envelope.auth_attrs)
    size = 0
    with memoryview(out) as view:
        for chunk in envelope.content:
            size += decryptor.update_into(chunk, view[size:])
        final = decryptor.finalize()
        view[size : size + len(final)] = final
        size += len(final)
    del out[size:]
    if not cipher.aead:
        pad = out[-1] if out else 0
        if not 0 < pad <= cipher.block_size or out[-pad:] != bytes([pad]) * pad:
            raise As2Error(_FAILED, "content decryption failed")
        del out[-pad:]
    return out
