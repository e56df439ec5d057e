"""The zero-copy BER/DER reader: hostile encodings first, then the shapes CMS senders use."""

from __future__ import annotations

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.as2 import der
from protocols.as2.der import DerError

SAMPLE = core.Sequence.load(
    core.Sequence(
        contents=core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()
        + core.OctetString(b"x" * 300).dump()
        + core.Integer(-129).dump()
    ).dump()
).dump()


def _walk(tlv: der.Tlv) -> int:
    """Visit every node (like a CMS parser would); returns the count."""
    if not tlv.constructed:
        return 1
    return 1 + sum(_walk(child) for child in tlv.children())


def test_truncation_at_every_offset_is_a_der_error() -> None:
    for cut in range(len(SAMPLE)):
        with pytest.raises(DerError):
            _walk(der.read_single(SAMPLE[:cut], "sample"))


def test_length_claiming_more_than_the_data_is_refused() -> None:
    with pytest.raises(DerError, match="truncated"):
        der.read(memoryview(b"\x04\x88\xff\xff\xff\xff\xff\xff\xff\xff" + b"x"))


def test_length_field_over_eight_octets_is_refused() -> None:
    with pytest.raises(DerError, match="too long"):
        der.read(memoryview(b"\x04\x89" + b"\x00" * 9))


def test_indefinite_length_on_primitive_is_refused() -> None:
    with pytest.raises(DerError, match="primitive"):
        der.read(memoryview(b"\x04\x80abc\x00\x00"))


def test_indefinite_length_without_end_of_contents_is_refused() -> None:
    with pytest.raises(DerError, match="end-of-contents"):
        der.read(memoryview(b"\x30\x80\x04\x01a"))


def test_nesting_bomb_stops_before_recursion_error() -> None:
    bomb = b"\x30\x80" * 5000 + b"\x00\x00" * 5000
    with pytest.raises(DerError, match="nesting too deep"):
        der.read(memoryview(bomb))


def test_huge_tag_number_is_refused() -> None:
    with pytest.raises(DerError, match="tag number"):
        der.read(memoryview(b"\x1f" + b"\xff" * 8 + b"\x01\x00"))


def test_trailing_garbage_refused_but_trailing_line_break_tolerated() -> None:
    der.read_single(SAMPLE + b"\r\n", "sample")
    with pytest.raises(DerError, match="trailing"):
        der.read_single(SAMPLE + b"junk", "sample")


def test_indefinite_constructed_octet_string_yields_its_chunks() -> None:
    chunked = b"\x24\x80" + b"\x04\x03abc" + b"\x24\x80\x04\x02de\x00\x00" + b"\x00\x00"
    tlv = der.read_single(chunked, "octets")
    assert b"".join(bytes(c) for c in tlv.octets()) == b"abcde"
    assert tlv.end == len(chunked)


def test_octet_chunk_of_the_wrong_type_is_refused() -> None:
    tlv = der.read_single(b"\x24\x05\x02\x03abc", "octets")
    with pytest.raises(DerError, match="octet string chunk"):
        list(tlv.octets())


def test_bodies_are_views_not_copies() -> None:
    tlv = der.read_single(SAMPLE, "sample")
    octets = list(tlv.children())[1]
    assert isinstance(octets.body, memoryview)
    assert octets.body.obj is tlv.data.obj


@pytest.mark.parametrize("bad", [b"\x06\x00", b"\x06\x01\x81", b"\x26\x01\x01"])
def test_malformed_object_identifiers_are_refused(bad: bytes) -> None:
    with pytest.raises(DerError):
        der.read_single(bad, "oid").as_oid()


@pytest.mark.parametrize("bad", [b"\x02\x00", b"\x22\x00", b"\x02\x41" + b"\x01" * 65])
def test_malformed_integers_are_refused(bad: bytes) -> None:
    with pytest.raises(DerError):
        der.read_single(bad, "int").as_int()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2**64), min_size=1, max_size=8).map(
        lambda arcs: [1, 2, *arcs]
    )
)
def test_oid_encoding_round_trips_and_matches_asn1crypto(arcs: list[int]) -> None:
    dotted = ".".join(map(str, arcs))
    encoded = der.encode_oid(dotted)
    assert encoded == core.ObjectIdentifier(dotted).dump()
    assert der.read_single(encoded, "oid").as_oid() == dotted


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_integer_encoding_matches_asn1crypto(value: int) -> None:
    encoded = der.encode_integer(value)
    assert encoded == core.Integer(value).dump()
    assert der.read_single(encoded, "int").as_int() == value


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=70000))
def test_wrap_and_read_round_trip_any_length(body: bytes) -> None:
    encoded = b"".join(der.wrap(0x04, [body]))
    assert encoded == core.OctetString(body).dump()
    assert bytes(der.read_single(encoded, "octets").body) == body


def test_shape_errors_are_der_errors() -> None:
    primitive = der.read_single(b"\x04\x01a", "octets")
    with pytest.raises(DerError, match="constructed"):
        list(primitive.children())
    with pytest.raises(DerError, match="at least 2"):
        der.read_single(b"\x30\x03\x04\x01a", "seq").child_list("seq", minimum=2)
    with pytest.raises(DerError, match="unexpected tag"):
        primitive.expect(der.UNIVERSAL, 16, "sequence")


def test_high_tag_numbers() -> None:
    tlv = der.read_single(b"\x9f\x81\x00\x01z", "high tag")
    assert (tlv.tag_class, tlv.number, bytes(tlv.body)) == (der.CONTEXT, 128, b"z")
    with pytest.raises(DerError, match="tag number"):
        der.read(memoryview(b"\x9f\x81"))


@pytest.mark.parametrize("value", [-129, -128, -1, 0, 127, 128, 255, 256])
def test_integer_encoding_edges(value: int) -> None:
    assert der.encode_integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("oid", der.COMMON_OIDS)
def test_common_oids_read_as_asn1crypto_reads_them(oid: str) -> None:
    """The lookup table of frequent OIDs says what decoding says."""
    encoded = core.ObjectIdentifier(oid).dump()
    assert der.encode_oid(oid) == encoded
    assert der.read_single(encoded, "oid").as_oid() == oid
    longer = core.ObjectIdentifier(oid + ".1").dump()  # not in the table: decoded
    assert der.read_single(longer, "oid").as_oid() == oid + ".1"
