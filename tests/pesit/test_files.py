"""CREATE, SELECT, ORF, READ and messages: negotiation and refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.events import CreateRequested, FileInfo, FileReady, RequestRefused
from protocols.pesit.fpdu import Fpdu, FpduType
from protocols.pesit.pi import PI, Params
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.state import State
from tests.pesit.harness import FILE, NOW, SETTINGS, Pair, ServerApp, feed
from tests.pesit.reach import connected, opened, selected

F = FpduType


@pytest.mark.parametrize(("ours", "theirs", "agreed"), [(65535, 4096, 4096), (100, 4096, 100)])
def test_the_smaller_entity_size_wins(ours: int, theirs: int, agreed: int) -> None:
    pair = Pair(PesitRequester(replace(SETTINGS, max_entity_size=ours)), PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, replace(SETTINGS, max_entity_size=theirs))
    pair.requester.connect(now=NOW)
    pair.pump()
    pair.requester.create(FILE, now=NOW)
    pair.pump()  # the application accepts it
    ready = pair.events("r")[-1]
    assert isinstance(ready, FileReady)
    assert ready.file.entity_size == agreed


def test_create_without_entity_size_gets_the_server_one() -> None:
    pair = connected()
    events, _ = feed(pair.server, Fpdu(F.CREATE, 1, params=Params.of((PI.TRANSFER_ID, 4))))
    assert isinstance(events[0], CreateRequested)
    assert events[0].file.entity_size == SETTINGS.max_entity_size


def test_ack_create_without_entity_size_keeps_the_requester_one() -> None:
    pair = connected(replace(SETTINGS, max_entity_size=2000))
    pair.requester.create(FILE, now=NOW)
    events, _ = feed(pair.requester, Fpdu(F.ACK_CREATE, 1, params=Params()))
    assert isinstance(events[0], FileReady)
    assert events[0].file.entity_size == 2000


def test_create_with_a_useless_entity_size_is_refused_with_200() -> None:
    pair = connected()
    create = Fpdu(F.CREATE, 1, params=Params.of((PI.MAX_ENTITY_SIZE, 10)))
    events, answer = feed(pair.server, create)
    assert answer[0].kind is F.ACK_CREATE
    assert answer[0].params.diagnostic() == Diagnostic.CHARACTERISTICS_INSUFFICIENT.code
    assert events == []
    assert pair.server.state is State.CN03


def test_requester_aborts_when_the_server_answers_a_useless_entity_size() -> None:
    pair = connected()
    pair.requester.create(FILE, now=NOW)
    pair.requester.data_to_send()
    answer = Params.of((PI.DIAGNOSTIC, Diagnostic.SUCCESS.code), (PI.MAX_ENTITY_SIZE, 12))
    _, sent = feed(pair.requester, Fpdu(F.ACK_CREATE, 1, params=answer))
    assert sent[0].params.diagnostic() == Diagnostic.CHARACTERISTICS_INSUFFICIENT.code


@pytest.mark.parametrize(
    ("request_kind", "answer_kind", "back"),
    [("create", F.ACK_CREATE, State.CN03), ("select", F.ACK_SELECT, State.CN03)],
)
def test_refused_file_request_is_reported_and_both_sides_go_back(
    request_kind: str, answer_kind: FpduType, back: State
) -> None:
    pair = connected()
    getattr(pair.requester, request_kind)(FILE, now=NOW)
    pair.pump()
    pair.server.refuse(Diagnostic.FILE_NOT_FOUND, now=NOW)
    pair.pump()
    refused = pair.events("r")[-1]
    assert isinstance(refused, RequestRefused)
    assert refused.diagnostic == Diagnostic.FILE_NOT_FOUND.code
    assert refused.request is (F.CREATE if answer_kind is F.ACK_CREATE else F.SELECT)
    assert pair.requester.state is back
    assert pair.server.state is back


def test_refused_read_goes_back_to_the_open_file() -> None:
    pair = opened(pull=True)
    pair.requester.read(now=NOW)
    pair.pump()
    pair.server.refuse(Diagnostic.RESTART_NEGOTIATION_FAILED, now=NOW)
    pair.pump()
    assert pair.requester.state is State.OF02
    assert pair.server.state is State.OF02


def test_orf_asking_for_compression_is_answered_with_none() -> None:
    pair = selected()
    _, answer = feed(pair.server, Fpdu(F.ORF, 1, params=Params.of((PI.COMPRESSION, b"\x01\x01"))))
    assert answer[0].params.get(PI.COMPRESSION) == b"\x00\x00"
    assert answer[0].params.diagnostic().ok


def test_requester_aborts_if_the_server_turns_compression_on() -> None:
    pair = selected()
    pair.requester.open_file(now=NOW)
    pair.requester.data_to_send()
    answer = Params.of((PI.DIAGNOSTIC, Diagnostic.SUCCESS.code), (PI.COMPRESSION, b"\x01\x01"))
    _, sent = feed(pair.requester, Fpdu(F.ACK_ORF, 1, params=answer))
    assert sent[0].params.diagnostic() == Diagnostic.NEGOTIATION_FAILURE.code


def test_restart_point_unknown_to_the_requester_aborts_with_214() -> None:
    pair = opened()
    pair.requester.write(now=NOW)
    pair.requester.data_to_send()
    answer = Params.of((PI.DIAGNOSTIC, Diagnostic.SUCCESS.code), (PI.RESTART_POINT, 5))
    _, sent = feed(pair.requester, Fpdu(F.ACK_WRITE, 1, params=answer))
    assert sent[0].params.diagnostic() == Diagnostic.RESTART_NEGOTIATION_FAILED.code


@pytest.mark.parametrize(
    "messages",
    [[F.MSG], [F.MSGDM, F.MSGMM, F.MSGMM, F.MSGFM]],
    ids=["single", "segmented"],
)
def test_messages_are_refused_politely_with_209(messages: list[FpduType]) -> None:
    pair = connected()
    for kind in messages[:-1]:
        assert feed(pair.server, Fpdu(kind, 1, params=Params.of((PI.FREE_MESSAGE, "x")))) == (
            [],
            [],
        )
    _, answer = feed(pair.server, Fpdu(messages[-1], 1, params=Params.of((PI.FREE_MESSAGE, "x"))))
    assert answer[0].kind is F.ACK_MSG
    assert answer[0].params.diagnostic() == Diagnostic.MESSAGE_TYPE_REFUSED.code
    assert pair.server.state is State.CN03


def test_select_answer_defaults_the_article_size_to_the_settings() -> None:
    pair = connected()
    pair.requester.select(FILE, now=NOW)
    pair.pump()
    pair.server.accept_select(FileInfo(transfer_id=3), now=NOW)
    pair.pump()
    ready = pair.events("r")[-1]
    assert isinstance(ready, FileReady)
    assert ready.file.article_size == SETTINGS.article_size


def test_select_carries_the_server_file_description_back() -> None:
    pair = connected()
    pair.requester.select(FileInfo(file_name="CSO1100A"), now=NOW)
    pair.pump()
    described = FileInfo(
        transfer_id=0x0BEEF, article_size=512, max_size_kb=9, created="260119012505"
    )
    pair.server.accept_select(described, now=NOW)
    pair.pump()
    ready = pair.events("r")[-1]
    assert isinstance(ready, FileReady)
    assert ready.file.file_name == "CSO1100A"
    assert (ready.file.transfer_id, ready.file.article_size) == (0x0BEEF, 512)
    assert (ready.file.max_size_kb, ready.file.created) == (9, "260119012505")
