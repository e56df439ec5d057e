"""Parameter units: hostile bytes first, then the lenient reading and the strict writing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from protocols.pesit.diagnostics import (
    DecodeError,
    Diagnostic,
    DiagnosticCode,
    Fault,
    PesitLocalError,
)
from protocols.pesit.pi import (
    PI,
    Cursor,
    Kind,
    Params,
    SyncPoints,
    decode_params,
    encode_params,
    spec_of,
)
from tests.pesit.strategies import params

H = bytes.fromhex


# -- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "fault"),
    [
        ("03", Fault.TRUNCATED),  # code with no LI
        ("0305414243", Fault.TRUNCATED),  # LI says 5, 3 bytes follow
        ("63ff01", Fault.TRUNCATED),  # long LI cut in half
        ("63ff012c41", Fault.TRUNCATED),  # long LI says 300, 1 byte follows
        ("0300", Fault.ZERO_LENGTH),  # LI = 0 on a plain PI
        ("0800", Fault.ZERO_LENGTH),  # LI = 0 on an unknown PI too
        ("63ff0000", Fault.ZERO_LENGTH),  # LI = 0 in long form
        ("060102060102", Fault.DUPLICATE),  # same PI twice
        ("020200cd", Fault.BAD_VALUE),  # PI 2 of 2 bytes
        ("07020020", Fault.BAD_VALUE),  # PI 7 of 2 bytes
        ("150100", Fault.BAD_VALUE),  # PI 21 of 1 byte
        ("1903010000", Fault.BAD_VALUE),  # PI 25 (N 2) holding 65536
        ("0d0401000000", Fault.BAD_VALUE),  # PI 13 (N 3) holding 2**24
        ("0903090100", Fault.BAD_VALUE),  # PGI nested in a PGI
    ],
)
def test_malformed_units_raise_typed_errors(wire: str, fault: Fault) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_params(H(wire))
    assert caught.value.fault is fault
    assert caught.value.diagnostic in {Diagnostic.PROTOCOL_ERROR, Diagnostic.PARAMETER_ERROR}


def test_cursor_reports_what_it_was_reading() -> None:
    cursor = Cursor(b"\x01")
    assert cursor.byte("first") == 1
    with pytest.raises(DecodeError, match="article length: 2 bytes needed, 0 left"):
        cursor.uint16("article length")


def test_getter_of_the_wrong_kind_is_a_parameter_error() -> None:
    decoded = decode_params(H("0c024631"))  # PI 12 is text
    with pytest.raises(DecodeError) as caught:
        decoded.number(PI.FILE_NAME)
    assert caught.value.fault is Fault.BAD_VALUE


def test_missing_mandatory_pi_is_318() -> None:
    with pytest.raises(DecodeError) as caught:
        Params().require_number(PI.SYNC_NUMBER)
    assert caught.value.diagnostic is Diagnostic.PARAMETER_ERROR
    assert caught.value.fault is Fault.MISSING


# -- lenient reading -------------------------------------------------------------------------


def test_fixed_width_integers_read_like_minimal_ones() -> None:
    assert decode_params(H("0d030024c9")).number(PI.TRANSFER_ID) == 0x24C9
    assert decode_params(H("0d0224c9")).number(PI.TRANSFER_ID) == 0x24C9
    assert decode_params(H("0d0400000001")).number(PI.TRANSFER_ID) == 1


def test_unknown_pis_are_kept_raw_in_the_order_met() -> None:
    decoded = decode_params(H("630268691a02010206010208014e"))
    assert decoded.units == (
        (PI.FREE_MESSAGE, "hi"),
        (26, H("0102")),
        (PI.VERSION, 2),
        (8, b"N"),
    )


def test_empty_pgi_is_read_as_an_empty_group() -> None:
    """Connect:Express's peer sends `09 00`, `1e 00`, `28 00`, `32 00` (see the recordings)."""
    decoded = decode_params(H("09001e00"))
    assert decoded.group(PI.FILE_ID) == Params()
    assert decoded.group(PI.LOGICAL_ATTRIBUTES).number(PI.ARTICLE_LENGTH) is None


def test_long_li_form_is_read_even_for_short_values() -> None:
    assert decode_params(H("63ff00026869")).text(PI.FREE_MESSAGE) == "hi"


def test_text_outside_ascii_is_read_not_rejected() -> None:
    assert decode_params(H("6302e9e8")).text(PI.FREE_MESSAGE) == "éè"


def test_absent_pi2_reads_as_success_and_absent_group_as_empty() -> None:
    assert Params().diagnostic() == Diagnostic.SUCCESS.code
    assert Params().group(PI.FILE_ID) == Params()
    assert Params().sync_points() is None
    assert Params().text(PI.FILE_NAME, "x") == "x"


# -- strict writing ----------------------------------------------------------------------------


def test_units_are_written_in_ascending_order_with_minimal_integers() -> None:
    given_order = Params.of((PI.MAX_ENTITY_SIZE, 4096), (PI.VERSION, 2), (PI.TRANSFER_ID, 0x24C9))
    assert encode_params(given_order) == H("0601020d0224c919021000")


def test_zero_is_written_on_one_byte() -> None:
    assert encode_params(Params.of((PI.RESTART_POINT, 0))) == H("120100")


def test_long_li_form_from_255_bytes() -> None:
    assert encode_params(Params.of((PI.FREE_MESSAGE, "x" * 254))) == H("63fe") + b"x" * 254
    raw = b"y" * 255
    assert encode_params(Params.of((200, raw))) == H("c8ff00ff") + raw


def test_of_skips_absent_values() -> None:
    assert Params.of((PI.VERSION, 2), (PI.RESTART, None)) == Params(((PI.VERSION, 2),))
    assert PI.VERSION in Params.of((PI.VERSION, 2))
    assert PI.RESTART not in Params.of((PI.VERSION, 2))


def test_empty_group_is_written_as_vendors_send_it() -> None:
    assert encode_params(Params.of((PI.FILE_ID, Params()))) == H("0900")


@pytest.mark.parametrize(
    ("units", "reason"),
    [
        (((PI.VERSION, 2), (PI.VERSION, 2)), "repeated"),
        (((PI.FILE_NAME, "é"),), "ASCII"),
        (((PI.REQUESTER_ID, "x" * 25),), "over 24"),
        (((PI.FILE_NAME, ""),), "LI = 0"),
        (((PI.MAX_ENTITY_SIZE, 65536),), "exceeds N2"),
        (((PI.MAX_ENTITY_SIZE, -1),), "exceeds N2"),
        (((PI.VERSION, "2"),), "takes int"),
        (((PI.VERSION, True),), "takes int"),
        (((PI.DIAGNOSTIC, 0),), "takes DiagnosticCode"),
        (((PI.COMPRESSION, b"\x00"),), "must be 2 bytes"),
        (((PI.CREATION_DATE, "2601190125"),), "YYMMDDhhmmss"),
        (((PI.CREATION_DATE, "26011901250x"),), "YYMMDDhhmmss"),
        (((PI.SYNC_POINTS, SyncPoints(65536, 0)),), "PI 7 out of range"),
        (((PI.SYNC_POINTS, SyncPoints(1, 256)),), "PI 7 out of range"),
        (((PI.FILE_ID, Params.of((PI.LOGICAL_ATTRIBUTES, Params()))),), "PGI 30 inside"),
        (((256, b"x"),), "not a byte"),
        (((200, b"x" * 65536),), "longer than 65535"),
        (((200, b""),), "LI = 0"),
    ],
)
def test_writer_refuses_what_pesit_cannot_carry(
    units: tuple[tuple[int, object], ...], reason: str
) -> None:
    with pytest.raises(PesitLocalError, match=reason):
        encode_params(Params(units))  # type: ignore[arg-type]


def test_diagnostic_and_sync_values_round_trip() -> None:
    written = Params.of(
        (PI.DIAGNOSTIC, DiagnosticCode(2, 205)), (PI.SYNC_POINTS, SyncPoints(32, 2))
    )
    assert encode_params(written) == H("02030200cd0703002002")
    assert decode_params(encode_params(written)) == written


def test_every_pi_of_the_table_has_a_rule() -> None:
    for code in PI:
        spec = spec_of(code)
        assert spec is not None
        assert spec.kind is not Kind.GROUP or code in {9, 30, 40, 50}


@settings(max_examples=400)
@given(params())
def test_decode_of_encode_is_identity(value: Params) -> None:
    assert decode_params(encode_params(value)) == value
