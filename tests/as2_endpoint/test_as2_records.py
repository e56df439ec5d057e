"""The pure pieces under the endpoint: answer tables, partner lookup, flow names, MDN records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.as2.algorithms import DigestAlgorithm
from protocols.as2.answers import (
    HTTP_STATUS,
    REFUSAL_MODIFIERS,
    disposition_labels,
    refusal_of,
    refusal_of_request,
    refusal_of_transfer,
)
from protocols.as2.errors import As2Error, As2LimitError, FailureModifier, Modifier
from protocols.as2.mdn import Disposition, DispositionType
from protocols.as2.mic import Mic
from protocols.as2.params import As2ReceiveParams, MdnParams
from protocols.as2.partners import PartnerProfile, Partners, interface_code_of
from protocols.as2.receipts import MdnOutcome, StoredMdn
from protocols.ports import RefusalKind, TransferRefused

MIC = Mic(b"\x01" * 32, DigestAlgorithm.SHA256)


def test_every_modifier_and_refusal_kind_has_an_answer() -> None:
    assert set(HTTP_STATUS) == set(Modifier)
    assert set(REFUSAL_MODIFIERS) == set(RefusalKind)
    for kind in RefusalKind:
        refusal = refusal_of_transfer(TransferRefused(kind, "because"))
        assert refusal.disposition.error_modifier is Modifier.UNEXPECTED_PROCESSING_ERROR
        assert refusal.kind == kind.value
        assert refusal.reason.endswith("because")
        assert refusal.retry is (kind is RefusalKind.UNAVAILABLE)
    assert refusal_of_transfer(TransferRefused(RefusalKind.TOO_LARGE, "x")).status == 413
    assert refusal_of_transfer(TransferRefused(RefusalKind.UNAVAILABLE, "x")).status == 503


def test_core_errors_keep_their_modifier_and_caps_are_413() -> None:
    refusal = refusal_of(As2Error(Modifier.DECRYPTION_FAILED, "bad key"))
    assert (refusal.status, refusal.kind, refusal.modifier) == (
        400,
        "decryption-failed",
        "decryption-failed",
    )
    limit = refusal_of(As2LimitError(Modifier.DECOMPRESSION_FAILED, "bomb"))
    assert limit.status == 413
    failed = refusal_of_request(FailureModifier.UNSUPPORTED_FORMAT)
    assert failed.disposition.type is DispositionType.FAILED


@pytest.mark.parametrize(
    ("disposition", "labels"),
    [
        (Disposition(), ("processed", "none")),
        (Disposition.warning("duplicate-document"), ("processed/warning", "warning")),
        (Disposition.error(Modifier.AUTHENTICATION_FAILED),
         ("processed/error", "authentication-failed")),
        (Disposition.parse("a/b; processed/Error: Unexpected-Processing-Error"),
         ("processed/error", "unexpected-processing-error")),
        (Disposition.parse("a/b; processed/error: whatever the peer says"),
         ("processed/error", "other")),
        (Disposition.parse("a/b; processed/garbage"), ("processed/error", "other")),
        (Disposition.parse("a/b; processed/failure: x"), ("processed/error", "other")),
        (Disposition.failure(FailureModifier.UNSUPPORTED_MIC_ALGORITHMS),
         ("failed/failure", "unsupported mic-algorithms")),
        (Disposition.parse("a/b; failed/failure: anything"), ("failed/failure", "other")),
        (Disposition.parse("a/b; failed"), ("failed/failure", "none")),
    ],
)  # fmt: skip
def test_disposition_labels_are_bounded(disposition: Disposition, labels: tuple[str, str]) -> None:
    assert disposition_labels(disposition) == labels


def _profile(name: str, partner: str, ours: str) -> PartnerProfile:
    return PartnerProfile(
        connection=name,
        receive=As2ReceiveParams(as2_from=partner, as2_to=ours),
        mdn=MdnParams(as2_from=ours, as2_to=partner),
        max_body_size=1000,
    )


def test_partners_by_name_pair_case_sensitive_and_ambiguity_refused() -> None:
    partners = Partners([
        _profile("qual", "AIFE-QUAL", "PA-1"),
        _profile("prod", "AIFE-PROD", "PA-1"),
        _profile("twin-a", "AIFE-QUAL", "PA-2"),
        _profile("twin-b", "AIFE-QUAL", "PA-2"),
        _profile("twin-c", "AIFE-QUAL", "PA-2"),
    ])  # fmt: skip
    assert partners.find("AIFE-QUAL", "PA-1").connection == "qual"
    assert partners.find("AIFE-PROD", "PA-1").connection == "prod"
    assert len(partners) == 2
    assert {p.connection for p in partners} == {"qual", "prod"}
    assert partners.ambiguous == {("AIFE-QUAL", "PA-2"): ("twin-a", "twin-b", "twin-c")}
    assert partners.by_connection("prod") is not None
    assert partners.by_connection("x") is None
    for pair in [("aife-qual", "PA-1"), ("AIFE-QUAL", "PA-2"), ("AIFE-QUAL", "PA-9")]:
        with pytest.raises(As2Error) as caught:
            partners.find(*pair)
        assert caught.value.modifier is Modifier.UNKNOWN_TRADING_PARTNER
    with pytest.raises(As2Error, match="several connections"):
        partners.find("AIFE-QUAL", "PA-2")


@pytest.mark.parametrize(
    ("file_name", "subject", "expected"),
    [
        ("CSO1100A_42.xml", None, ("CSO1100A", "CSO1100A_42.xml")),
        ("FEN1200A_2026-01.x_y.xml", "ignored", ("FEN1200A", "FEN1200A_2026-01.x_y.xml")),
        (None, "  FEN1200A_9.xml ", ("FEN1200A", "FEN1200A_9.xml")),
    ],
)
def test_interface_code_from_file_name_then_subject(
    file_name: str | None, subject: str | None, expected: tuple[str, str]
) -> None:
    assert interface_code_of(file_name, subject) == expected


@pytest.mark.parametrize(
    ("file_name", "subject"),
    [("x.xml", "CSO1100A_1.xml"), ("../CSO1100A_1.xml", None), ("CSO1100A_a/b", None),
     (None, None), (None, "AS2 message"), ("CSO1100A_" + "a" * 300, None), ("CSO1100A_.x", None)],
)  # fmt: skip
def test_anything_else_is_refused(file_name: str | None, subject: str | None) -> None:
    with pytest.raises(As2Error) as caught:
        interface_code_of(file_name, subject)
    assert caught.value.modifier is Modifier.UNEXPECTED_PROCESSING_ERROR


def test_stored_mdn_round_trips_and_refuses_anything_else() -> None:
    stored = StoredMdn("<a@b>", (("Content-Type", "multipart/report"), ("X", "y")), b"\x00\r\n",
                       "automatic-action/MDN-sent-automatically; processed")  # fmt: skip
    assert StoredMdn.from_detail(stored.to_detail()) == stored
    good = stored.to_detail()
    for broken in [{**good, "headers": [["a"]]}, {**good, "headers": "x"},
                   {**good, "body": "!!"}, {**good, "original_message_id": 3}, {}]:  # fmt: skip
        assert StoredMdn.from_detail(broken) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip
detail_keys = st.sampled_from(
    ["original_message_id", "disposition", "headers", "body", "mic", "signed", "mdn_message_id"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(detail_keys, json_values, max_size=7))
def test_records_from_hostile_details_never_crash(detail: dict[str, object]) -> None:
    StoredMdn.from_detail(detail)
    MdnOutcome.from_detail(detail)


def _outcome(
    disposition: str = "a/b; processed", mic: str | None = None, signed: bool = True
) -> MdnOutcome:
    return MdnOutcome("<m@x>", disposition, mic if mic is not None else MIC.header_value(), signed)


def test_mdn_outcome_verdicts() -> None:
    assert MdnOutcome.from_detail(_outcome().to_detail()) == _outcome()
    assert _outcome().verdict(expected_mic=MIC, signature_required=True) is None
    assert _outcome().verdict(expected_mic=None, signature_required=True) is None
    assert _outcome(disposition="a/b; processed/warning: dup").verdict(
        expected_mic=MIC, signature_required=True) is None  # fmt: skip
    cases = {
        "not signed": _outcome(signed=False),
        "negative MDN": _outcome(disposition="a/b; processed/error: decryption-failed"),
        "unreadable disposition": _outcome(disposition="processed"),
        "no Received-Content-MIC": MdnOutcome("<m@x>", "a/b; processed", None, True),
        "unreadable MIC": _outcome(mic="???, sha-256"),
        "MIC mismatch": _outcome(mic=Mic(b"\x02" * 32, DigestAlgorithm.SHA256).header_value()),
    }
    for words, outcome in cases.items():
        reason = outcome.verdict(expected_mic=MIC, signature_required=True)
        assert reason is not None, words
        assert words in reason, (words, reason)
    assert _outcome(signed=False).verdict(expected_mic=MIC, signature_required=False) is None
    assert MdnOutcome.from_detail({"original_message_id": "<a@b>", "disposition": "x",
                                   "mic": 3, "signed": True}) is None  # fmt: skip
