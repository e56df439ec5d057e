"""MDNs: receipt requests in any order, receipts built and read, OpenSSL checking ours."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from protocols.as2.algorithms import DigestAlgorithm
from protocols.as2.errors import As2Error, FailureModifier, MimeError, Modifier
from protocols.as2.mdn import (
    BuiltMdn,
    Disposition,
    DispositionType,
    MdnRequest,
    build_mdn,
    parse_disposition_options,
    parse_mdn,
)
from protocols.as2.mdn_request import Importance, read_mdn_request
from protocols.as2.message import build_message, parse_message
from protocols.as2.mic import Mic, compute_mic
from protocols.as2.mime import Headers
from protocols.as2.params import MdnMode, MdnParams
from tests.as2.as2_helpers import AIFE, PA, Pki, aife_receives, openssl, send

ORIGINAL = "<20260901.abc@pa.example>"
MIC = compute_mic(b"signed entity", DigestAlgorithm.SHA256)
SIGNED_REQUEST = MdnRequest(
    "mailto:pa@example",
    None,
    parse_disposition_options(
        "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256"
    ),
)


def aife_mdn_params(pki: Pki, **overrides: Any) -> MdnParams:
    base = MdnParams(as2_from=AIFE, as2_to=PA, signing=pki.aife.signing())
    return dataclasses.replace(base, **overrides)


def _mdn(
    pki: Pki,
    now: dt.datetime,
    disposition: Disposition | None = None,
    request: MdnRequest | None = SIGNED_REQUEST,
    **params: Any,
) -> BuiltMdn:
    return build_mdn(
        original_message_id=ORIGINAL,
        disposition=disposition or Disposition(),
        mic=MIC,
        request=request,
        params=aife_mdn_params(pki, **params),
        now=now,
    )


def _read(pki: Pki, built: BuiltMdn, **options: Any) -> Any:
    return parse_mdn(built.headers, built.body, partner_certificates=[pki.aife.cert], **options)


# --- Disposition-Notification-Options -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha1",
        "signed-receipt-micalg=optional, sha1; signed-receipt-protocol=optional, pkcs7-signature",
        (
            'Signed-Receipt-MICalg = Optional , "SHA1" ;'
            "signed-receipt-protocol=optional,pkcs7-signature;"
        ),
    ],
    ids=["protocol-first", "micalg-first", "spacing-case-quotes"],
)
def test_options_are_read_in_any_order(value: str) -> None:
    options = parse_disposition_options(value)
    assert options["signed-receipt-protocol"].values == ("pkcs7-signature",)
    assert options["signed-receipt-micalg"].importance is Importance.OPTIONAL
    request = MdnRequest("x", None, options)
    assert request.signed
    assert request.mic_algorithm(signed_with=None) is DigestAlgorithm.SHA1


def test_first_supported_micalg_wins() -> None:
    options = parse_disposition_options("signed-receipt-micalg=optional, md5, sha-384, sha1")
    assert MdnRequest("x", None, options).mic_algorithm(signed_with=None) is DigestAlgorithm.SHA384


@pytest.mark.parametrize(
    ("value", "failure"),
    [
        ("signed-receipt-micalg=required, md5", FailureModifier.UNSUPPORTED_MIC_ALGORITHMS),
        ("signed-receipt-protocol=required, pgp-signature", FailureModifier.UNSUPPORTED_FORMAT),
        ("x-future-option=required, yes", FailureModifier.UNSUPPORTED_FORMAT),
        ("signed-receipt-micalg=optional, md5; x-future=optional, 1", None),
    ],
)
def test_required_options_we_cannot_honour_fail_the_mdn(
    value: str, failure: FailureModifier | None
) -> None:
    request = MdnRequest("x", None, parse_disposition_options(value))
    assert request.failure is failure
    if failure is None:  # optional: fall back to the signature's algorithm, then SHA-256
        assert request.mic_algorithm(signed_with=None) is DigestAlgorithm.SHA256


@pytest.mark.parametrize(
    "value",
    ["no-equals-sign", "=optional, x", "a=1; a=2", 'signed-receipt-micalg=optional, "sha1'],
)
def test_malformed_options_are_a_typed_error(value: str) -> None:
    with pytest.raises(MimeError):
        parse_disposition_options(value)


def test_request_from_headers_sync_and_async() -> None:
    assert read_mdn_request(Headers((("Subject", "x"),))) is None
    sync = read_mdn_request(Headers((("Disposition-Notification-To", "mailto:a@b"),)))
    assert sync is not None
    assert sync.mode is MdnMode.SYNC
    assert not sync.signed
    url = "https://pa.example/mdn"
    fields = (("Disposition-Notification-To", url), ("Receipt-Delivery-Option", url))
    asynchronous = read_mdn_request(Headers(fields))
    assert asynchronous is not None
    assert asynchronous.mode is MdnMode.ASYNC
    assert asynchronous.receipt_url == url


# --- Disposition ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok", "error"),
    [
        ("automatic-action/MDN-sent-automatically; processed", True, None),
        (
            "automatic-action/MDN-sent-automatically; processed/warning: duplicate-document",
            True,
            None,
        ),
        (
            "automatic-action/MDN-sent-automatically; processed/Error: authentication-failed",
            False,
            Modifier.AUTHENTICATION_FAILED,
        ),
        (
            "Automatic-Action/MDN-Sent-Automatically ; Processed/ERROR: decryption-failed",
            False,
            Modifier.DECRYPTION_FAILED,
        ),
        (
            "automatic-action/MDN-sent-automatically; failed/Failure: unsupported format",
            False,
            None,
        ),
        ("automatic-action/MDN-sent-automatically; processed/garbled", False, None),
    ],
)
def test_dispositions_as_partners_write_them(value: str, ok: bool, error: Modifier | None) -> None:
    disposition = Disposition.parse(value)
    assert (disposition.ok, disposition.error_modifier) == (ok, error)


@pytest.mark.parametrize("value", ["processed", "automatic-action/x; deleted", ""])
def test_unreadable_dispositions_are_refused(value: str) -> None:
    with pytest.raises(MimeError):
        Disposition.parse(value)


def test_disposition_header_values() -> None:
    assert Disposition.error(Modifier.DECOMPRESSION_FAILED).header_value() == (
        "automatic-action/MDN-sent-automatically; processed/error: decompression-failed"
    )
    failure = Disposition.failure(FailureModifier.UNSUPPORTED_MIC_ALGORITHMS)
    assert failure.type is DispositionType.FAILED
    assert failure.header_value().endswith("failed/failure: unsupported MIC-algorithms")


# --- hostile MDNs -------------------------------------------------------------------------------


def test_mdn_signed_by_another_certificate_fails_authentication(pki: Pki, now: dt.datetime) -> None:
    built = _mdn(pki, now, signing=pki.other.signing())
    with pytest.raises(As2Error) as caught:
        _read(pki, built)
    assert caught.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_unsigned_mdn_refused_when_signature_required(pki: Pki, now: dt.datetime) -> None:
    built = _mdn(pki, now, request=None)
    assert not built.signed
    with pytest.raises(As2Error) as caught:
        _read(pki, built)
    assert caught.value.modifier is Modifier.INSUFFICIENT_MESSAGE_SECURITY
    assert _read(pki, built, require_signature=False).accepted


def test_tampered_mdn_fails_integrity(pki: Pki, now: dt.datetime) -> None:
    built = _mdn(pki, now, disposition=Disposition.error(Modifier.DECRYPTION_FAILED))
    forged = built.body.replace(b"processed/error: decryption-failed", b"processed" + b" " * 24)
    with pytest.raises(As2Error) as caught:
        parse_mdn(built.headers, forged, partner_certificates=[pki.aife.cert])
    assert caught.value.modifier is Modifier.INTEGRITY_CHECK_FAILED


def test_mic_mismatch_means_not_accepted(pki: Pki, now: dt.datetime) -> None:
    other = compute_mic(b"something else", DigestAlgorithm.SHA256)
    received = _read(pki, _mdn(pki, now), expected_mic=other)
    assert received.disposition.ok
    assert received.mic_matches is False
    assert not received.accepted


def test_mdn_for_another_message_is_refused(pki: Pki, now: dt.datetime) -> None:
    with pytest.raises(As2Error, match="MDN answers"):
        _read(pki, _mdn(pki, now), expected_message_id="<other@pa>")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, b""),
        ("text/plain", b"hello"),
        ("multipart/report; boundary=b", b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"),
        (
            "multipart/report; boundary=b",
            b"--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
            b"Reporting-UA: x\r\n--b--\r\n",
        ),
    ],
    ids=["no-content-type", "not-a-report", "no-notification-part", "no-disposition"],
)
def test_malformed_mdns_are_typed_errors(content_type: str | None, body: bytes) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with pytest.raises(MimeError):
        parse_mdn(headers, body, partner_certificates=[], require_signature=False)


def test_signed_mdn_with_a_third_part_is_refused(pki: Pki, now: dt.datetime) -> None:
    built = _mdn(pki, now)
    boundary = built.headers["Content-Type"].split("boundary=")[1].strip('"')
    extra = built.body.replace(
        f"--{boundary}--".encode(), f"--{boundary}\r\n\r\nextra\r\n--{boundary}--".encode()
    )
    with pytest.raises(MimeError, match="3 parts"):
        parse_mdn(built.headers, extra, partner_certificates=[pki.aife.cert])


def test_truncated_signed_mdn_is_always_a_typed_error(pki: Pki, now: dt.datetime) -> None:
    built = _mdn(pki, now)
    for cut in range(0, len(built.body), 17):
        with pytest.raises(As2Error):
            _read(pki, dataclasses.replace(built, body=built.body[:cut]))


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "disposition",
    [
        Disposition(),
        Disposition.warning("duplicate-document"),
        Disposition.error(Modifier.AUTHENTICATION_FAILED),
        Disposition.failure(FailureModifier.UNSUPPORTED_FORMAT),
    ],
    ids=["processed", "warning", "error", "failed"],
)
def test_mdn_round_trip(pki: Pki, now: dt.datetime, disposition: Disposition) -> None:
    built = _mdn(pki, now, disposition=disposition)
    assert built.signed
    assert built.mode is MdnMode.SYNC
    received = _read(pki, built, expected_message_id=ORIGINAL, expected_mic=MIC, now=now)
    assert received.disposition == disposition
    assert received.accepted is disposition.ok
    assert received.mic == MIC
    assert received.signed
    assert received.message_id == built.message_id
    assert ORIGINAL in received.text


def test_async_mdn_goes_to_the_receipt_url(pki: Pki, now: dt.datetime) -> None:
    url = "https://pa.example/as2/mdn"
    request = dataclasses.replace(SIGNED_REQUEST, receipt_url=url)
    built = _mdn(pki, now, request=request)
    assert (built.mode, built.url) == (MdnMode.ASYNC, url)


def test_message_and_mdn_end_to_end(pki: Pki, now: dt.datetime) -> None:
    """PA sends, AIFE answers with the MIC it computed, PA checks it matches."""
    sent = build_message(b"<Invoice/>\n", params=send(pki), now=now)
    received = parse_message(sent.headers, sent.body, params=aife_receives(pki), now=now)
    mdn = build_mdn(
        original_message_id=received.message_id,
        disposition=Disposition(),
        mic=received.mic,
        request=received.mdn_request,
        params=MdnParams(as2_from=AIFE, as2_to=PA, signing=pki.aife.signing()),
        now=now,
    )
    answer = parse_mdn(
        mdn.headers,
        mdn.body,
        partner_certificates=[pki.aife.cert],
        expected_message_id=sent.message_id,
        expected_mic=sent.mic,
        now=now,
    )
    assert answer.accepted
    assert answer.mic_matches


def test_mic_values_parse_in_both_spellings() -> None:
    assert Mic.parse(f"{MIC.header_value().split(',')[0]}, SHA256").matches(MIC)
    with pytest.raises(As2Error):
        Mic.parse("not base64!, sha-256")
    with pytest.raises(As2Error):
        Mic.parse("AAAA, md5")


# --- interop with OpenSSL ---------------------------------------------------------------------


def _as_file(built: BuiltMdn, path: Path) -> Path:
    head = "".join(f"{name}: {value}\r\n" for name, value in built.headers.items())
    path.write_bytes(head.encode() + b"\r\n" + built.body)
    return path


@pytest.mark.interop
@pytest.mark.parametrize("tool", ["smime", "cms"])
def test_openssl_verifies_our_signed_mdn(
    pki: Pki, now: dt.datetime, tmp_path: Path, tool: str
) -> None:
    path = _as_file(_mdn(pki, now), tmp_path / "mdn.eml")
    report = openssl(
        tool, "-verify", "-in", path, "-CAfile", pki.root_path, "-purpose", "any"
    )  # fmt: skip
    assert b"Original-Message-ID: " + ORIGINAL.encode() in report
    assert MIC.header_value().encode() in report


@pytest.mark.interop
def test_we_verify_an_mdn_signed_by_openssl(pki: Pki, tmp_path: Path) -> None:
    report = (
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=R\r\n\r\n"
        b"--R\r\nContent-Type: text/plain\r\n\r\nReceived.\r\n"
        b"--R\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Reporting-UA: OpenSSL-built\r\nOriginal-Message-ID: " + ORIGINAL.encode() + b"\r\n"
        b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n"
        b"Received-Content-MIC: " + MIC.header_value().encode() + b"\r\n\r\n--R--\r\n"
    )
    signed = openssl(
        "smime", "-sign", "-binary", "-crlfeol", "-md", "sha256", "-signer", pki.aife.cert_path,
        "-inkey", pki.aife.key_path, stdin=report,
    )  # fmt: skip
    head, _, body = signed.partition(b"\r\n\r\n")
    headers = dict(
        line.split(": ", 1) for line in head.decode().replace("\r\n ", " ").split("\r\n")
    )
    received = parse_mdn(headers, body, partner_certificates=[pki.aife.cert], expected_mic=MIC)
    assert received.accepted
    assert received.reporting_ua == "OpenSSL-built"
