"""The data-phase fast paths give exactly what the general code gives, without the copies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pesit.diagnostics import DecodeError
from protocols.pesit.fpdu import Fpdu, FpduType, decode_fpdu, encode_fpdu, encode_parts
from protocols.pesit.framing import Framing, UnitReader, frame
from protocols.pesit.output import LARGE, Output
from protocols.pesit.pi import PI, Params, decode_params
from tests.pesit.harness import FILE, NOW, connected_pair, fpdus_of

F = FpduType


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=8),
    st.lists(st.integers(1, 4000), max_size=12),
)
def test_units_cut_anywhere_come_out_whole_and_in_order(
    units: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(unit, Framing.PREFIXED) for unit in units)
    reader, out, start = UnitReader(Framing.PREFIXED), [], 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        reader.feed(stream[start:cut])
        start = max(start, cut)
        while (view := reader.next_view()) is not None:
            out.append(bytes(view))
    assert out == units


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(min_size=6, max_size=3000), min_size=1, max_size=8),
    st.lists(st.integers(1, 4000), max_size=12),
    st.sampled_from([Framing.PREFIXED, Framing.RAW]),
)
def test_next_views_gives_what_next_view_gives_one_at_a_time(
    bodies: list[bytes], cuts: list[int], framing: Framing
) -> None:
    units = [len(b).to_bytes(2, "big") + b[2:] for b in bodies]  # raw: the FPDU length leads
    stream = b"".join(frame(unit, framing) for unit in units)
    one, many = UnitReader(framing), UnitReader(framing)
    singly: list[bytes] = []
    batched: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        one.feed(stream[start:cut])
        many.feed(stream[start:cut])
        start = max(start, cut)
        while (view := one.next_view()) is not None:
            singly.append(bytes(view))
        batched.extend(bytes(view) for view in many.next_views())
    assert singly == batched == units


@pytest.mark.parametrize(
    ("framing", "stream"),
    [(Framing.PREFIXED, b"\x00\x00rest"), (Framing.RAW, b"\x00\x05\x00\x00\x01")],
    ids=["prefixed-zero", "raw-below-header"],
)
def test_next_views_refuses_a_length_no_unit_can_have(framing: Framing, stream: bytes) -> None:
    reader = UnitReader(framing)
    reader.feed(stream)
    with pytest.raises(DecodeError):
        reader.next_views()


def test_a_unit_inside_one_received_chunk_is_not_copied() -> None:
    chunk = frame(b"x" * 100, Framing.PREFIXED) + frame(b"y" * 50, Framing.PREFIXED)
    reader = UnitReader(Framing.PREFIXED)
    reader.feed(chunk)
    first, second = reader.next_view(), reader.next_view()
    assert first is not None
    assert second is not None
    assert first.obj is chunk  # a view of what was received
    assert (bytes(first), bytes(second)) == (b"x" * 100, b"y" * 50)
    assert reader.next_view() is None


def test_a_fed_bytearray_is_copied_so_the_caller_may_reuse_it() -> None:
    buffer = bytearray(frame(b"abc", Framing.PREFIXED))
    reader = UnitReader(Framing.PREFIXED)
    reader.feed(buffer)  # type: ignore[arg-type]  # a transport's buffer, typed loosely
    buffer[:] = b"\x00" * len(buffer)
    assert reader.next_nsdu() == b"abc"


@given(st.integers(0, (1 << 24) - 1), st.sampled_from([F.SYN, F.ACK_SYN]))
def test_sync_numbers_decode_as_the_general_parser_reads_them(number: int, kind: F) -> None:
    wire = encode_fpdu(Fpdu(kind, 7, params=Params.of((PI.SYNC_NUMBER, number))))
    decoded = decode_fpdu(wire)
    assert decoded.params == decode_params(wire[6:])
    assert repr(decoded.params) == repr(decode_params(wire[6:]))  # plain int codes
    assert decoded.params.require_number(PI.SYNC_NUMBER) == number


def test_a_fixed_width_sync_number_takes_the_general_parser() -> None:
    body = bytes([PI.SYNC_NUMBER, 4, 0, 0, 0, 9])  # N3 written on 4 bytes: read leniently
    wire = (6 + len(body)).to_bytes(2, "big") + bytes([0xC0, 0x03, 1, 0]) + body
    assert decode_fpdu(wire).params.require_number(PI.SYNC_NUMBER) == 9


def test_encoded_parts_join_to_the_encoding_and_keep_the_article() -> None:
    article = bytes(range(256)) * 100
    fpdu = Fpdu(F.DTF, 3, data=(article,))
    parts = encode_parts(fpdu)
    assert b"".join(parts) == encode_fpdu(fpdu)
    assert parts[1] is article


def test_output_packs_small_pieces_and_passes_large_ones_through() -> None:
    out, large = Output(), b"L" * LARGE
    for piece in (b"ab", b"", b"cd", large, b"ef"):
        out.add(piece)
    assert out
    chunks = out.take()
    assert chunks == [bytearray(b"abcd"), large, bytearray(b"ef")]
    assert chunks[1] is large
    assert not out
    assert out.take() == []


def test_data_to_send_joins_what_was_queued_once() -> None:
    pair = connected_pair()
    pair.requester.create(FILE, now=NOW)
    assert [fpdu.kind for fpdu in fpdus_of(pair.requester.data_to_send())] == [F.CREATE]
    assert pair.requester.data_to_send() == b""
