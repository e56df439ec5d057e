"""Past TLS, the partner still proves who it is: PI 3 + PI 5, and the pre-connection if used."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint import PesitPermanentError, push
from protocols.pesit.events import FileInfo
from protocols.pesit.framing import PreConnection
from protocols.pesit.settings import PesitSettings
from tests.pesit_endpoint.helpers import (
    CODE,
    MemoryInbox,
    Pki,
    Recorder,
    payload,
    peer,
    settings,
    start_listener,
)

FILE = FileInfo(file_name=CODE, transfer_id=11)
PRE = PreConnection("CPRO", "pre0pass")


async def _push_as(
    pki: Pki, tmp_path: Path, caller: PesitSettings, server: PesitSettings
) -> tuple[MemoryInbox, Recorder, Path]:
    source = tmp_path / "flow.xml"
    source.write_bytes(payload(10_000))
    inbox, observer = MemoryInbox(), Recorder()
    listener = await start_listener(
        pki, tmp_path / "spool", inbox=inbox, core=server, observer=observer
    )
    try:
        await push(peer(pki, listener.port, core=caller), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    return inbox, observer, source


async def test_wrong_password_gets_rconnect_3_304(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/304") as refused:
        await _push_as(pki, tmp_path, settings(password="wrong"), settings())
    assert refused.value.diagnostic == Diagnostic.NOT_AUTHORISED.code


async def test_missing_password_gets_rconnect_3_304(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/304"):
        await _push_as(pki, tmp_path, settings(password=""), settings())


async def test_unknown_requester_id_gets_rconnect_3_301(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/301"):
        await _push_as(pki, tmp_path, settings(requester_id="INTRUDER"), settings())


async def test_wrong_server_id_gets_rconnect_3_301(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/301"):
        await _push_as(pki, tmp_path, settings(server_id="SOMEONE"), settings())


async def test_refusals_are_counted_and_nothing_is_kept(pki: Pki, tmp_path: Path) -> None:
    inbox, observer = MemoryInbox(), Recorder()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox, observer=observer)
    source = tmp_path / "flow.xml"
    source.write_bytes(b"<x/>")
    try:
        with pytest.raises(PesitPermanentError):
            await push(peer(pki, listener.port, core=settings(password="nope")), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert observer.of("auth") == [("auth", "password")]
    assert observer.of("diagnostic") == [("diagnostic", "sent", "3/304")]
    assert inbox.files == []


async def test_preconnection_required_but_not_sent_gets_3_304(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/304"):
        await _push_as(pki, tmp_path, settings(), settings(preconnection=PRE))


async def test_wrong_preconnection_password_gets_nak0(pki: Pki, tmp_path: Path) -> None:
    wrong = PreConnection("CPRO", "guess")
    with pytest.raises(PesitPermanentError, match="3/304"):
        await _push_as(pki, tmp_path, settings(preconnection=wrong), settings(preconnection=PRE))


async def test_unexpected_preconnection_gets_nak0(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(PesitPermanentError, match="3/304"):
        await _push_as(pki, tmp_path, settings(preconnection=PRE), settings())


@pytest.mark.parametrize("prefixed", [True, False])
async def test_right_preconnection_then_connect_pushes(
    pki: Pki, tmp_path: Path, prefixed: bool
) -> None:
    caller = settings(preconnection=PRE, prefixed=prefixed)
    inbox, _, source = await _push_as(pki, tmp_path, caller, settings(preconnection=PRE))
    assert [body for _, body in inbox.files] == [source.read_bytes()]
