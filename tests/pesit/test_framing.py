"""NSDU framing and the pre-connection (pesit.md §2): prefixed, raw, and detected."""

from __future__ import annotations

import pytest

from protocols.pesit.diagnostics import DecodeError, Fault, PesitLocalError
from protocols.pesit.framing import (
    ACK0,
    NAK0,
    Framing,
    PreConnection,
    UnitReader,
    decode_preconnection,
    encode_preconnection,
    frame,
)

H = bytes.fromhex
# Hand-encoded EBCDIC: "PESIT   " "CXCLIENT" "test123 "
PRE = H("d7c5e2c9e3404040c3e7c3d3c9c5d5e3a385a2a3f1f2f340")
CONNECT = H("0011 4020 0001 0303434c49 060102 160102".replace(" ", ""))


def _feed_bytewise(reader: UnitReader, data: bytes) -> list[object]:
    """Feed one byte at a time, collecting whatever whole units come out."""
    out: list[object] = []
    for byte in data:
        reader.feed(bytes([byte]))
        while (unit := reader.next_opening()) is not None:
            out.append(unit)
    return out


# -- pre-connection -----------------------------------------------------------------------------


def test_preconnection_is_24_ebcdic_bytes() -> None:
    assert encode_preconnection("CXCLIENT", "test123") == PRE
    assert decode_preconnection(PRE) == PreConnection("CXCLIENT", "test123")


def test_answers_are_ebcdic() -> None:
    assert (H("c1c3d2f0"), H("d5c1d2f0")) == (ACK0, NAK0)


@pytest.mark.parametrize(
    ("caller", "password"), [("X" * 9, ""), ("", "p" * 9), ("é", ""), ("a\n", "")]
)
def test_preconnection_fields_must_fit(caller: str, password: str) -> None:
    with pytest.raises(PesitLocalError):
        encode_preconnection(caller, password)


@pytest.mark.parametrize(
    ("unit", "fault"),
    [
        (PRE[:23], Fault.LENGTH_MISMATCH),
        (PRE + b"@", Fault.LENGTH_MISMATCH),
        (b"\x40" * 24, Fault.BAD_FRAMING),
    ],
)
def test_broken_preconnection_raises_typed_errors(unit: bytes, fault: Fault) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_preconnection(unit)
    assert caught.value.fault is fault


# -- framing out ------------------------------------------------------------------------------


def test_frame_prefixes_or_not() -> None:
    assert frame(b"abc", Framing.PREFIXED) == b"\x00\x03abc"
    assert frame(b"abc", Framing.RAW) == b"abc"


def test_frame_refuses_undetected_or_oversize() -> None:
    with pytest.raises(PesitLocalError):
        frame(b"abc", Framing.AUTO)
    with pytest.raises(PesitLocalError):
        frame(b"x" * 65536, Framing.PREFIXED)


# -- server-side detection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "framing", "expected"),
    [
        (frame(CONNECT, Framing.PREFIXED), Framing.PREFIXED, (False, CONNECT)),
        (CONNECT, Framing.RAW, (False, CONNECT)),
        (frame(PRE, Framing.PREFIXED), Framing.PREFIXED, (True, PRE)),
        (PRE, Framing.RAW, (True, PRE)),
    ],
    ids=["prefixed-connect", "raw-connect", "prefixed-pre", "raw-pre"],
)
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
def test_first_unit_is_detected(
    stream: bytes, framing: Framing, expected: tuple[bool, bytes], bytewise: bool
) -> None:
    reader = UnitReader(Framing.AUTO)
    if bytewise:
        assert _feed_bytewise(reader, stream) == [expected]
    else:
        reader.feed(stream)
        assert reader.next_opening() == expected
    assert reader.framing is framing


def test_prefixed_preconnection_then_raw_connect_is_understood() -> None:
    reader = UnitReader(Framing.AUTO)
    reader.feed(frame(PRE, Framing.PREFIXED) + CONNECT)
    assert reader.next_opening() == (True, PRE)
    assert reader.next_opening() == (False, CONNECT)
    assert reader.framing is Framing.RAW


@pytest.mark.parametrize(
    "stream",
    [
        H("474554202f20485454"),  # an HTTP client knocking
        H("16030100c8010000c4"),  # a TLS ClientHello on the plain port
        H("0013c0020500000000"),  # a prefixed FPDU that is not a connection FPDU
    ],
)
def test_garbage_first_bytes_are_refused(stream: bytes) -> None:
    reader = UnitReader(Framing.AUTO)
    reader.feed(stream)
    with pytest.raises(DecodeError) as caught:
        reader.next_opening()
    assert caught.value.fault is Fault.BAD_FRAMING


def test_forced_framing_skips_detection_but_still_sees_a_preconnection() -> None:
    reader = UnitReader(Framing.PREFIXED)
    reader.feed(frame(PRE, Framing.PREFIXED)[:6])
    assert reader.next_opening() is None
    reader.feed(frame(PRE, Framing.PREFIXED)[6:])
    assert reader.next_opening() == (True, PRE)


def test_opening_waits_for_enough_bytes() -> None:
    reader = UnitReader(Framing.RAW)
    reader.feed(PRE[:10])
    assert reader.next_opening() is None
    reader.feed(PRE[10:])
    assert reader.next_opening() == (True, PRE)


# -- NSDUs and answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("framing", [Framing.PREFIXED, Framing.RAW])
def test_nsdus_come_out_whole_bytewise_and_leave_junk_waiting(framing: Framing) -> None:
    reader = UnitReader(framing)
    stream = frame(CONNECT, framing) * 2 + b"\x00"
    units: list[bytes] = []
    for byte in stream:
        reader.feed(bytes([byte]))
        while (unit := reader.next_nsdu()) is not None:
            units.append(unit)
    assert units == [CONNECT, CONNECT]
    assert reader.next_nsdu() is None  # one byte of junk: not a unit, kept until more comes


@pytest.mark.parametrize(
    ("framing", "stream"), [(Framing.PREFIXED, "0000"), (Framing.RAW, "0005c0")]
)
def test_impossible_unit_length_is_refused(framing: Framing, stream: str) -> None:
    reader = UnitReader(framing)
    reader.feed(H(stream))
    with pytest.raises(DecodeError) as caught:
        reader.next_nsdu()
    assert caught.value.fault is Fault.LENGTH_MISMATCH


@pytest.mark.parametrize(
    ("stream", "answer"),
    [(b"\x00\x04" + ACK0, ACK0), (ACK0, ACK0), (b"\x00\x04" + NAK0, NAK0), (NAK0, NAK0)],
)
def test_preconnection_answer_is_read_with_or_without_prefix(stream: bytes, answer: bytes) -> None:
    reader = UnitReader(Framing.PREFIXED)
    for byte in stream[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_answer() is None
    reader.feed(stream[-1:])
    assert reader.next_answer() == answer


def test_unknown_preconnection_answer_is_refused() -> None:
    reader = UnitReader(Framing.PREFIXED)
    reader.feed(b"OK\r\n")
    with pytest.raises(DecodeError):
        reader.next_answer()
