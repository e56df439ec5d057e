"""EnvelopedData / AuthEnvelopedData: hostile envelopes first, then OpenSSL both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.as2.algorithms import ContentCipher, KeyTransport
from protocols.as2.cms import DecryptionIdentity
from protocols.as2.cms_decrypt import decrypt
from protocols.as2.cms_envelope import encrypt
from protocols.as2.errors import As2BuildError, As2Error, Modifier
from tests.as2.as2_helpers import Pki, openssl, payload_entity

CONTENT = payload_entity(b"<Invoice>\n" + bytes(range(256)) * 4 + b"\n</Invoice>\n")
OUTBOUND = [c for c in ContentCipher if c is not ContentCipher.DES3_CBC]


def _decrypt(pki: Pki, data: bytes, *identities: DecryptionIdentity) -> bytes:
    found = decrypt(data, identities=identities or (pki.pa.decryption(),))
    return bytes(found.content)


# --- hostile --------------------------------------------------------------------------------


def test_unknown_recipient_fails_decryption(pki: Pki) -> None:
    envelope = encrypt(CONTENT, recipients=[pki.other.cert])
    with pytest.raises(As2Error, match="no RecipientInfo for our certificates") as caught:
        _decrypt(pki, envelope)
    assert caught.value.modifier is Modifier.DECRYPTION_FAILED


def test_matching_certificate_with_wrong_key_fails_without_oracle(pki: Pki) -> None:
    envelope = encrypt(CONTENT, recipients=[pki.pa.cert])
    impostor = DecryptionIdentity(pki.other.rsa_key, pki.pa.cert)
    with pytest.raises(As2Error, match=r"^decryption-failed: content decryption failed$"):
        _decrypt(pki, envelope, impostor)


@pytest.mark.parametrize("cipher", [ContentCipher.AES256_CBC, ContentCipher.AES256_GCM])
def test_tampered_ciphertext_fails_decryption(pki: Pki, cipher: ContentCipher) -> None:
    block_aligned = CONTENT + b"x" * (-len(CONTENT) % 16)  # padding byte is then 16
    envelope = bytearray(encrypt(block_aligned, recipients=[pki.pa.cert], cipher=cipher))
    # GCM: last ciphertext byte, just before the 18-byte MAC; CBC: last byte of the
    # penultimate block, which flips the padding byte of the last plaintext block
    envelope[-19 if cipher.aead else -17] ^= 0x01
    with pytest.raises(As2Error, match="content decryption failed") as caught:
        _decrypt(pki, bytes(envelope))
    assert caught.value.modifier is Modifier.DECRYPTION_FAILED


def test_truncated_envelope_is_always_a_typed_error(pki: Pki) -> None:
    envelope = encrypt(CONTENT, recipients=[pki.pa.cert], cipher=ContentCipher.AES128_GCM)
    for cut in range(0, len(envelope), 11):
        with pytest.raises(As2Error):
            _decrypt(pki, envelope[:cut])


def test_signed_data_is_not_an_envelope(pki: Pki) -> None:
    signed = openssl(
        "cms", "-sign", "-binary", "-signer", pki.aife.cert_path, "-inkey", pki.aife.key_path,
        "-outform", "DER", stdin=CONTENT,
    )  # fmt: skip
    with pytest.raises(As2Error, match="expected EnvelopedData"):
        _decrypt(pki, signed)


def test_3des_is_never_sent(pki: Pki) -> None:
    with pytest.raises(As2BuildError, match="inbound only"):
        encrypt(CONTENT, recipients=[pki.pa.cert], cipher=ContentCipher.DES3_CBC)


def test_no_recipient_is_a_build_error() -> None:
    with pytest.raises(As2BuildError, match="at least one"):
        encrypt(CONTENT, recipients=[])


def test_ec_recipient_is_a_build_error(pki: Pki) -> None:
    with pytest.raises(As2BuildError, match="RSA"):
        encrypt(CONTENT, recipients=[pki.ec.cert])


@pytest.mark.interop
def test_3des_inbound_can_be_refused_by_policy(pki: Pki) -> None:
    envelope = _openssl_encrypt(pki, "-des-ede3-cbc")
    with pytest.raises(As2Error) as caught:
        decrypt(envelope, identities=[pki.pa.decryption()], allow_3des=False)
    assert caught.value.modifier is Modifier.INSUFFICIENT_MESSAGE_SECURITY


# --- rollover -------------------------------------------------------------------------------


@pytest.mark.parametrize("use_ski", [False, True])
def test_rollover_picks_the_key_the_recipient_info_names(pki: Pki, use_ski: bool) -> None:
    identities = (pki.pa.decryption(), pki.pa_next.decryption())
    for party in (pki.pa, pki.pa_next):
        envelope = encrypt(CONTENT, recipients=[party.cert], use_ski=use_ski)
        found = decrypt(envelope, identities=identities)
        assert found.identity.certificate == party.cert
        assert bytes(found.content) == CONTENT


def test_several_recipients_one_of_them_us(pki: Pki) -> None:
    envelope = encrypt(CONTENT, recipients=[pki.other.cert, pki.pa_next.cert])
    assert _decrypt(pki, envelope, pki.pa.decryption(), pki.pa_next.decryption()) == CONTENT


@pytest.mark.parametrize("cipher", OUTBOUND)
@pytest.mark.parametrize("transport", list(KeyTransport))
def test_encrypt_decrypt_round_trip(
    pki: Pki, cipher: ContentCipher, transport: KeyTransport
) -> None:
    envelope = encrypt(
        [CONTENT[:100], CONTENT[100:]],
        recipients=[pki.pa.cert],
        cipher=cipher,
        key_transport=transport,
    )
    found = decrypt(envelope, identities=[pki.pa.decryption()])
    assert (bytes(found.content), found.cipher, found.key_transport) == (
        CONTENT,
        cipher,
        transport,
    )


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17])
def test_padding_edges(pki: Pki, size: int) -> None:
    assert _decrypt(pki, encrypt(b"z" * size, recipients=[pki.pa.cert])) == b"z" * size


# --- interop with OpenSSL -------------------------------------------------------------------


def _openssl_encrypt(pki: Pki, *options: str, recipient: Path | None = None) -> bytes:
    target = recipient or pki.pa.cert_path
    return openssl(
        "cms", "-encrypt", "-binary", *options, "-outform", "DER", "-recip", target,
        stdin=CONTENT,
    )  # fmt: skip


@pytest.mark.interop
@pytest.mark.parametrize(
    ("options", "cipher", "transport"),
    [
        (["-aes-128-cbc"], ContentCipher.AES128_CBC, KeyTransport.RSA_PKCS1V15),
        (["-aes-192-cbc"], ContentCipher.AES192_CBC, KeyTransport.RSA_PKCS1V15),
        (["-aes-256-cbc"], ContentCipher.AES256_CBC, KeyTransport.RSA_PKCS1V15),
        (["-aes-128-gcm"], ContentCipher.AES128_GCM, KeyTransport.RSA_PKCS1V15),
        (["-aes-192-gcm"], ContentCipher.AES192_GCM, KeyTransport.RSA_PKCS1V15),
        (["-aes-256-gcm"], ContentCipher.AES256_GCM, KeyTransport.RSA_PKCS1V15),
        (["-des-ede3-cbc"], ContentCipher.DES3_CBC, KeyTransport.RSA_PKCS1V15),
        (
            ["-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"],
            ContentCipher.AES256_CBC,
            KeyTransport.RSA_OAEP_SHA1,
        ),
        (
            ["-aes-256-gcm", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
            ContentCipher.AES256_GCM,
            KeyTransport.RSA_OAEP_SHA256,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_we_decrypt_openssl_envelopes(
    pki: Pki, options: list[str], cipher: ContentCipher, transport: KeyTransport
) -> None:
    recipient = ["-recip", str(pki.pa.cert_path)]
    envelope = openssl(
        "cms", "-encrypt", "-binary", *recipient, *options, "-outform", "DER", stdin=CONTENT
    )  # fmt: skip
    found = decrypt(envelope, identities=[pki.pa.decryption()])
    assert (bytes(found.content), found.cipher, found.key_transport) == (
        CONTENT,
        cipher,
        transport,
    )


@pytest.mark.interop
@pytest.mark.parametrize(
    "options", [["-keyid"], ["-stream", "-indef"]], ids=["ski", "ber-indefinite"]
)
def test_we_decrypt_openssl_envelope_variants(pki: Pki, options: list[str]) -> None:
    envelope = _openssl_encrypt(pki, "-aes-256-cbc", *options)
    assert _decrypt(pki, envelope, pki.pa_next.decryption(), pki.pa.decryption()) == CONTENT


@pytest.mark.interop
@pytest.mark.parametrize("cipher", OUTBOUND)
@pytest.mark.parametrize("transport", list(KeyTransport))
def test_openssl_decrypts_our_envelopes(
    pki: Pki, tmp_path: Path, cipher: ContentCipher, transport: KeyTransport
) -> None:
    (tmp_path / "env.der").write_bytes(
        encrypt(
            CONTENT,
            recipients=[pki.pa.cert],
            cipher=cipher,
            key_transport=transport,
            use_ski=transport is KeyTransport.RSA_OAEP_SHA1,
        )
    )
    plain = openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "env.der",
        "-inkey", pki.pa.key_path, "-recip", pki.pa.cert_path,
    )  # fmt: skip
    assert plain == CONTENT
