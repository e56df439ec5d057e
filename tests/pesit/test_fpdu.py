"""The FPDU codec: hostile bytes, the DTF family, concatenation, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pesit.diagnostics import DecodeError, Diagnostic, Fault, PesitLocalError
from protocols.pesit.fpdu import (
    CONCATENABLE,
    Fpdu,
    FpduType,
    decode_fpdu,
    decode_header,
    encode_fpdu,
    split_fpdus,
)
from protocols.pesit.pi import PI, Params
from tests.pesit.strategies import KINDS, fpdus

F = FpduType
H = bytes.fromhex
SYN = H("0009c0030500140101")
DTF = H("0008000005006162")
CRF = H("000bc01505000203000000")


# -- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "fault"),
    [
        ("", Fault.TRUNCATED),
        ("0006c0", Fault.TRUNCATED),
        ("0007c0020500", Fault.LENGTH_MISMATCH),  # says 7, is 6
        ("0006c0020500ff", Fault.LENGTH_MISMATCH),  # says 6, is 7 (trailing junk)
        ("0006c0ff0500", Fault.UNKNOWN_TYPE),
        ("000680020500", Fault.UNKNOWN_TYPE),  # unknown phase
        ("000640030500", Fault.UNKNOWN_TYPE),  # type of another phase
        ("0008c00305001400", Fault.ZERO_LENGTH),
        ("0009c00305001402", Fault.LENGTH_MISMATCH),
        ("000a000005020003", Fault.LENGTH_MISMATCH),
        ("000a00000502000361", Fault.LENGTH_MISMATCH),
        ("000c0000050200016100", Fault.LENGTH_MISMATCH),
    ],
)
def test_malformed_fpdus_raise_typed_errors(wire: str, fault: Fault) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_fpdu(H(wire))
    assert caught.value.fault is fault
    assert caught.value.diagnostic in {Diagnostic.PROTOCOL_ERROR, Diagnostic.PARAMETER_ERROR}


def test_multi_article_dtf_whose_articles_overrun_is_truncated() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_fpdu(H("000b 0000 05 02 0005 616263".replace(" ", "")))
    assert caught.value.fault is Fault.TRUNCATED


def test_multi_article_dtf_with_bytes_left_over_is_a_length_mismatch() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_fpdu(H("000d 0000 05 02 0001 61 0001 62 63".replace(" ", "")))
    assert caught.value.fault is Fault.LENGTH_MISMATCH


def test_header_alone_is_enough_to_know_the_type() -> None:
    header = decode_header(H("0006 0000 e2 03".replace(" ", "")))
    assert (header.kind, header.dst, header.src, header.length) == (F.DTF, 0xE2, 3, 6)


def test_dtf_with_count_one_reads_one_prefixed_article() -> None:
    assert decode_fpdu(H("000b 0000 05 01 0003 616263".replace(" ", ""))).data == (b"abc",)


def test_empty_dtf_is_one_empty_article() -> None:
    assert decode_fpdu(H("000600000500")).data == (b"",)


# -- concatenation -----------------------------------------------------------------------------


def test_dtf_family_and_syn_may_share_an_nsdu() -> None:
    kinds = [fpdu.kind for fpdu in split_fpdus(DTF + SYN + DTF)]
    assert kinds == [F.DTF, F.SYN, F.DTF]


def test_other_fpdus_may_not_share_an_nsdu() -> None:
    with pytest.raises(DecodeError) as caught:
        split_fpdus(DTF + CRF)
    assert caught.value.fault is Fault.BAD_CONCATENATION
    assert F.CRF not in CONCATENABLE


@pytest.mark.parametrize(
    ("wire", "fault"),
    [
        ("", Fault.TRUNCATED),
        ("00", Fault.TRUNCATED),
        ("0003c00305", Fault.LENGTH_MISMATCH),
        ("0009c003050014", Fault.TRUNCATED),
    ],
)
def test_broken_nsdus_raise_typed_errors(wire: str, fault: Fault) -> None:
    with pytest.raises(DecodeError) as caught:
        split_fpdus(H(wire))
    assert caught.value.fault is fault


def test_trailing_junk_after_an_fpdu_in_an_nsdu_is_refused() -> None:
    with pytest.raises(DecodeError):
        split_fpdus(SYN + b"\x00")


# -- strict writing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fpdu",
    [
        Fpdu(F.CRF, 5, data=(b"x",)),
        Fpdu(F.DTF, 5, params=Params.of((PI.VERSION, 2)), data=(b"x",)),
        Fpdu(F.DTF, 5, 3, data=(b"x",)),
        Fpdu(F.DTF, 5),
        Fpdu(F.DTF, 5, data=(b"x",) * 256),
        Fpdu(F.DTF, 5, data=(b"x" * 65536, b"y")),
        Fpdu(F.DTFDA, 5, data=(b"x", b"y")),
        Fpdu(F.DTFMA, 5),
        Fpdu(F.DTFFA, 5, data=(b"x" * 65530,)),
        Fpdu(F.CRF, 256),
        Fpdu(F.RELEASE, 5, -1),
    ],
)
def test_encoder_refuses_what_an_fpdu_cannot_be(fpdu: Fpdu) -> None:
    with pytest.raises(PesitLocalError):
        encode_fpdu(fpdu)


def test_single_article_dtf_is_written_without_a_count() -> None:
    assert encode_fpdu(Fpdu(F.DTF, 5, data=(b"ab",))) == DTF


def test_largest_single_article_fits_exactly() -> None:
    article = b"x" * (0xFFFF - 6)
    assert decode_fpdu(encode_fpdu(Fpdu(F.DTF, 5, data=(article,)))).data == (article,)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
@settings(max_examples=30)
@given(data=st.data())
def test_decode_of_encode_is_identity_for_every_type(kind: FpduType, data: st.DataObject) -> None:
    fpdu = data.draw(fpdus(kind))
    assert fpdu.kind is kind
    assert decode_fpdu(encode_fpdu(fpdu)) == fpdu


@settings(max_examples=300)
@given(fpdus())
def test_decode_of_encode_is_identity(fpdu: Fpdu) -> None:
    wire = encode_fpdu(fpdu)
    assert decode_fpdu(wire) == fpdu
    assert split_fpdus(wire) == [fpdu]
    assert int.from_bytes(wire[:2], "big") == len(wire)
