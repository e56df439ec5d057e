"""Whole AS2 messages, built and parsed by the core: hostile messages first, then round trips."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.as2.algorithms import ContentCipher, DigestAlgorithm, KeyTransport, SignatureScheme
from protocols.as2.cms_compress import compress
from protocols.as2.cms_envelope import encrypt
from protocols.as2.envelope import read_envelope
from protocols.as2.errors import As2BuildError, As2Error, As2LimitError, MimeError, Modifier
from protocols.as2.message import BuiltMessage, build_message, parse_message
from protocols.as2.mime import Headers
from protocols.as2.params import MdnMode
from protocols.as2.smime import pkcs7_part, signed_part
from tests.as2.as2_helpers import AIFE, PA, Pki, aife_receives, send

XML_LF = b'<?xml version="1.0"?>\n<Invoice>\n  <ID>FSO1100A</ID>\n</Invoice>\n'
MIB = 1024 * 1024


def _error(
    pki: Pki, built: BuiltMessage, *, now: dt.datetime | None = None, **params: Any
) -> As2Error:
    with pytest.raises(As2Error) as caught:
        parse_message(built.headers, built.body, params=aife_receives(pki, **params), now=now)
    return caught.value


# --- hostile --------------------------------------------------------------------------------


def test_unsigned_message_refused_when_signature_required(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, signing=None), now=now)
    error = _error(pki, built)
    assert error.modifier is Modifier.INSUFFICIENT_MESSAGE_SECURITY
    assert "signature" in error.reason


def test_unencrypted_message_refused_when_encryption_required(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, encryption_certificate=None), now=now)
    error = _error(pki, built)
    assert (error.modifier, error.reason) == (
        Modifier.INSUFFICIENT_MESSAGE_SECURITY,
        "connection requires encryption",
    )


@pytest.mark.parametrize(
    ("header", "value"),
    [("AS2-To", "SOMEONE-ELSE"), ("AS2-From", '"AIFE CPRO"'), ("AS2-From", "pa-raccord")],
)
def test_wrong_trading_partner_is_unknown(
    pki: Pki, now: dt.datetime, header: str, value: str
) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    built.headers[header] = value
    assert _error(pki, built).modifier is Modifier.UNKNOWN_TRADING_PARTNER


@pytest.mark.parametrize("value", ["\x01bad", "x" * 129, '""'])
def test_invalid_as2_names_are_unknown_trading_partners(
    pki: Pki, now: dt.datetime, value: str
) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    built.headers["AS2-From"] = value
    assert _error(pki, built).modifier is Modifier.UNKNOWN_TRADING_PARTNER


def test_plain_payload_refused_when_encryption_required(pki: Pki, now: dt.datetime) -> None:
    params = send(pki, signing=None, encryption_certificate=None, compress=False)
    built = build_message(XML_LF, params=params, now=now)
    error = _error(pki, built, require_signature=False)
    assert error.reason == "connection requires encryption"
    lenient = aife_receives(pki, require_signature=False, require_encryption=False)
    received = parse_message(built.headers, built.body, params=lenient)
    assert received.payload == XML_LF
    assert received.mic == built.mic  # over the content only, no headers


def _signed_entity(
    pki: Pki, now: dt.datetime, content: list[bytes]
) -> tuple[dict[str, str], bytes]:
    part = signed_part(
        content,
        identity=pki.pa.signing(),
        digest=DigestAlgorithm.SHA256,
        scheme=SignatureScheme.RSA_PKCS1V15,
        now=now,
    )
    headers = {"AS2-From": PA, "AS2-To": f'"{AIFE}"', "Message-ID": "<x@pa>", **dict(part.headers)}
    return headers, b"".join(part.body)


def test_layers_repeated_are_refused(pki: Pki, now: dt.datetime) -> None:
    lenient = aife_receives(pki, require_encryption=False)
    headers, body = _signed_entity(pki, now, [b"Content-Type: text/plain\r\n\r\nx"])
    inner = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    twice_headers, twice_body = _signed_entity(pki, now, [inner])
    with pytest.raises(As2Error, match="signed twice"):
        parse_message(twice_headers, twice_body, params=lenient)
    squeezed = pkcs7_part(compress(b"Content-Type: text/plain\r\n\r\nx"), "compressed-data", "z")
    again = pkcs7_part(compress(squeezed.chunks()), "compressed-data", "z")
    headers = {"AS2-From": PA, "AS2-To": f'"{AIFE}"', "Message-ID": "<x@pa>", **dict(again.headers)}
    with pytest.raises(As2Error, match="compressed twice"):
        parse_message(headers, b"".join(again.body), params=lenient)


def test_cms_content_of_another_kind_is_refused(pki: Pki) -> None:
    headers = {
        "AS2-From": PA,
        "AS2-To": f'"{AIFE}"',
        "Message-ID": "<x@pa>",
        "Content-Type": "application/pkcs7-mime; smime-type=enveloped-data",
    }
    data_info = bytes.fromhex("301106092a864886f70d010701a00404026869")  # ContentInfo(data)
    lenient = aife_receives(pki, require_encryption=False)
    with pytest.raises(As2Error, match=r"unsupported CMS content 1\.2\.840\.113549\.1\.7\.1"):
        parse_message(headers, data_info, params=lenient)


def test_second_part_that_is_not_a_signature(pki: Pki, now: dt.datetime) -> None:
    headers, body = _signed_entity(pki, now, [b"Content-Type: text/plain\r\n\r\nx"])
    forged = body.replace(b"application/pkcs7-signature", b"application/octet-stream")
    lenient = aife_receives(pki, require_encryption=False)
    with pytest.raises(As2Error, match="not a pkcs7-signature") as caught:
        parse_message(headers, forged, params=lenient)
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_missing_as2_from_is_unknown_trading_partner(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    del built.headers["AS2-From"]
    assert _error(pki, built).modifier is Modifier.UNKNOWN_TRADING_PARTNER


def test_duplicated_routing_header_is_refused(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    doubled = Headers((*built.headers.items(), ("as2-to", "SOMEONE-ELSE")))
    with pytest.raises(As2Error, match="given twice"):
        parse_message(doubled, built.body, params=aife_receives(pki))


@pytest.mark.parametrize("value", [None, "", "no-brackets@x", "<two><ids>", "<a b@c>"])
def test_missing_or_malformed_message_id(pki: Pki, now: dt.datetime, value: str | None) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    if value is None:
        del built.headers["Message-ID"]
    else:
        built.headers["Message-ID"] = value
    assert _error(pki, built).modifier is Modifier.UNEXPECTED_PROCESSING_ERROR


def test_tampered_encrypted_body_fails_decryption(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, compress=False), now=now)
    body = bytearray(built.body)
    body[-17] ^= 0x01
    tampered = dataclasses.replace(built, body=bytes(body))
    assert _error(pki, tampered).modifier is Modifier.DECRYPTION_FAILED


def test_tampered_signed_payload_fails_integrity(pki: Pki, now: dt.datetime) -> None:
    params = send(pki, encryption_certificate=None, compress=False)
    built = build_message(XML_LF, params=params, now=now)
    tampered = dataclasses.replace(built, body=built.body.replace(b"FSO1100A<", b"FSO1100B<"))
    error = _error(pki, tampered, require_encryption=False)
    assert error.modifier is Modifier.INTEGRITY_CHECK_FAILED


def test_signer_of_another_connection_fails_authentication(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, signing=pki.other.signing()), now=now)
    assert _error(pki, built).modifier is Modifier.AUTHENTICATION_FAILED


def test_expired_signer_certificate_fails_authentication(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, signing=pki.expired.signing()), now=now)
    error = _error(pki, built, now=now, partner_certificates=(pki.expired.cert,))
    assert error.modifier is Modifier.AUTHENTICATION_FAILED
    assert "expired" in error.reason


def test_message_for_another_certificate_fails_decryption(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, encryption_certificate=pki.other.cert), now=now)
    assert _error(pki, built).modifier is Modifier.DECRYPTION_FAILED


@pytest.mark.parametrize("encrypted", [False, True])
def test_truncated_message_is_always_a_typed_error(
    pki: Pki, now: dt.datetime, encrypted: bool
) -> None:
    certificate = pki.aife.cert if encrypted else None
    built = build_message(XML_LF, params=send(pki, encryption_certificate=certificate), now=now)
    params = aife_receives(pki, require_encryption=encrypted)
    for cut in range(0, len(built.body), 13):
        with pytest.raises(As2Error):
            parse_message(built.headers, built.body[:cut], params=params)


def test_zip_bomb_in_a_message_is_refused(pki: Pki) -> None:
    entity = b"Content-Type: application/xml\r\n\r\n"
    bomb = compress([entity, bytes(32 * MIB)], level=9)  # ~1000:1, over the 300:1 default
    headers = {
        "AS2-From": PA,
        "AS2-To": f'"{AIFE}"',
        "Message-ID": "<bomb@pa>",
        "Content-Type": "application/pkcs7-mime; smime-type=compressed-data",
    }
    params = aife_receives(pki, require_signature=False, require_encryption=False)
    with pytest.raises(As2LimitError) as caught:
        parse_message(headers, bomb, params=params)
    assert caught.value.modifier is Modifier.DECOMPRESSION_FAILED


def test_oversize_body_and_payload_are_refused(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF * 100, params=send(pki), now=now)
    with pytest.raises(As2LimitError, match="body over"):
        parse_message(built.headers, built.body, params=aife_receives(pki, max_body_size=100))
    with pytest.raises(As2LimitError, match="payload over"):
        parse_message(built.headers, built.body, params=aife_receives(pki, max_payload_size=100))


def test_encryption_inside_a_signature_is_refused(pki: Pki, now: dt.datetime) -> None:
    inner = pkcs7_part(encrypt(b"x", recipients=[pki.aife.cert]), "enveloped-data", "a.p7m")
    outer = signed_part(
        inner.chunks(),
        identity=pki.pa.signing(),
        digest=DigestAlgorithm.SHA256,
        scheme=SignatureScheme.RSA_PKCS1V15,
        now=now,
    )
    headers = {"AS2-From": PA, "AS2-To": f'"{AIFE}"', "Message-ID": "<x@pa>", **dict(outer.headers)}
    with pytest.raises(As2Error, match="outermost"):
        parse_message(
            headers, b"".join(outer.body), params=aife_receives(pki, require_encryption=False)
        )


def test_missing_content_type_is_refused(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki), now=now)
    del built.headers["Content-Type"]
    with pytest.raises(MimeError, match="Content-Type missing"):
        parse_message(built.headers, built.body, params=aife_receives(pki))


@pytest.mark.parametrize(
    "overrides",
    [
        {"file_name": "FSO1100A_1.xml\r\nX-Injected: 1"},
        {"subject": "hello\nBcc: x"},
        {"content_type": "application/xml\r\n\r\n<evil/>"},
        {"as2_to": "AIFE\r\nX: 1"},
        {"as2_from": ""},
        {"mdn_mode": MdnMode.ASYNC},
        {"cipher": ContentCipher.DES3_CBC},
        {"message_id_domain": "a@b"},
        {"compression_level": 0},
        {"compression_level": 10},
    ],
)
def test_build_refuses_injection_and_bad_options(pki: Pki, overrides: dict[str, Any]) -> None:
    with pytest.raises(As2BuildError):
        send(pki, **overrides)


@pytest.mark.parametrize(
    "overrides",
    [{"max_body_size": 0}, {"max_payload_size": -1}, {"max_compression_ratio": 0}, {"as2_to": ""}],
)
def test_receive_params_refuse_nonsense(pki: Pki, overrides: dict[str, Any]) -> None:
    with pytest.raises(As2BuildError):
        aife_receives(pki, **overrides)


def test_naive_now_is_a_build_error(pki: Pki) -> None:
    with pytest.raises(As2BuildError, match="timezone-aware"):
        build_message(XML_LF, params=send(pki, signing=None), now=dt.datetime(2026, 9, 1))


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize(
    ("compressed", "before_sign"), [(False, False), (True, False), (True, True)]
)
def test_every_layer_combination_round_trips(
    pki: Pki,
    now: dt.datetime,
    *,
    signed: bool,
    encrypted: bool,
    compressed: bool,
    before_sign: bool,
) -> None:
    params = send(
        pki,
        signing=pki.pa.signing() if signed else None,
        encryption_certificate=pki.aife.cert if encrypted else None,
        compress=compressed,
        compress_before_sign=before_sign,
    )
    built = build_message(XML_LF, params=params, now=now)
    received = parse_message(
        built.headers,
        built.body,
        params=aife_receives(pki, require_signature=signed, require_encryption=encrypted),
        now=now,
    )
    assert received.payload == XML_LF
    assert (received.signed, received.encrypted, received.compressed) == (
        signed,
        encrypted,
        compressed,
    )
    assert received.mic == built.mic  # the MDN will carry what the sender expects
    assert (received.file_name, received.content_type) == ("FSO1100A_42.xml", "application/xml")
    assert (received.as2_from, received.as2_to, received.message_id) == (
        PA,
        AIFE,
        built.message_id,
    )


@pytest.mark.parametrize("cipher", [c for c in ContentCipher if c is not ContentCipher.DES3_CBC])
def test_every_cipher_round_trips(pki: Pki, now: dt.datetime, cipher: ContentCipher) -> None:
    built = build_message(XML_LF, params=send(pki, cipher=cipher), now=now)
    expected = "authEnveloped-data" if cipher.aead else "enveloped-data"
    assert f"smime-type={expected}" in built.headers["Content-Type"]
    assert parse_message(built.headers, built.body, params=aife_receives(pki)).payload == XML_LF


@pytest.mark.parametrize("digest", list(DigestAlgorithm))
@pytest.mark.parametrize("scheme", list(SignatureScheme))
def test_every_signature_round_trips_with_its_mic(
    pki: Pki, now: dt.datetime, digest: DigestAlgorithm, scheme: SignatureScheme
) -> None:
    params = send(
        pki, digest=digest, signature_scheme=scheme, key_transport=KeyTransport.RSA_OAEP_SHA256
    )
    built = build_message(XML_LF, params=params, now=now)
    received = parse_message(built.headers, built.body, params=aife_receives(pki))
    assert received.signature is not None
    assert received.signature.digest is digest
    assert received.mic == built.mic
    assert built.mic.algorithm is digest


def test_headers_carry_as2_names_mdn_request_and_file_name(pki: Pki, now: dt.datetime) -> None:
    url = "https://pa.example/as2/mdn"
    params = send(pki, mdn_mode=MdnMode.ASYNC, receipt_url=url, file_name="facture-été.xml")
    built = build_message(XML_LF, params=params, now=now)
    assert built.headers["AS2-To"] == f'"{AIFE}"'
    assert built.headers["Receipt-Delivery-Option"] == url
    received = parse_message(built.headers, built.body, params=aife_receives(pki))
    request = received.mdn_request
    assert request is not None
    assert request.mode is MdnMode.ASYNC
    assert request.receipt_url == url
    assert request.signed
    assert request.micalgs == ("sha-256",)
    assert received.file_name == "facture-été.xml"


def test_payload_without_file_name(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, file_name=None), now=now)
    assert built.headers["Subject"] == "AS2 message"
    assert parse_message(built.headers, built.body, params=aife_receives(pki)).file_name is None


def test_no_mdn_requested(pki: Pki, now: dt.datetime) -> None:
    built = build_message(XML_LF, params=send(pki, mdn_mode=MdnMode.NONE), now=now)
    assert "Disposition-Notification-To" not in built.headers
    assert parse_message(built.headers, built.body, params=aife_receives(pki)).mdn_request is None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        st.binary(max_size=3000),
        st.lists(st.sampled_from([b"<a>", b"\n", b"\r", b"\r\n", b"x" * 50, b"--"])).map(b"".join),
    ),
    layers=st.sampled_from(
        [
            {},
            {"compress_before_sign": True},
            {"compress": False},
            {"encryption_certificate": None},
            {"signing": None, "compress": False},
        ]
    ),
)
def test_lf_only_and_binary_payloads_are_byte_exact(
    pki: Pki, now: dt.datetime, payload: bytes, layers: dict[str, Any]
) -> None:
    params = send(pki, **layers)
    built = build_message(payload, params=params, now=now)
    received = parse_message(
        built.headers,
        built.body,
        params=aife_receives(
            pki,
            require_signature=params.signing is not None,
            require_encryption=params.encryption_certificate is not None,
        ),
    )
    assert received.payload == payload
    assert received.mic == built.mic


@pytest.mark.parametrize("compressed", [False, True])
def test_parse_holds_at_most_about_three_payloads(
    pki: Pki, now: dt.datetime, compressed: bool
) -> None:
    payload = (XML_LF * (24 * MIB // len(XML_LF)))[: 12 * MIB] + bytes(range(256)) * (
        12 * MIB // 256
    )
    built = build_message(payload, params=send(pki, compress=compressed), now=now)
    tracemalloc.start()
    try:
        received = parse_message(built.headers, built.body, params=aife_receives(pki))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.payload == payload
    held = peak + len(built.body)  # the body the caller holds counts too
    assert held < 3.2 * len(payload), held / len(payload)


def test_an_envelope_read_before_is_checked_all_the_same(pki: Pki, now: dt.datetime) -> None:
    """A listener reads the envelope once to pick the connection and hands it over."""
    built = build_message(XML_LF, params=send(pki), now=now)
    envelope = read_envelope(Headers.from_mapping(built.headers))
    received = parse_message(built.headers, built.body, params=aife_receives(pki),
                             envelope=envelope)  # fmt: skip
    assert received.payload == XML_LF
    assert received.mic == built.mic
    for wrong in (
        dataclasses.replace(envelope, as2_from="SOMEONE-ELSE"),
        dataclasses.replace(envelope, as2_to="SOMEONE-ELSE"),
    ):
        with pytest.raises(As2Error, match="is not this connection's") as caught:
            parse_message(built.headers, built.body, params=aife_receives(pki), envelope=wrong)
        assert caught.value.modifier is Modifier.UNKNOWN_TRADING_PARTNER
