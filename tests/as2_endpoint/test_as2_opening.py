"""The receipt signed while a message is opened (one worker job) goes out only when it is right.

`open_message` signs the positive MDN next to the decryption, before the inbox is asked: that
MDN must answer a message accepted as new and nothing else. A refusal, a repeat, or a message
that fails to open gets its own answer, built afterwards (the hostile suite covers refusals).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from protocols.as2.answers import refusal_of
from protocols.as2.envelope import read_envelope
from protocols.as2.errors import As2Error, Modifier
from protocols.as2.inbound import Verdict
from protocols.as2.mdn import Disposition, DispositionType, parse_mdn
from protocols.as2.message import BuiltMessage
from protocols.as2.opening import Opened, open_message
from protocols.as2.params import As2ReceiveParams, MdnMode, MdnParams
from protocols.as2.partners import PartnerProfile
from protocols.ports import Accepted
from tests.as2_endpoint.harness import (
    AIFE_QUAL,
    PA_QUAL,
    QUAL,
    Layout,
    Parties,
    post,
    running_gateway,
    write_config,
)
from tests.as2_endpoint.messages import core_message, openssl_message, read_mdn
from tests.pki import now

XML = b'<?xml version="1.0"?>\n<Report><Status>OK</Status></Report>\n'


def _profile(parties: Parties) -> PartnerProfile:
    receive = As2ReceiveParams(
        as2_from=AIFE_QUAL, as2_to=PA_QUAL, partner_certificates=(parties.aife_qual.cert,),
        decryption=(parties.pa_qual.decryption(),),
    )  # fmt: skip
    mdn = MdnParams(as2_from=PA_QUAL, as2_to=AIFE_QUAL, signing=parties.pa_qual.signing())
    return PartnerProfile(connection=QUAL, receive=receive, mdn=mdn, max_body_size=1 << 20)


def _open(parties: Parties, built: BuiltMessage, when: dt.datetime | None = None) -> Opened:
    envelope = read_envelope(built.headers)
    return open_message(built.headers, built.body, profile=_profile(parties), envelope=envelope,
                        now=when or now())  # fmt: skip


def test_opened_message_carries_its_signed_positive_receipt(parties: Parties) -> None:
    built = core_message(parties, XML)
    envelope = read_envelope(built.headers)
    opened = open_message(built.headers, built.body, profile=_profile(parties),
                          envelope=envelope, now=now())  # fmt: skip
    assert bytes(opened.received.payload) == XML
    assert (opened.interface_code, opened.file_name) == ("CSO1100A", "CSO1100A_42.xml")
    assert opened.receipt is not None
    mdn = parse_mdn(dict(opened.receipt.headers), opened.receipt.body,
                    partner_certificates=[parties.pa_qual.cert], expected_mic=built.mic,
                    expected_message_id=envelope.message_id, now=now())  # fmt: skip
    assert mdn.signed
    assert mdn.accepted
    assert mdn.disposition == Disposition()
    assert opened.receipt.disposition == Disposition().header_value()
    assert opened.receipt.original_message_id == envelope.message_id


def test_no_receipt_is_signed_when_none_was_asked(parties: Parties) -> None:
    assert _open(parties, core_message(parties, XML, mdn_mode=MdnMode.NONE)).receipt is None


@pytest.mark.parametrize(
    ("overrides", "modifier"),
    [
        ({"file_name": "../CSO1100A_1.xml"}, Modifier.UNEXPECTED_PROCESSING_ERROR),
        ({"file_name": None, "subject": "no code here"}, Modifier.UNEXPECTED_PROCESSING_ERROR),
        ({"encryption_certificate": None}, Modifier.INSUFFICIENT_MESSAGE_SECURITY),
    ],
)
def test_a_message_that_does_not_open_is_refused_before_any_receipt(
    parties: Parties, overrides: dict[str, object], modifier: Modifier
) -> None:
    with pytest.raises(As2Error) as refused:
        _open(parties, core_message(parties, XML, **overrides))
    assert refused.value.modifier is modifier


def test_a_signer_expired_at_receipt_time_is_refused(parties: Parties) -> None:
    with pytest.raises(As2Error) as refused:
        _open(parties, core_message(parties, XML), when=now() + dt.timedelta(days=3650 * 3))
    assert refused.value.modifier is Modifier.AUTHENTICATION_FAILED


def test_the_prepared_receipt_answers_a_new_acceptance_only(parties: Parties) -> None:
    receipt = _open(parties, core_message(parties, XML)).receipt
    assert receipt is not None
    new = Accepted("m1", "0" * 64, len(XML), duplicate=False)
    repeat = Accepted("m1", "0" * 64, len(XML), duplicate=True)
    refusal = refusal_of(As2Error(Modifier.UNEXPECTED_PROCESSING_ERROR, "no"))
    assert Verdict(accepted=new, receipt=receipt).prepared is receipt
    assert Verdict(accepted=repeat, receipt=receipt).prepared is None
    assert Verdict(refusal=refusal, receipt=receipt).prepared is None
    assert Verdict(accepted=new).prepared is None


@pytest.mark.interop
async def test_repeat_of_a_message_first_taken_without_receipt_gets_the_duplicate_warning(
    parties: Parties, tmp_path: Path
) -> None:
    """Nothing was remembered for the first copy: the repeat's MDN is built anew, and it says
    `duplicate-document` (the receipt prepared while opening it says `processed`: unsent)."""
    layout = Layout(tmp_path, parties)
    quiet, body = openssl_message(parties, XML, mdn=False)
    asking, again = openssl_message(parties, XML, msg_id=quiet["Message-ID"])
    async with running_gateway(write_config(layout)) as gw:
        status, _, text = await post(f"{layout.base_url}/as2", quiet, body)
        assert (status, text) == (200, b"processed")
        status, answer_headers, answer = await post(f"{layout.base_url}/as2", asking, again)
        assert status == 200, answer
        mdn = read_mdn(answer_headers, answer, parties)
        assert mdn.disposition.type is DispositionType.PROCESSED
        assert (mdn.disposition.modifier_kind, mdn.disposition.modifier_text) == (
            "warning",
            "duplicate-document",
        )
        assert mdn.mic is not None
        [message] = await gw.context.store.list_messages(connection=QUAL)
        kinds = [e.kind for e in await gw.context.store.events(message.id)]
        assert kinds == ["accepted", "duplicate", "as2.mdn_sent"]
