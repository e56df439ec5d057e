"""Recordings of IBM Connect:Express (tests/fixtures/pesit/README.md) against our codec and server.

The recorder kept DTF headers only: a DTF record announces its article count in byte 6 but
carries no bytes. The server replay therefore rebuilds the data (1 MB of 1024-byte articles,
3 per DTF plus one segmented in DTFDA/DTFFA, as the recorded headers show). The pull
recording lacks the whole server data phase and the requester's ACK(SYN)s: the replay answers
each SYN the way the unrecorded requester did and compares the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from protocols.pesit.events import (
    ConnectionRequested,
    CreateRequested,
    DataEnded,
    Event,
    FileInfo,
    ReadRequested,
    SelectRequested,
    SyncPointAcknowledged,
    SyncPointReached,
    TransferEnded,
)
from protocols.pesit.fpdu import (
    DATA_FAMILY,
    HEADER_SIZE,
    Fpdu,
    FpduType,
    decode_fpdu,
    decode_header,
    encode_fpdu,
)
from protocols.pesit.framing import Framing, frame
from protocols.pesit.pi import PI, Params
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PesitSettings
from tests.pesit.harness import NOW, articles_of, fpdus_of, payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pesit"
F = FpduType
REQUESTER, SERVER = 0, 1
CX = PesitSettings(
    requester_id="CXCLIENT",
    server_id="PESITSRV",
    password="test123",
    sync_interval_kb=32,
    sync_window=2,
    max_entity_size=4096,
)
NOT_RECORDED_IN_PULL = DATA_FAMILY | {F.ACK_READ, F.SYN, F.DTF_END}


@dataclass(frozen=True)
class Record:
    direction: int
    wire: bytes

    @property
    def kind(self) -> FpduType:
        return decode_header(self.wire).kind


def records(name: str) -> list[Record]:
    raw = (FIXTURES / name).read_bytes()
    found, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos + 1 : pos + 3], "big")
        found.append(Record(raw[pos], raw[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    assert pos == len(raw)
    return found


RECORDINGS = ["cx-push-1mb.raw", "cx-pull-1mb.raw"]


@pytest.mark.parametrize("name", RECORDINGS)
def test_every_record_decodes(name: str) -> None:
    for record in records(name):
        if record.kind in DATA_FAMILY:
            assert len(record.wire) == HEADER_SIZE  # what the recorder kept
            continue
        decode_fpdu(record.wire)


@pytest.mark.parametrize("name", RECORDINGS)
def test_parameters_survive_a_decode_encode_round_trip(name: str) -> None:
    for record in records(name):
        if record.kind not in DATA_FAMILY:
            fpdu = decode_fpdu(record.wire)
            assert decode_fpdu(encode_fpdu(fpdu)) == fpdu


def test_recorded_values_read_as_the_readme_says() -> None:
    push = records("cx-push-1mb.raw")
    connect = decode_fpdu(push[0].wire)
    assert connect.params.text(PI.REQUESTER_ID) == "CXCLIENT"
    assert connect.params.text(PI.ACCESS_CONTROL) == "test123 "
    create = decode_fpdu(push[2].wire)
    assert create.params.number(PI.TRANSFER_ID) == 0x24C9  # written fixed-width: 00 24 C9
    assert create.params.group(PI.FILE_ID) == Params()  # empty PGI (LI = 0) as sent
    trans_end = decode_fpdu(push[-8].wire)
    assert (trans_end.params.number(PI.BYTE_COUNT), trans_end.params.number(PI.ARTICLE_COUNT)) == (
        1 << 20,
        1024,
    )
    answer = decode_fpdu(push[-7].wire)
    assert answer.params.number(PI.ARTICLE_COUNT) == 768  # the vendor counts otherwise
    kinds = [r.kind for r in push]
    assert (kinds.count(F.DTF), kinds.count(F.SYN), kinds.count(F.ACK_SYN)) == (256, 31, 31)


def _rebuild(record: Record) -> bytes:
    """Put back the data the recorder dropped: 1024-byte articles, one split in two halves."""
    header = decode_header(record.wire)
    if header.kind is F.DTF:
        articles = tuple(payload(1024, seed=i) for i in range(header.src))
        return encode_fpdu(Fpdu(F.DTF, header.dst, data=articles))
    if header.kind in DATA_FAMILY:
        return encode_fpdu(Fpdu(header.kind, header.dst, data=(payload(512),)))
    return record.wire


class ReplayServer:
    """Our server with an application that accepts what the recording asks for."""

    def __init__(self, connection_id: int) -> None:
        self.server = PesitServer(now=NOW, framing=Framing.PREFIXED, connection_id=connection_id)
        self.events: list[Event] = []
        self.outgoing = articles_of(payload(1 << 20), 1024)

    def feed(self, wire: bytes) -> list[Fpdu]:
        self.server.receive_data(frame(wire, Framing.PREFIXED), now=NOW)
        return self.answers()

    def answers(self) -> list[Fpdu]:
        while (event := self.server.next_event()) is not None:
            self.events.append(event)
            self.react(event)
        return fpdus_of(self.server.data_to_send())

    def react(self, event: Event) -> None:
        server = self.server
        if isinstance(event, ConnectionRequested):
            server.accept_connection(CX, now=NOW)
        elif isinstance(event, CreateRequested):
            server.accept_create(now=NOW)
        elif isinstance(event, SelectRequested):
            created = "260119012505"
            info = FileInfo(
                file_name="TESTFILE", transfer_id=event.file.transfer_id, article_size=1024,
                max_size_kb=1 << 20, created=created,
            )  # fmt: skip
            server.accept_select(info, now=NOW)
        elif isinstance(event, SyncPointReached):
            server.confirm_durable(event.position.point, now=NOW)
        elif isinstance(event, DataEnded):
            server.confirm_end(now=NOW)
        elif isinstance(event, ReadRequested):
            server.accept_read(now=NOW)
            self.send_more()
        elif isinstance(event, SyncPointAcknowledged):
            self.send_more()

    def send_more(self) -> None:
        if self.outgoing:
            del self.outgoing[: self.server.send_articles(self.outgoing, now=NOW)]
            if not self.outgoing:
                self.server.end_data(now=NOW)


def _expected_answers(recorded: list[Record]) -> list[tuple[FpduType, list[Record]]]:
    """Each requester record with the server records that followed it."""
    script: list[tuple[FpduType, list[Record]]] = []
    for record in recorded:
        if record.direction == REQUESTER:
            script.append((record.kind, []))
        else:
            script[-1][1].append(record)
    return script


def _assert_answers(ours: list[Fpdu], theirs: list[Record], after: FpduType) -> None:
    assert [f.kind for f in ours] == [r.kind for r in theirs], f"answers to {after.name}"
    for fpdu, record in zip(ours, theirs, strict=True):
        recorded_codes = {code for code, _ in decode_fpdu(record.wire).params.units}
        assert recorded_codes <= {code for code, _ in fpdu.params.units}, fpdu.kind.name


def test_server_answers_the_recorded_push_like_connect_express() -> None:
    recorded = records("cx-push-1mb.raw")
    replay = ReplayServer(connection_id=0xE2)
    for (kind, theirs), record in zip(
        _expected_answers(recorded), [r for r in recorded if r.direction == REQUESTER], strict=True
    ):
        _assert_answers(replay.feed(_rebuild(record)), theirs, kind)
    ended = [e for e in replay.events if isinstance(e, TransferEnded)]
    assert len(ended) == 1
    assert ended[0].diagnostic.ok
    assert (ended[0].byte_count, ended[0].article_count) == (1 << 20, 1024)


def test_server_answers_the_recorded_pull_like_connect_express() -> None:
    recorded = records("cx-pull-1mb.raw")
    replay = ReplayServer(connection_id=0x23)
    unrecorded: list[FpduType] = []
    for kind, theirs in _expected_answers(recorded):
        record = next(r for r in recorded if r.direction == REQUESTER and r.kind is kind)
        ours = replay.feed(record.wire)
        ours += _answer_every_syn(replay, ours)
        unrecorded += [f.kind for f in ours if f.kind in NOT_RECORDED_IN_PULL]
        ours = [f for f in ours if f.kind not in NOT_RECORDED_IN_PULL]
        _assert_answers(ours, theirs, kind)
    assert unrecorded[0] is F.ACK_READ
    assert unrecorded[-1] is F.DTF_END
    assert unrecorded.count(F.SYN) == 31  # every 32 KB of the 1 MB, none before DTF.END
    assert next(e for e in replay.events if isinstance(e, TransferEnded)).diagnostic.ok


def _answer_every_syn(replay: ReplayServer, sent: list[Fpdu]) -> list[Fpdu]:
    """Play the requester's ACK(SYN)s the recorder did not keep; collect what follows."""
    more: list[Fpdu] = []
    pending = [f for f in sent if f.kind is F.SYN]
    while pending:
        syn = pending.pop(0)
        ack = Fpdu(F.ACK_SYN, 0x23, params=syn.params)
        answers = replay.feed(encode_fpdu(ack))
        more += answers
        pending += [f for f in answers if f.kind is F.SYN]
    return more
