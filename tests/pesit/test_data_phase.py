"""Hostile data phases: segments out of order, sync points abused, counts that disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from protocols.pesit.connection import PesitConnection
from protocols.pesit.diagnostics import Diagnostic, DiagnosticCode, PesitLocalError
from protocols.pesit.events import (
    Aborted,
    ArticleReceived,
    Event,
    Position,
    SyncPointAcknowledged,
    TransferEnded,
)
from protocols.pesit.fpdu import Fpdu, FpduType, encode_fpdu
from protocols.pesit.framing import Framing, frame
from protocols.pesit.pi import PI, Params
from protocols.pesit.state import State
from protocols.pesit.transfer import count_verdict
from tests.pesit.harness import NOW, SETTINGS, Pair, fpdus_of
from tests.pesit.reach import dtf_end_only, reading, writing

F = FpduType


def inject(conn: PesitConnection, *fpdus: Fpdu) -> tuple[list[Event], list[Fpdu]]:
    """Feed FPDUs as the peer would send them; return the events and the FPDUs answered."""
    conn.data_to_send()
    while conn.next_event() is not None:
        pass
    for fpdu in fpdus:
        conn.receive_data(frame(encode_fpdu(fpdu), Framing.PREFIXED), now=NOW)
    return list(iter(conn.next_event, None)), fpdus_of(conn.data_to_send())


def _aborted_with(conn: PesitConnection, answer: list[Fpdu], diagnostic: Diagnostic) -> None:
    assert conn.state is State.CLOSED
    assert [f.kind for f in answer] == [F.ABORT]
    assert answer[0].params.diagnostic() == diagnostic.code


def dtf(*articles: bytes) -> Fpdu:
    return Fpdu(F.DTF, 1, data=articles)


def seg(kind: FpduType, data: bytes = b"xy") -> Fpdu:
    return Fpdu(kind, 1, data=(data,))


def syn(point: int) -> Fpdu:
    return Fpdu(F.SYN, 1, params=Params.of((PI.SYNC_NUMBER, point)))


@pytest.mark.parametrize(
    "sequence",
    [
        [seg(F.DTFMA)],
        [seg(F.DTFFA)],
        [seg(F.DTFDA), dtf(b"a")],
        [seg(F.DTFDA), seg(F.DTFDA)],
        [seg(F.DTFDA), syn(1)],
        [seg(F.DTFDA), Fpdu(F.DTF_END, 1)],
        [syn(2)],
        [syn(1), syn(1)],
        [Fpdu(F.DTF, 9, data=(b"misaddressed",))],
    ],
    ids=[
        "middle-without-start", "end-without-start", "dtf-inside-article",
        "start-inside-article", "syn-inside-article", "dtf-end-inside-article",
        "syn-skips-a-number", "syn-repeated", "wrong-id-dst",
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "make", [writing, reading], ids=["server-receiving", "requester-receiving"]
)
def test_broken_data_sequences_abort_with_311(
    sequence: list[Fpdu], make: Callable[[], Pair]
) -> None:
    pair = make()
    conn = pair.server if make is writing else pair.requester
    events, answer = inject(conn, *sequence)
    _aborted_with(conn, answer, Diagnostic.PROTOCOL_ERROR)
    assert isinstance(events[-1], Aborted)


def test_syn_without_its_number_is_318() -> None:
    pair = writing()
    _, answer = inject(pair.server, Fpdu(F.SYN, 1))
    _aborted_with(pair.server, answer, Diagnostic.PARAMETER_ERROR)


def test_syn_beyond_the_window_is_217() -> None:
    pair = writing()
    _, answer = inject(pair.server, dtf(b"a"), syn(1), dtf(b"b"), syn(2), dtf(b"c"), syn(3))
    _aborted_with(pair.server, answer, Diagnostic.TOO_MANY_UNACKNOWLEDGED_SYNC)


def test_syn_when_none_were_agreed_is_311() -> None:
    pair = writing(replace(SETTINGS, sync_interval_kb=0))
    assert pair.server.sync_points.interval_kb == 0
    _, answer = inject(pair.server, syn(1))
    _aborted_with(pair.server, answer, Diagnostic.PROTOCOL_ERROR)


def test_segments_beyond_the_announced_article_size_are_220() -> None:
    pair = writing()  # announced PI 32 = 1024
    _, answer = inject(pair.server, seg(F.DTFDA, b"x" * 1000), seg(F.DTFMA, b"x" * 25))
    _aborted_with(pair.server, answer, Diagnostic.ARTICLE_TOO_LONG)


def test_ack_syn_for_a_point_never_sent_is_311() -> None:
    pair = reading()
    _, answer = inject(pair.server, Fpdu(F.ACK_SYN, 1, params=Params.of((PI.SYNC_NUMBER, 5))))
    _aborted_with(pair.server, answer, Diagnostic.PROTOCOL_ERROR)


def test_multi_article_dtf_is_received_as_separate_articles() -> None:
    pair = writing()
    events, answer = inject(pair.server, dtf(b"first", b"", b"third"))
    assert events == [ArticleReceived(b"first"), ArticleReceived(b""), ArticleReceived(b"third")]
    assert answer == []


def test_concatenated_nsdu_of_dtfs_and_syn_is_accepted() -> None:
    pair = writing()
    nsdu = encode_fpdu(dtf(b"a")) + encode_fpdu(syn(1)) + encode_fpdu(seg(F.DTFDA))
    nsdu += encode_fpdu(seg(F.DTFFA, b"z"))
    pair.server.receive_data(frame(nsdu, Framing.PREFIXED), now=NOW)
    names = [type(e).__name__ for e in iter(pair.server.next_event, None)]
    assert names == ["ArticleReceived", "SyncPointReached", "ArticleReceived"]


def test_ack_syn_acknowledges_every_point_up_to_it() -> None:
    pair = writing()
    sent = pair.requester.send_articles([b"x" * 1024] * 9, now=NOW)
    assert sent == 9
    events, answer = inject(
        pair.requester, Fpdu(F.ACK_SYN, 1, params=Params.of((PI.SYNC_NUMBER, 2)))
    )
    assert events == [SyncPointAcknowledged(Position(p, 1024 * 4 * p, 4 * p)) for p in (1, 2)]
    assert answer == []


# -- counts at the end -------------------------------------------------------------------------


def _trans_end(byte_count: int | None, article_count: int | None) -> Fpdu:
    params = Params.of((PI.BYTE_COUNT, byte_count), (PI.ARTICLE_COUNT, article_count))
    return Fpdu(F.TRANS_END, 1, params=params)


@pytest.mark.parametrize(
    ("announced", "verdict"),
    [
        ((6, 2), Diagnostic.SUCCESS),
        ((6, 99), Diagnostic.SUCCESS),  # article counts alone never fail
        ((None, None), Diagnostic.SUCCESS),
        ((5, 2), Diagnostic.LARGER_THAN_ANNOUNCED),
        ((7, 2), Diagnostic.WRONG_COUNTS),
    ],
)
def test_server_checks_the_byte_count_of_a_push(
    announced: tuple[int | None, int | None], verdict: Diagnostic
) -> None:
    pair = writing()
    inject(pair.server, dtf(b"abc", b"def"), Fpdu(F.DTF_END, 1))
    pair.server.confirm_end(now=NOW)
    events, answer = inject(pair.server, _trans_end(*announced))
    assert [f.kind for f in answer] == [F.ACK_TRANS_END]
    assert answer[0].params.diagnostic() == verdict.code
    assert answer[0].params.number(PI.BYTE_COUNT) == 6
    assert events == [TransferEnded(verdict.code, 6, 2)]
    assert pair.server.state is State.OF02


def test_a_wrong_count_is_refused_even_before_the_file_is_durable() -> None:
    pair = writing()
    inject(pair.server, dtf(b"abc"), Fpdu(F.DTF_END, 1))
    _, answer = inject(pair.server, _trans_end(4, 1))
    assert answer[0].params.diagnostic() == Diagnostic.WRONG_COUNTS.code


def test_server_checks_the_byte_count_the_puller_reports() -> None:
    pair = reading()
    pair.server.send_articles([b"abc"], now=NOW)
    pair.server.end_data(now=NOW)
    _, answer = inject(pair.server, _trans_end(2, 1))
    assert answer[0].params.diagnostic() == Diagnostic.WRONG_COUNTS.code
    assert pair.server.state is State.OF02


@pytest.mark.parametrize(
    ("counts", "ok"), [((3, 1), True), ((3, 768), True), ((4, 1), False), ((None, 5), True)]
)
def test_requester_checks_the_counts_the_server_answers(
    counts: tuple[int | None, int | None], ok: bool
) -> None:
    pair = writing()
    pair.requester.send_articles([b"abc"], now=NOW)
    pair.requester.end_data(now=NOW)
    params = Params.of(
        (PI.DIAGNOSTIC, Diagnostic.SUCCESS.code),
        (PI.BYTE_COUNT, counts[0]),
        (PI.ARTICLE_COUNT, counts[1]),
    )
    events, answer = inject(pair.requester, Fpdu(F.ACK_TRANS_END, 1, params=params))
    if ok:
        assert events == [TransferEnded(Diagnostic.SUCCESS.code, 3, 1)]
        assert pair.requester.state is State.OF02
    else:
        _aborted_with(pair.requester, answer, Diagnostic.WRONG_COUNTS)


def test_negative_ack_trans_end_is_reported_and_the_file_stays_open() -> None:
    pair = writing()
    pair.requester.end_data(now=NOW)
    negative = Params.of((PI.DIAGNOSTIC, DiagnosticCode(2, 213)))
    events, _ = inject(pair.requester, Fpdu(F.ACK_TRANS_END, 1, params=negative))
    assert events == [TransferEnded(DiagnosticCode(2, 213), 0, 0)]
    assert pair.requester.state is State.OF02


def test_count_verdict() -> None:
    assert count_verdict(sent=10, received=10) is Diagnostic.SUCCESS
    assert count_verdict(sent=10, received=11) is Diagnostic.LARGER_THAN_ANNOUNCED
    assert count_verdict(sent=10, received=9) is Diagnostic.WRONG_COUNTS


# -- the sender's own rules ---------------------------------------------------------------------


def test_sender_refuses_an_article_longer_than_announced() -> None:
    pair = writing()
    with pytest.raises(PesitLocalError, match="1025 bytes, 1024 announced"):
        pair.requester.send_articles([b"ok", b"x" * 1025], now=NOW)
    assert pair.requester.data_to_send() == b""


def test_confirm_durable_of_a_point_not_pending_is_a_local_error() -> None:
    pair = writing()
    inject(pair.server, dtf(b"a"), syn(1))
    with pytest.raises(PesitLocalError, match="sync point 2 is not pending"):
        pair.server.confirm_durable(2, now=NOW)


def test_confirm_durable_after_an_interruption_is_a_local_error() -> None:
    pair = writing()
    inject(pair.server, dtf(b"a"), syn(1))
    pair.server.interrupt(now=NOW)
    with pytest.raises(PesitLocalError, match="ACK\\(SYN\\) not allowed"):
        pair.server.confirm_durable(1, now=NOW)


def test_with_window_zero_pending_points_are_settled_silently_at_the_end() -> None:
    pair = writing(replace(SETTINGS, sync_window=0))
    inject(pair.server, dtf(b"a"), syn(1), dtf(b"b"), syn(2), dtf(b"c"), syn(3), Fpdu(F.DTF_END, 1))
    pending_before = len(pair.server.pending_sync_points)
    pair.server.confirm_end(now=NOW)
    assert (pending_before, len(pair.server.pending_sync_points)) == (3, 0)
    _, answer = inject(pair.server, _trans_end(3, 3))
    assert [f.kind for f in answer] == [F.ACK_TRANS_END]  # and no ACK(SYN) at all


def test_dtf_end_alone_then_trans_end_later() -> None:
    pair = writing()
    held = dtf_end_only(pair)
    before = pair.server.state
    pair.server.receive_data(held, now=NOW)
    assert (before, pair.server.state) == (State.TDE07B, State.TDE08B)
