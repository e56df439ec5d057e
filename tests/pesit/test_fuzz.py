"""Fuzzing the readers: hostile bytes give typed errors (or an ABORT), never a crash or a hang."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.pesit.diagnostics import DecodeError
from protocols.pesit.events import ConnectionRequested, CreateRequested, SyncPointReached
from protocols.pesit.fpdu import Fpdu, decode_fpdu, encode_fpdu, split_fpdus
from protocols.pesit.framing import Framing, UnitReader, decode_preconnection, frame
from protocols.pesit.server import PesitServer
from tests.pesit.harness import NOW, SETTINGS, Pair, fpdus_of
from tests.pesit.reach import reading, writing
from tests.pesit.strategies import fpdus

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_decoder_fed_random_bytes_raises_only_decode_errors(data: bytes) -> None:
    for reader in (decode_fpdu, split_fpdus, decode_preconnection):
        with contextlib.suppress(DecodeError):
            reader(data)


@settings(max_examples=1_000, deadline=None)
@given(fpdus(), st.data())
def test_decoder_fed_mutated_fpdus_raises_only_decode_errors(
    fpdu: Fpdu, data: st.DataObject
) -> None:
    wire = bytearray(encode_fpdu(fpdu))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(wire) - 1))
        wire[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    with contextlib.suppress(DecodeError):
        decode_fpdu(bytes(wire[:cut]))


@settings(max_examples=1_000, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(list(Framing)))
def test_unit_reader_never_crashes(data: bytes, framing: Framing) -> None:
    reader = UnitReader(framing)
    reader.feed(data)
    try:
        while reader.next_opening() is not None:
            pass
        while reader.next_nsdu() is not None:
            pass
        reader.next_answer()
    except DecodeError:
        pass


def _server_app(server: PesitServer) -> None:
    while (event := server.next_event()) is not None:
        if isinstance(event, ConnectionRequested):
            server.accept_connection(SETTINGS, now=NOW)
        elif isinstance(event, CreateRequested):
            server.accept_create(now=NOW)
        elif isinstance(event, SyncPointReached):
            server.confirm_durable(event.position.point, now=NOW)


def _addressed(fpdu: Fpdu) -> bytes:
    """A well-framed FPDU of any type and content, sent to our id so it reaches the table."""
    return frame(encode_fpdu(replace(fpdu, dst=1)), Framing.PREFIXED)


CHUNKS = st.lists(
    st.one_of(st.binary(min_size=1, max_size=120), fpdus().map(_addressed)), max_size=8
)


@settings(max_examples=500, deadline=None)
@given(CHUNKS, st.sampled_from([writing, reading]))
def test_live_connection_fed_hostile_fpdus_never_raises(
    chunks: list[bytes], make: Callable[[], Pair]
) -> None:
    pair = make()
    server = pair.server
    for chunk in chunks:
        server.receive_data(chunk, now=NOW)
        _server_app(server)
    fpdus_of(server.data_to_send())  # whatever we answered is well-formed PeSIT


@settings(max_examples=1_000, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 17))
def test_fresh_server_fed_garbage_never_raises(data: bytes, step: int) -> None:
    server = PesitServer(now=NOW)
    for start in range(0, len(data), step):
        server.receive_data(data[start : start + step], now=NOW)
        _server_app(server)
    server.data_to_send()
