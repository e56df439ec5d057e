"""A push from AIFE's requester into our server, both adapters on loopback TLS.

Hostile first: codes the connection does not carry, sizes over the limit (announced or not),
an inbox that refuses at the end, a disk that holds its fsync, one transfer id twice at once.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterable, Awaitable
from pathlib import Path

import pytest

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint import PesitPermanentError, PesitTransientError, push
from protocols.pesit.endpoint.spool import logged_points
from protocols.pesit.events import FileInfo
from protocols.ports import Accepted, Incoming, RefusalKind, TransferRefused
from tests.pesit_endpoint.helpers import (
    CODE,
    SETTLED,
    Admit,
    Disk,
    MemoryInbox,
    Pki,
    Recorder,
    payload,
    peer,
    spool_left,
    start_listener,
)

DATA = payload(100_000)
FILE = FileInfo(file_name=CODE, transfer_id=42, max_size_kb=98, label="FEN1200A_42.xml")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "flow.xml"
    path.write_bytes(DATA)
    return path


@pytest.mark.parametrize(
    ("kind", "diagnostic"),
    [
        (RefusalKind.UNKNOWN_CODE, "2/205"),
        (RefusalKind.NOT_SUBSCRIBED, "2/226"),
        (RefusalKind.CONNECTION_CLOSED, "2/226"),
    ],
)
async def test_code_not_carried_is_refused_at_create(
    pki: Pki, tmp_path: Path, source: Path, kind: RefusalKind, diagnostic: str
) -> None:
    inbox, observer = MemoryInbox(), Recorder()
    listener = await start_listener(
        pki, tmp_path / "spool", inbox=inbox, admission=Admit({CODE: kind}), observer=observer
    )
    try:
        with pytest.raises(PesitPermanentError, match=f"CREATE ended with {diagnostic}"):
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert inbox.files == []
    assert not (tmp_path / "spool").exists()
    assert observer.of("refused") == [("refused", kind.value)]


async def test_announced_size_over_the_limit_is_refused_at_create(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    listener = await start_listener(pki, tmp_path / "spool", max_size=50_000)
    try:
        with pytest.raises(PesitPermanentError, match="CREATE ended with 2/206"):
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)


async def test_unannounced_oversize_is_interrupted_and_forgotten(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox = MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox, max_size=50_000)
    liar = FileInfo(file_name=CODE, transfer_id=43, max_size_kb=10)
    try:
        with pytest.raises(PesitPermanentError, match="transfer ended with 2/206"):
            await push(peer(pki, listener.port), source, file=liar)
    finally:
        await listener.stop(timeout=1)
    assert inbox.files == []
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize(
    "case",
    [
        (RefusalKind.WRONG_FORMAT, PesitPermanentError, False),
        (RefusalKind.UNAVAILABLE, PesitTransientError, True),
    ],
    ids=["refused-for-good-spool-dropped", "unavailable-spool-kept"],
)
async def test_inbox_refusal_at_the_end_interrupts_the_transfer(
    pki: Pki, tmp_path: Path, source: Path, case: tuple[RefusalKind, type[Exception], bool]
) -> None:
    kind, error, kept = case
    inbox = MemoryInbox(refuse=TransferRefused(kind, "no"))
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    try:
        with pytest.raises(error, match="transfer ended"):
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert (tmp_path / "spool" / "in-42").exists() is kept  # a transient refusal may restart


async def test_push_lands_whole_with_its_name_and_id(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox, observer = MemoryInbox(), Recorder()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox, observer=observer)
    try:
        result = await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert result.byte_count == len(DATA)
    assert [body for _, body in inbox.files] == [DATA]
    incoming = inbox.files[0][0]
    assert (incoming.protocol, incoming.direction) == ("pesit", "reception")
    assert (incoming.interface_code, incoming.connection) == (CODE, "b2g-prod-pesit")
    assert incoming.file_name == "FEN1200A_42.xml"
    assert incoming.expected_size == len(DATA)
    assert incoming.peer_message_id is not None
    assert incoming.peer_message_id.startswith("42@")
    assert spool_left(tmp_path / "spool") == {"in-42": SETTLED}  # no byte left once answered
    assert len(observer.of("sync")) >= len(DATA) // 4096 - 1


async def test_mapped_virtual_name_reaches_the_inbox_as_its_code(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox = MemoryInbox()
    listener = await start_listener(
        pki, tmp_path / "spool", inbox=inbox, names={"CPRO.CYCLE": CODE}
    )
    try:
        await push(peer(pki, listener.port), source, file=FileInfo(file_name="cpro.cycle"))
    finally:
        await listener.stop(timeout=1)
    assert inbox.files[0][0].interface_code == CODE


async def test_no_sync_point_is_acknowledged_before_it_is_durable(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, requester_side = Disk(monkeypatch), Recorder()
    inbox = MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    sending = asyncio.create_task(
        push(peer(pki, listener.port), source, file=FILE, observer=requester_side)
    )
    try:
        await asyncio.sleep(0.5)
        assert not sending.done()  # the window is full: the sender waits for ACK(SYN)
        assert requester_side.of("sync") == []  # and none came, nothing being durable
        assert logged_points(tmp_path / "spool" / "in-42" / "points") == []  # none durable
        disk.gate.set()
        result = await asyncio.wait_for(sending, 10)
    finally:
        await listener.stop(timeout=1)
    assert result.byte_count == len(DATA)
    assert disk.synced > 0
    assert len(requester_side.of("sync")) > 0


async def test_one_transfer_id_at_a_time(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Disk(monkeypatch)
    inbox = MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    first = asyncio.create_task(push(peer(pki, listener.port), source, file=FILE))
    try:
        await asyncio.sleep(0.3)
        with pytest.raises(PesitTransientError, match="CREATE ended with 2/207"):
            await push(peer(pki, listener.port), source, file=FILE)
        disk.gate.set()
        await asyncio.wait_for(first, 10)
    finally:
        await listener.stop(timeout=1)
    assert len(inbox.files) == 1


async def test_concurrent_pushes_each_land(pki: Pki, tmp_path: Path) -> None:
    inbox = MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    bodies = [payload(30_000 + i * 1000, seed=i) for i in range(6)]
    sources = []
    for index, body in enumerate(bodies):
        path = tmp_path / f"flow{index}.xml"
        path.write_bytes(body)
        sources.append(path)

    def one(index: int) -> Awaitable[object]:
        file = FileInfo(file_name=CODE, transfer_id=100 + index)
        return push(peer(pki, listener.port), sources[index], file=file)

    try:
        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    finally:
        await listener.stop(timeout=1)
    assert sorted(body for _, body in inbox.files) == sorted(bodies)


class BrokenInbox:
    """An inbox with a bug: the session must end at once, not leave the peer waiting."""

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        raise RuntimeError("a bug")


async def test_an_inbox_bug_aborts_the_connection_instead_of_stalling(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    listener = await start_listener(pki, tmp_path / "spool", inbox=BrokenInbox())
    try:
        with pytest.raises(PesitTransientError, match="3/399"):
            await asyncio.wait_for(push(peer(pki, listener.port), source, file=FILE), 4)
    finally:
        await listener.stop(timeout=1)
    assert (tmp_path / "spool" / "in-42").exists()  # kept: a restart may still succeed


async def test_a_label_with_a_path_reaches_the_inbox_as_a_bare_name(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox = MemoryInbox()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    file = FileInfo(file_name=CODE, transfer_id=44, label="C:\\OUT\\..\\cycle.xml")
    try:
        await push(peer(pki, listener.port), source, file=file)
    finally:
        await listener.stop(timeout=1)
    assert inbox.files[0][0].file_name == "cycle.xml"


async def test_a_disk_failing_mid_transfer_interrupts_it_for_a_restart(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No space left: IDT 2/213 with end code 4 (a restart may follow), the spool kept."""
    disk = Disk(monkeypatch, fail=OSError(errno.ENOSPC, "No space left on device"), after=2)
    disk.gate.set()
    inbox, observer = MemoryInbox(), Recorder()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox, observer=observer)
    try:
        with pytest.raises(PesitTransientError) as failed:
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert failed.value.diagnostic == Diagnostic.IO_ERROR.code
    assert ("diagnostic", "sent", "2/213") in observer.seen
    assert inbox.files == []
    assert len(logged_points(tmp_path / "spool" / "in-42" / "points")) == 2  # kept for later


async def test_a_bug_in_the_spool_thread_aborts_the_connection(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a disk error but a bug: ABORT 3/399 at once, never a peer left waiting."""
    disk = Disk(monkeypatch, fail=RuntimeError("a bug"))
    disk.gate.set()
    listener = await start_listener(pki, tmp_path / "spool", inbox=MemoryInbox())
    try:
        with pytest.raises(PesitTransientError, match="3/399"):
            await asyncio.wait_for(push(peer(pki, listener.port), source, file=FILE), 5)
    finally:
        await listener.stop(timeout=1)
