"""The data phase's fast paths are the general path, only cheaper: same bytes, same events.

Hostile first: plain-looking units that are not (wrong id, lying length, a SYN number on four
bytes, a byte 6 that is not 0) must reach the general path, which refuses them as before.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.pesit import connection
from protocols.pesit.connection import PesitConnection
from protocols.pesit.datapath import (
    FAST_STATES,
    FastStates,
    data_head,
    dtf_articles,
    plain_unit,
    sync_number,
    sync_unit,
)
from protocols.pesit.diagnostics import DecodeError, Diagnostic
from protocols.pesit.fpdu import (
    DATA_FAMILY,
    Fpdu,
    FpduType,
    decode_fpdu,
    encode_fpdu,
    encode_parts,
    split_fpdus,
)
from protocols.pesit.framing import Framing, frame, prefix
from protocols.pesit.pi import PI, Params
from protocols.pesit.state import Direction, Role, State, keeps_state
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, fpdus_of, payload
from tests.pesit.reach import opened, writing
from tests.pesit.runs import run_pull, run_push

F = FpduType
FRAMINGS = [Framing.PREFIXED, Framing.RAW]


def _sync(kind: FpduType, number: int, dst: int = 1) -> Fpdu:
    return Fpdu(kind, dst, params=Params.of((PI.SYNC_NUMBER, number)))


# -- encoding --------------------------------------------------------------------------------


@settings(max_examples=200)
@given(size=st.integers(0, 65529), dst=st.integers(0, 255), framing=st.sampled_from(FRAMINGS))
def test_data_head_is_what_encode_parts_puts_before_the_article(
    size: int, dst: int, framing: Framing
) -> None:
    article = b"a" * size
    parts = encode_parts(Fpdu(F.DTF, dst, data=(article,)))
    expected = prefix(sum(map(len, parts)), framing) + parts[0]
    assert data_head(size, dst, prefixed=framing is Framing.PREFIXED) == expected


@settings(max_examples=300)
@given(
    number=st.integers(0, (1 << 24) - 1),
    kind=st.sampled_from([F.SYN, F.ACK_SYN]),
    dst=st.integers(0, 255),
    framing=st.sampled_from(FRAMINGS),
)
def test_sync_unit_is_the_encoded_fpdu(
    number: int, kind: FpduType, dst: int, framing: Framing
) -> None:
    expected = frame(encode_fpdu(_sync(kind, number, dst)), framing)
    assert sync_unit(kind, dst, number, prefixed=framing is Framing.PREFIXED) == expected


@pytest.mark.parametrize("number", [-1, 1 << 24, 1 << 40])
def test_sync_number_outside_pi_20_is_left_to_the_general_path(number: int) -> None:
    assert sync_unit(F.SYN, 1, number, prefixed=True) is None


# -- reading ---------------------------------------------------------------------------------


@given(article=st.binary(max_size=3000), dst=st.integers(1, 255))
def test_a_one_article_dtf_is_plain(article: bytes, dst: int) -> None:
    wire = encode_fpdu(Fpdu(F.DTF, dst, data=(article,)))
    assert plain_unit(wire, dst) == (F.DTF, 0)
    assert dtf_articles(wire, 0) == [article]


@given(st.lists(st.binary(max_size=300), min_size=2, max_size=20))
def test_a_multi_article_dtf_reads_as_the_general_decoder_reads_it(articles: list[bytes]) -> None:
    wire = encode_fpdu(Fpdu(F.DTF, 1, data=tuple(articles)))
    assert plain_unit(wire, 1) == (F.DTF, len(articles))
    assert dtf_articles(wire, len(articles)) == list(decode_fpdu(wire).data)


@pytest.mark.parametrize(
    "body",
    [b"\x00\x02ab\x00", b"\x00\x05ab\x00\x01c", b"\x00\x01a\x00\x01bEXTRA", b"\x00"],
    ids=["prefix-cut", "article-overruns", "bytes-after", "one-byte"],
)
def test_a_multi_article_body_that_lies_goes_the_general_way(body: bytes) -> None:
    wire = _wire(F.DTF, body, sixth=2)
    assert plain_unit(wire, 1) == (F.DTF, 2)
    assert dtf_articles(wire, 2) is None
    with pytest.raises(DecodeError):
        decode_fpdu(wire)  # which says what is wrong


@given(number=st.integers(0, (1 << 24) - 1), kind=st.sampled_from([F.SYN, F.ACK_SYN]))
def test_a_plain_sync_reads_as_the_general_decoder_reads_it(number: int, kind: FpduType) -> None:
    wire = encode_fpdu(_sync(kind, number))
    assert plain_unit(wire, 1) == (kind, number)
    assert sync_number(wire) == number


def _wire(kind: FpduType, body: bytes, *, dst: int = 1, sixth: int = 0) -> bytes:
    phase, type_byte = kind.value
    return bytes([0, 6 + len(body), phase, type_byte, dst, sixth]) + body


@pytest.mark.parametrize(
    "unit",
    [
        encode_fpdu(Fpdu(F.DTF, 2, data=(b"x",))),  # another connection id
        _wire(F.DTF, b"\x00\x01a", sixth=1),  # a count of one (we write 0): general way
        encode_fpdu(Fpdu(F.DTFDA, 1, data=(b"x",))),  # a segment
        _wire(F.SYN, bytes([20, 4, 0, 0, 0, 9])),  # PI 20 on four bytes
        _wire(F.SYN, bytes([20, 1, 9, 99, 1, 0])),  # PI 20, then PI 99
        _wire(F.SYN, bytes([21, 1, 9])),  # not PI 20
        _wire(F.ACK_SYN, bytes([20, 2, 9])),  # LI says 2, one byte follows
        _wire(F.SYN, bytes([20, 1, 9]), sixth=3),  # byte 6 set
        bytes([0, 99]) + encode_fpdu(Fpdu(F.DTF, 1, data=(b"x",)))[2:],  # length lies
        encode_fpdu(Fpdu(F.DTF_END, 1, params=Params.of((PI.DIAGNOSTIC, None))))[:6],
        b"\x00\x06\x00",  # shorter than a header
    ],
    ids=[
        "wrong-id", "count-of-one", "segment", "wide-number", "extra-pi", "other-pi",
        "short-li", "byte-6", "length-lies", "other-kind", "truncated",
    ],
)  # fmt: skip
def test_anything_but_the_plain_forms_goes_the_general_way(unit: bytes) -> None:
    assert plain_unit(unit, 1) is None


def test_fast_states_are_the_data_states_of_the_table() -> None:
    requester, server = FAST_STATES[Role.REQUESTER], FAST_STATES[Role.SERVER]
    assert requester.data_out == {State.TDE02A}
    assert requester.data_in == {State.TDL02A}
    assert requester.ack_in == {State.TDE02A, State.TDE07A, State.TDE08A}
    assert requester.ack_out == {State.TDL02A, State.TDL07A, State.TDL08A}
    assert server.data_in == {State.TDE02B}
    assert server.data_out == {State.TDL02B}
    assert server.ack_in == {State.TDL02B, State.TDL07B, State.TDL08B}
    assert server.ack_out == {State.TDE02B, State.TDE07B, State.TDE08B}
    assert keeps_state(Role.SERVER, Direction.SEND, [F.IDT]) == frozenset()  # IDT moves on


# -- a whole transfer, both ways ---------------------------------------------------------------


def _general_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cores built after this take the general path for every FPDU."""
    nothing: dict[Role, FastStates] = {}
    for role in Role:
        none = FastStates(role)
        none.data_in = none.data_out = none.ack_in = none.ack_out = frozenset()
        nothing[role] = none
    monkeypatch.setattr(connection, "FAST_STATES", nothing)


def _count_general_decoding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every unit the general decoder cuts from now on adds one entry."""
    seen: list[int] = []
    general = split_fpdus

    def counted(unit: bytes | memoryview) -> list[Fpdu]:
        seen.append(len(unit))
        return general(unit)

    monkeypatch.setattr(connection, "split_fpdus", counted)
    return seen


def _trace(pair: Pair) -> tuple[bytes, bytes, list[tuple[str, object]]]:
    return bytes(pair.wire["r"]), bytes(pair.wire["s"]), list(pair.log)


CASES = {
    "multi-article": (SETTINGS, 1024),
    "one-article": (replace(SETTINGS, article_size=4090), 4090),
    "segmented": (replace(SETTINGS, article_size=10_000), 10_000),
    "raw-framing": (replace(SETTINGS, article_size=4090, prefixed=False), 4090),
    "window-1": (replace(SETTINGS, article_size=4090, sync_window=1), 4090),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("chunk", [0, 5], ids=["whole", "5-byte-slices"])
def test_push_is_the_same_on_both_paths(
    case: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    core, article = CASES[case]
    data = payload(30_000)
    decoded = _count_general_decoding(monkeypatch)
    fast, app = run_push(data, settings=core, article_size=article, chunk=chunk)
    assert bytes(app.stores[FILE.transfer_id].data) == data
    on_fast_path = len(decoded)
    _general_only(monkeypatch)
    general, _ = run_push(data, settings=core, article_size=article, chunk=chunk)
    assert _trace(fast) == _trace(general)
    assert on_fast_path < len(decoded) - on_fast_path  # the fast run did skip the decoder


@pytest.mark.parametrize("case", ["multi-article", "raw-framing", "window-1"])
def test_pull_is_the_same_on_both_paths(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    core, _ = CASES[case]
    data = payload(30_000)
    fast, storage = run_pull(data, settings=core)
    assert bytes(storage.data) == data
    _general_only(monkeypatch)
    general, _ = run_pull(data, settings=core)
    assert _trace(fast) == _trace(general)


def test_data_family_all_keep_the_sending_state() -> None:
    """`encode_data` skips the table for segments and multi-article DTFs too: allowed there."""
    for role in Role:
        states = FAST_STATES[role].data_out
        assert states == keeps_state(role, Direction.SEND, [*DATA_FAMILY, F.SYN])


def _fed(conn: PesitConnection, *units: bytes) -> list[Fpdu]:
    """Deliver units as the peer would; return what the connection answered."""
    conn.data_to_send()
    while conn.next_event() is not None:
        pass
    for unit in units:
        conn.receive_data(frame(unit, Framing.PREFIXED), now=NOW)
    return fpdus_of(conn.data_to_send())


def _dtf(article: bytes = b"x" * 100, dst: int = 1) -> bytes:
    return encode_fpdu(Fpdu(F.DTF, dst, data=(article,)))


def _aborted(conn: PesitConnection, answer: list[Fpdu], diagnostic: Diagnostic) -> None:
    assert conn.state is State.CLOSED
    assert [fpdu.kind for fpdu in answer] == [F.ABORT]
    assert answer[0].params.diagnostic() == diagnostic.code


@pytest.mark.parametrize(
    ("units", "diagnostic"),
    [
        ([_dtf(dst=9)], Diagnostic.PROTOCOL_ERROR),
        ([encode_fpdu(_sync(F.SYN, 5))], Diagnostic.PROTOCOL_ERROR),
        (
            [encode_fpdu(Fpdu(F.DTFDA, 1, data=(b"ab",))), _dtf()],
            Diagnostic.PROTOCOL_ERROR,
        ),
        (
            [encode_fpdu(Fpdu(F.DTFDA, 1, data=(b"ab",))), encode_fpdu(_sync(F.SYN, 1))],
            Diagnostic.PROTOCOL_ERROR,
        ),
        ([encode_fpdu(_sync(F.ACK_SYN, 1))], Diagnostic.PROTOCOL_ERROR),
        (
            [_dtf(), *(encode_fpdu(_sync(F.SYN, n)) for n in (1, 2, 3))],
            Diagnostic.TOO_MANY_UNACKNOWLEDGED_SYNC,
        ),
    ],
    ids=[
        "dtf-for-another-id", "syn-out-of-order", "dtf-inside-segments", "syn-inside-segments",
        "ack-syn-to-the-receiver", "window-exceeded",
    ],
)  # fmt: skip
def test_plain_units_that_break_the_rules_are_refused_as_before(
    units: list[bytes], diagnostic: Diagnostic
) -> None:
    pair = writing()
    _aborted(pair.server, _fed(pair.server, *units), diagnostic)


def test_an_ack_for_a_point_never_sent_is_refused_as_before() -> None:
    pair = writing()
    _aborted(pair.requester, _fed(pair.requester, encode_fpdu(_sync(F.ACK_SYN, 7))),
             Diagnostic.PROTOCOL_ERROR)  # fmt: skip


def test_plain_units_outside_the_data_states_take_the_table() -> None:
    """A DTF before WRITE was answered is not data: 3/311 from the table, not an article."""
    pair = opened()
    _aborted(pair.server, _fed(pair.server, _dtf()), Diagnostic.PROTOCOL_ERROR)
