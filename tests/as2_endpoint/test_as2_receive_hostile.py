"""Hostile inbound AS2, each case named after the attack: refused with its RFC modifier.

Every refusal is answered (a negative MDN signed by our connection when one was asked for, an
HTTP status otherwise), counted in raccord_as2_mdn_total, and nothing reaches the store.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from protocols.as2.errors import Modifier
from protocols.as2.mdn import DispositionType, ReceivedMdn
from protocols.as2.params import MdnMode
from tests.as2_endpoint.harness import (
    AIFE_PROD,
    AIFE_QUAL,
    PA_PROD,
    PA_QUAL,
    QUAL,
    Clock,
    Layout,
    Parties,
    metric,
    post,
    raw_request,
    running_gateway,
    write_config,
)
from tests.as2_endpoint.messages import (
    ENVELOPED,
    as2_headers,
    core_message,
    entity,
    openssl_encrypted,
    openssl_message,
    openssl_signed,
    read_mdn,
)

pytestmark = pytest.mark.interop

XML = b'<?xml version="1.0"?>\n<Report><Status>OK</Status></Report>\n'


async def _refused(
    layout: Layout, headers: dict[str, str], body: bytes, parties: Parties, *, signer: object = None
) -> ReceivedMdn:
    status, answer_headers, answer = await post(f"{layout.base_url}/as2", headers, body)
    assert status == 200, answer
    mdn = read_mdn(answer_headers, answer, parties, signer=signer)  # type: ignore[arg-type]
    assert not mdn.disposition.ok
    return mdn


def _error(mdn: ReceivedMdn) -> Modifier | None:
    return mdn.disposition.error_modifier


async def _nothing_stored(gw: object) -> None:
    store = gw.context.store  # type: ignore[attr-defined]
    assert await store.list_messages() == []


async def test_tampered_signed_content_is_integrity_check_failed(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML, tamper=True)
    async with running_gateway(write_config(layout)) as gw:
        before = metric(
            "raccord_as2_mdn_total",
            connection=QUAL,
            direction="sent",
            disposition="processed/error",
            modifier="integrity-check-failed",
        )
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) is Modifier.INTEGRITY_CHECK_FAILED
        assert mdn.mic is None
        await _nothing_stored(gw)
        after = metric(
            "raccord_as2_mdn_total",
            connection=QUAL,
            direction="sent",
            disposition="processed/error",
            modifier="integrity-check-failed",
        )
        assert after == before + 1


async def test_ciphertext_cut_short_is_decryption_failed(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, headers, body[: len(body) // 2], parties)
        assert _error(mdn) is Modifier.DECRYPTION_FAILED
        mdn = await _refused(layout, {**headers, "Message-ID": "<x1@a>"}, body[:-17], parties)
        assert _error(mdn) is Modifier.DECRYPTION_FAILED
        await _nothing_stored(gw)


async def test_message_encrypted_for_another_connection_is_decryption_failed(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML, recipient=parties.pa_prod)
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) is Modifier.DECRYPTION_FAILED
        await _nothing_stored(gw)


@pytest.mark.parametrize("signer", ["aife_prod", "stranger", "pa_qual"])
async def test_signer_of_another_connection_is_refused_like_an_unknown_one(
    parties: Parties, tmp_path: Path, signer: str
) -> None:
    """AIFE PROD's certificate is trusted — for PROD. On QUAL it is nobody."""
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML, signer=getattr(parties, signer))
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) is Modifier.AUTHENTICATION_FAILED
        assert "signer not among the expected certificates" in mdn.text
        await _nothing_stored(gw)


async def test_expired_partner_certificate_is_authentication_failed(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties, qual_partner=parties.aife_short)
    clock = Clock()
    headers, body = openssl_message(parties, XML, signer=parties.aife_short)
    async with running_gateway(write_config(layout), clock=clock) as gw:
        clock.offset = dt_days(3)  # AIFE's certificate lapsed, ours is still valid
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) is Modifier.AUTHENTICATION_FAILED
        assert "expired" in mdn.text
        await _nothing_stored(gw)


def dt_days(days: int) -> dt.timedelta:
    return dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("as2_from", "as2_to"),
    [("AIFE-EVIL", PA_QUAL), (AIFE_QUAL, "PA-NOBODY"), (AIFE_PROD, PA_QUAL), (AIFE_QUAL, PA_PROD),
     ("aife-qual", PA_QUAL)],
)  # fmt: skip
async def test_unknown_as2_names_are_403_without_mdn(
    parties: Parties, tmp_path: Path, as2_from: str, as2_to: str
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML, as2_from=as2_from, as2_to=as2_to)
    async with running_gateway(write_config(layout)) as gw:
        before = metric(
            "raccord_authentication_failures_total",
            protocol="as2",
            reason="unknown-trading-partner",
        )
        status, answer_headers, answer = await post(f"{layout.base_url}/as2", headers, body)
        assert status == 403
        assert answer.startswith(b"unknown-trading-partner")
        assert "AS2-From" not in answer_headers  # nobody to sign an MDN as
        await _nothing_stored(gw)
        assert (
            metric(
                "raccord_authentication_failures_total",
                protocol="as2",
                reason="unknown-trading-partner",
            )
            == before + 1
        )


async def test_zip_bomb_is_decompression_failed(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties, qual={"max_compression_ratio": 50})
    built = core_message(parties, b"\0" * (4 << 20), compress=True)
    assert len(built.body) < 64 * 1024
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties)
        assert _error(mdn) is Modifier.DECOMPRESSION_FAILED
        await _nothing_stored(gw)


async def test_payload_over_the_connection_size_cap_is_refused(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties, max_size=64 * 1024)
    built = core_message(parties, os.urandom(100_000), compress=False)
    inflating = core_message(parties, b"<a/>" * 50_000, compress=True)
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties)
        assert _error(mdn) is Modifier.UNEXPECTED_PROCESSING_ERROR
        assert "size cap" in mdn.text
        mdn = await _refused(layout, inflating.headers, inflating.body, parties)
        assert _error(mdn) is Modifier.DECOMPRESSION_FAILED
        await _nothing_stored(gw)


async def test_oversize_body_is_413_before_it_is_read(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties, max_size=64 * 1024)  # body cap: 64K + 32K + 1 MiB
    headers = {**as2_headers(), "Content-Type": ENVELOPED}
    async with running_gateway(write_config(layout)) as gw:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST /as2 HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 50000000\r\n\r\n"
        answer = await raw_request(layout.listen_port, request.encode() + b"x" * 1000)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

        async def endless() -> object:
            for _ in range(200):
                yield b"y" * 16384

        status, _, text = await post(f"{layout.base_url}/as2", headers, endless())
        assert status == 413, text
        assert b"body over" in text
        await _nothing_stored(gw)


async def test_body_cut_short_on_the_wire_stores_nothing(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    async with running_gateway(write_config(layout)) as gw:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST /as2 HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        answer = await raw_request(
            layout.listen_port, request.encode() + body[:-100], half_close=True
        )
        assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
        await _nothing_stored(gw)
        status, _, _ = await post(f"{layout.base_url}/as2", headers, body)  # still serving
        assert status == 200


@pytest.mark.parametrize(
    "injected",
    [
        b"Message-ID: <a@b>\r\n X-Injected: yes\r\n",  # obs-fold continuation
        b"Message-ID: <a@b>\rX-Injected: yes\r\n",  # bare CR
        b"Message-ID: <a@b>\nX-Injected: yes\r\n",  # bare LF
        b"Message-ID: <a@b\x00>\r\n",  # NUL
        b"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n",  # two ids: which one is answered?
        b"Message-ID: <a@b> <c@d>\r\n",
    ],
    ids=["obs-fold", "bare-cr", "bare-lf", "nul", "twice", "two-in-one"],
)
async def test_header_injection_is_refused(
    parties: Parties, tmp_path: Path, injected: bytes
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    del headers["Message-ID"]
    async with running_gateway(write_config(layout)) as gw:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        request = (
            b"POST /as2 HTTP/1.1\r\nHost: x\r\n"
            + head
            + injected
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        answer = await raw_request(layout.listen_port, request)
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.split()[1] in (b"400", b"403"), answer[:300]
        response_head = rest.partition(b"\r\n\r\n")[0]
        assert b"X-Injected" not in response_head
        await _nothing_stored(gw)


@pytest.mark.parametrize(
    "file_name", ["../../etc/CSO1100A_1.xml", "CSO1100A_1.xml/..", "CSO1100A_", "cso1100a_1.xml",
                  "CSO1100A_1.xml\x7f", "CSO1100A_1 .xml", "README.txt"],
)  # fmt: skip
async def test_file_name_that_is_not_a_bare_flow_name_is_refused(
    parties: Parties, tmp_path: Path, file_name: str
) -> None:
    layout = Layout(tmp_path, parties)
    built = core_message(parties, XML, file_name=file_name.replace("\x7f", "~"))
    if "\x7f" in file_name:
        built = core_message(parties, XML, file_name="CSO1100A_1.xml~")
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties)
        assert _error(mdn) is Modifier.UNEXPECTED_PROCESSING_ERROR
        await _nothing_stored(gw)


async def test_no_interface_code_anywhere_is_refused(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    built = core_message(parties, XML, file_name=None, subject="invoices")
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties)
        assert "no interface code" in mdn.text
        await _nothing_stored(gw)


async def test_code_in_the_subject_is_enough(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    built = core_message(parties, XML, file_name=None, subject="FEN1200A_9.xml")
    async with running_gateway(write_config(layout)) as gw:
        status, headers, answer = await post(f"{layout.base_url}/as2", built.headers, built.body)
        assert status == 200
        assert read_mdn(headers, answer, parties).disposition.ok
        [message] = await gw.context.store.list_messages()
        assert (message.interface_code, message.file_name) == ("FEN1200A", "FEN1200A_9.xml")


async def test_receipt_url_to_a_foreign_host_is_never_posted_to(
    parties: Parties, tmp_path: Path
) -> None:
    """Server-side request forgery: the MDN comes back in the response, refusing."""
    layout = Layout(tmp_path, parties, aife_host="aife.example")
    built = core_message(
        parties, XML, mdn_mode=MdnMode.ASYNC, receipt_url="http://169.254.169.254/latest/meta-data"
    )
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties)
        assert "Receipt-Delivery-Option" in mdn.text
        await _nothing_stored(gw)


async def test_inbox_refusals_map_to_negative_mdns(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties, prod_status="en_cours")
    not_subscribed = core_message(
        parties,
        XML,
        file_name="FEN1200A_1.xml",
        as2_to=PA_PROD,
        as2_from=AIFE_PROD,
        signing=parties.aife_prod.signing(),
        encryption_certificate=parties.pa_prod.cert,
    )
    unknown = core_message(parties, XML, file_name="ZZZ9999Z_1.xml")
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, unknown.headers, unknown.body, parties)
        assert _error(mdn) is Modifier.UNEXPECTED_PROCESSING_ERROR
        assert "unknown-code" in mdn.text
        mdn = await _refused(
            layout, not_subscribed.headers, not_subscribed.body, parties, signer=parties.pa_prod
        )
        assert "connection-closed" in mdn.text  # PROD is en_cours: no traffic at all
        await _nothing_stored(gw)
        assert (
            metric(
                "raccord_refused_total",
                protocol="as2",
                direction="reception",
                kind="connection-closed",
            )
            >= 1
        )


async def test_not_subscribed_code_is_refused(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    built = core_message(
        parties,
        XML,
        file_name="FEN1200A_1.xml",
        as2_to=PA_PROD,
        as2_from=AIFE_PROD,
        signing=parties.aife_prod.signing(),
        encryption_certificate=parties.pa_prod.cert,
    )
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, built.headers, built.body, parties, signer=parties.pa_prod)
        assert "not-subscribed" in mdn.text
        await _nothing_stored(gw)


async def test_unsigned_or_unencrypted_message_is_insufficient_security(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    unsigned = core_message(parties, XML, signing=None)
    plain = core_message(parties, XML, encryption_certificate=None)
    async with running_gateway(write_config(layout)) as gw:
        for built in (unsigned, plain):
            mdn = await _refused(layout, built.headers, built.body, parties)
            assert _error(mdn) is Modifier.INSUFFICIENT_MESSAGE_SECURITY
        await _nothing_stored(gw)


async def test_required_receipt_option_we_cannot_honour_is_failed(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    headers, body = openssl_message(parties, XML)
    headers["Disposition-Notification-Options"] = (
        "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=required, md5"
    )
    async with running_gateway(write_config(layout)) as gw:
        status, answer_headers, answer = await post(f"{layout.base_url}/as2", headers, body)
        assert status == 200
        mdn = read_mdn(answer_headers, answer, parties)
        assert mdn.disposition.type is DispositionType.FAILED
        assert mdn.disposition.modifier_text == "unsupported MIC-algorithms"
        await _nothing_stored(gw)


async def test_refusal_without_receipt_request_is_an_http_status(
    parties: Parties, tmp_path: Path
) -> None:
    layout = Layout(tmp_path, parties)
    forged = openssl_message(parties, XML, signer=parties.stranger, mdn=False)
    good = openssl_message(parties, XML, mdn=False)
    async with running_gateway(write_config(layout)) as gw:
        status, _, text = await post(f"{layout.base_url}/as2", *forged)
        assert (status, text.split(b":")[0]) == (403, b"authentication-failed")
        status, _, text = await post(f"{layout.base_url}/as2", *good)
        assert (status, text) == (200, b"processed")
        assert len(await gw.context.store.list_messages()) == 1


async def test_encrypted_for_us_but_not_cms_is_refused(parties: Parties, tmp_path: Path) -> None:
    layout = Layout(tmp_path, parties)
    body = openssl_encrypted(parties.pa_qual, b"Content-Type: text/plain\r\n\r\nhello")
    headers = {**as2_headers(), "Content-Type": ENVELOPED}
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) is Modifier.INSUFFICIENT_MESSAGE_SECURITY  # no signature inside
        await _nothing_stored(gw)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
async def test_truncated_mime_inside_the_envelope_is_refused(
    parties: Parties, tmp_path: Path, keep: float
) -> None:
    """The S/MIME entity is cut short before encryption: well encrypted, badly framed."""
    layout = Layout(tmp_path, parties)
    signed = openssl_signed(parties.aife_qual, entity(XML))
    body = openssl_encrypted(parties.pa_qual, signed[: int(len(signed) * keep)])
    headers = {**as2_headers(), "Content-Type": ENVELOPED}
    async with running_gateway(write_config(layout)) as gw:
        mdn = await _refused(layout, headers, body, parties)
        assert _error(mdn) in (Modifier.UNEXPECTED_PROCESSING_ERROR, Modifier.AUTHENTICATION_FAILED)
        await _nothing_stored(gw)
