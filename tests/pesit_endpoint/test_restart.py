"""Broken transfers resume from the last acknowledged sync point, never from zero, never twice.

The network is cut by a relay in the middle of a push (or of a pull), or our gateway "dies"
(its listener is torn down and a new one built over the same spool folder, as after a
restart); the next attempt must move only the rest of the file, end with identical bytes, and
leave exactly one message in the inbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from protocols.errors import SendError
from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint import (
    Journal,
    PesitTransientError,
    PushResult,
    Spool,
    pull,
    push,
)
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.ports import OutgoingFile, Peer
from protocols.pesit.endpoint.spool import PushCheckpoint, logged_points
from protocols.pesit.events import FileInfo, Position
from protocols.ports import Accepted
from tests.pesit_endpoint.helpers import (
    CODE,
    SETTLED,
    CutProxy,
    Disk,
    MemoryInbox,
    Pki,
    Recorder,
    Starts,
    Waiting,
    payload,
    peer,
    spool_left,
    start_listener,
    wait_for,
)

DATA = payload(400_000)
CREATED = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
KEY = "01JMESSAGE0000000000000000"


def describe(transfer_id: int, restart: bool) -> FileInfo:
    return FileInfo(file_name=CODE, transfer_id=transfer_id, restart=restart, max_size_kb=391)


async def _send(target: Peer, source: Path, journal: Journal, starts: Starts) -> PushResult:
    async def started(transfer_id: int, restart: bool, points: int) -> None:
        starts.append((transfer_id, restart, points))

    return await send_resumable(
        target, source, key=KEY, size=len(DATA), describe=describe, journal=journal,
        started=started,
    )  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "flow.xml"
    path.write_bytes(DATA)
    return path


async def test_cut_mid_push_resumes_from_the_last_acknowledged_point(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox, starts = MemoryInbox(), Starts()
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    try:
        async with CutProxy(listener.port, up=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await _send(peer(pki, relay.port), source, Journal(tmp_path / "push"), starts)
            assert relay.cuts == 1
            kept = Journal(tmp_path / "push").load(KEY)  # on disk: a new process finds it
            assert kept is not None
            assert kept.positions
            result = await _send(peer(pki, relay.port), source, Journal(tmp_path / "push"), starts)
    finally:
        await listener.stop(timeout=1)
    (first_id, first_restart, _), (second_id, second_restart, known) = starts
    assert (first_restart, second_restart) == (False, True)
    assert second_id == first_id  # the same PI 13 on restart
    assert known > 0
    assert 0 < result.resumed_from.byte_offset < len(DATA)  # not from zero
    assert result.resumed_from.point >= kept.positions[0].point
    assert [body for _, body in inbox.files] == [DATA]  # identical, and only once
    assert Journal(tmp_path / "push").load(KEY) is None  # done: nothing left to resume


def _durable_points(spool: Path) -> int:
    """Sync points logged durable in the (one) spooled transfer under `spool`."""
    logs = list(spool.glob("*/points"))
    return len(logged_points(logs[0])) if logs else 0


async def test_gateway_restart_mid_push_resumes_from_the_spool(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, inbox, starts = tmp_path / "spool", MemoryInbox(), Starts()
    journal = Journal(tmp_path / "push")
    disk = Disk.slow(monkeypatch, 0.02)
    first = await start_listener(pki, spool, inbox=inbox)
    sending: asyncio.Task[PushResult] = asyncio.create_task(
        _send(peer(pki, first.port), source, journal, starts)
    )
    await wait_for(lambda: _durable_points(spool) >= 3)
    await first.stop(timeout=0)  # the gateway dies: sessions cut, nothing cleaned up
    with pytest.raises(SendError):
        await sending
    assert _durable_points(spool) >= 3
    disk.delay = 0.0
    again = await start_listener(pki, spool, inbox=inbox)  # a new process, same data_dir
    try:
        result = await _send(peer(pki, again.port), source, journal, starts)
    finally:
        await again.stop(timeout=1)
    assert result.resumed_from.point >= 3
    assert [body for _, body in inbox.files] == [DATA]
    assert list(spool_left(spool).values()) == [SETTLED]


async def test_restart_the_server_forgot_starts_over_and_still_lands_once(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    spool, inbox, starts = tmp_path / "spool", MemoryInbox(), Starts()
    listener = await start_listener(pki, spool, inbox=inbox)
    try:
        async with CutProxy(listener.port, up=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await _send(peer(pki, relay.port), source, Journal(tmp_path / "push"), starts)
            await wait_for(lambda: any(spool.iterdir()))
            for folder in spool.iterdir():  # the server lost its disk
                Spool(spool).discard(folder.name)
            result = await _send(peer(pki, relay.port), source, Journal(tmp_path / "push"), starts)
    finally:
        await listener.stop(timeout=1)
    assert starts[1][1] is True  # asked to restart…
    assert result.resumed_from == Position()  # …the server held nothing: from the start
    assert [body for _, body in inbox.files] == [DATA]


async def test_restart_points_the_server_does_not_know_make_the_next_try_start_over(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    spool, inbox, starts = tmp_path / "spool", MemoryInbox(), Starts()
    journal = Journal(tmp_path / "push")
    listener = await start_listener(pki, spool, inbox=inbox)
    try:
        async with CutProxy(listener.port, up=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await _send(peer(pki, relay.port), source, journal, starts)
        kept = journal.load(KEY)
        assert kept is not None
        lost = replace(kept, positions=(Position(1, 1, 1),), on_grid=False)  # nothing usable
        journal.save(KEY, lost)
        with pytest.raises(PesitTransientError) as failed:
            await _send(peer(pki, listener.port), source, journal, starts)
        assert failed.value.diagnostic == Diagnostic.RESTART_NEGOTIATION_FAILED.code
        assert journal.load(KEY) is None
        result = await _send(peer(pki, listener.port), source, journal, starts)
    finally:
        await listener.stop(timeout=1)
    assert starts[2][:2] == (starts[0][0], False)  # the same file: its id, announced as new
    assert result.resumed_from == Position()
    assert [body for _, body in inbox.files] == [DATA]


async def test_requester_crash_mid_push_resumes_on_the_sync_grid(
    pki: Pki, tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our side dies mid-push (no failure path runs): the journal only has the transfer id."""
    spool, inbox, starts = tmp_path / "spool", MemoryInbox(), Starts()
    journal = Journal(tmp_path / "push")
    server_side = Recorder()
    Disk.slow(monkeypatch, 0.01)
    listener = await start_listener(pki, spool, inbox=inbox, observer=server_side)
    try:
        sending = asyncio.create_task(_send(peer(pki, listener.port), source, journal, starts))
        await wait_for(lambda: _durable_points(spool) >= 3)
        sending.cancel()  # the process is gone: nothing after this line of ours runs
        await asyncio.gather(sending, return_exceptions=True)
        kept = journal.load(KEY)
        assert kept is not None
        assert kept.positions == ()
        await wait_for(lambda: sum(int(s[2]) for s in server_side.of("session")) == 0)
        result = await _send(peer(pki, listener.port), source, journal, starts)
    finally:
        await listener.stop(timeout=1)
    assert starts[1][1] is True
    assert result.resumed_from.point >= 3  # found on the grid, not from zero
    assert [body for _, body in inbox.files] == [DATA]


async def test_journal_of_another_file_is_ignored(pki: Pki, tmp_path: Path, source: Path) -> None:
    journal, starts, inbox = Journal(tmp_path / "push"), Starts(), MemoryInbox()
    journal.save(KEY, PushCheckpoint(77, len(DATA) + 1, (Position(1, 4096, 4),)))
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    try:
        await _send(peer(pki, listener.port), source, journal, starts)
    finally:
        await listener.stop(timeout=1)
    assert starts[0][1] is False
    assert starts[0][0] != 77


async def test_cut_mid_pull_resumes_from_the_last_durable_point(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    waiting = Waiting(
        [OutgoingFile("M1", source, len(DATA), CODE, created=CREATED, file_name="f.xml")]
    )
    listener = await start_listener(pki, tmp_path / "served", outgoing=waiting)
    pulled, inbox = Spool(tmp_path / "pulled"), MemoryInbox()

    def once(port: int) -> Awaitable[object]:
        return pull(
            peer(pki, port), names={CODE: CODE}, spool=pulled, inbox=inbox, max_size=1 << 30
        )

    try:
        async with CutProxy(listener.port, down=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await once(relay.port)
            meta = pulled.peek(f"pull-{CODE}")
            assert meta is not None  # kept for the next poll
            assert _durable_points(tmp_path / "pulled") > 0
            assert await once(relay.port)
    finally:
        await listener.stop(timeout=1)
    assert [body for _, body in inbox.files] == [DATA]
    assert waiting.done == [("M1", meta.transfer_id)]
    assert not (tmp_path / "pulled" / f"pull-{CODE}").exists()


async def test_pull_restart_the_server_cannot_honour_starts_over_at_the_next_poll(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    waiting = Waiting(
        [OutgoingFile("M1", source, len(DATA), CODE, created=CREATED, file_name="f.xml")]
    )
    pulled, inbox = Spool(tmp_path / "pulled"), MemoryInbox()

    def once(port: int) -> Awaitable[list[Accepted]]:
        target = peer(pki, port)
        return pull(target, names={CODE: CODE}, spool=pulled, inbox=inbox, max_size=1 << 30)

    first = await start_listener(pki, tmp_path / "served", outgoing=waiting)
    try:
        async with CutProxy(first.port, down=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await once(relay.port)
    finally:
        await first.stop(timeout=1)
    assert pulled.peek(f"pull-{CODE}") is not None
    again = await start_listener(pki, tmp_path / "served", outgoing=waiting)  # points forgotten
    try:
        assert await once(again.port) == []  # READ at our point refused: spool dropped
        assert pulled.peek(f"pull-{CODE}") is None
        assert len(await once(again.port)) == 1  # the next poll takes it from the start
    finally:
        await again.stop(timeout=1)
    assert [body for _, body in inbox.files] == [DATA]
    assert [d for d, _ in waiting.done] == ["M1"]


Pull = Callable[[int], Awaitable[list[Accepted]]]


async def _pull_cut_halfway(
    pki: Pki, tmp_path: Path, source: Path
) -> tuple[Waiting, MemoryInbox, Path, Pull]:
    """One file waiting on our server (sync grid kept in `grid`), pulled by AIFE through a
    link cut halfway down; the server is stopped. Returns what a restart needs to pull again."""
    waiting = Waiting(
        [OutgoingFile("M1", source, len(DATA), CODE, created=CREATED, file_name="f.xml")]
    )
    pulled, inbox, grid = Spool(tmp_path / "pulled"), MemoryInbox(), tmp_path / "grid"

    def once(port: int) -> Awaitable[list[Accepted]]:
        target = peer(pki, port)
        return pull(target, names={CODE: CODE}, spool=pulled, inbox=inbox, max_size=1 << 30)

    first = await start_listener(pki, tmp_path / "served", outgoing=waiting, served=grid)
    try:
        async with CutProxy(first.port, down=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await once(relay.port)
    finally:
        await first.stop(timeout=1)
    return waiting, inbox, grid, once


async def test_pull_cut_then_gateway_restart_resumes_from_the_kept_sync_grid(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    """Our server keeps where a served file's SYNs fall (`served_dir`): a restarted gateway
    honours AIFE's restarted READ instead of refusing it (2/214) and sending it all again."""
    waiting, inbox, grid, once = await _pull_cut_halfway(pki, tmp_path, source)
    assert len(list(grid.iterdir())) == 1  # the grid of the pull in progress, on disk
    again = await start_listener(pki, tmp_path / "served", outgoing=waiting, served=grid)
    try:
        async with CutProxy(again.port) as relay:
            assert len(await once(relay.port)) == 1  # resumed at AIFE's point, not refused
            assert relay.down < len(DATA) * 3 // 4  # only the rest of the file travelled
    finally:
        await again.stop(timeout=1)
    assert [body for _, body in inbox.files] == [DATA]
    assert [d for d, _ in waiting.done] == ["M1"]
    assert list(grid.iterdir()) == []  # delivered: nothing left to resume


async def test_kept_grid_of_another_file_or_cut_is_not_trusted(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    """The grid names the message, its size, the article size and the interval: a READ
    restarted against anything else (here: the file changed size) is refused, not resumed
    at a wrong byte."""
    waiting, inbox, grid, once = await _pull_cut_halfway(pki, tmp_path, source)
    (kept,) = grid.iterdir()
    kept.write_text(kept.read_text().replace(f'"size": {len(DATA)}', '"size": 1'))
    again = await start_listener(pki, tmp_path / "served", outgoing=waiting, served=grid)
    try:
        assert await once(again.port) == []  # refused: the spool is dropped, as before
        assert len(await once(again.port)) == 1  # and the next poll takes it from the start
    finally:
        await again.stop(timeout=1)
    assert [body for _, body in inbox.files] == [DATA]


async def test_a_restart_of_a_transfer_already_handed_on_keeps_its_peer_message_id(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    """The sender crashed after we took the file and answered, before it heard: it restarts
    the same transfer (PI 15 = 1, same PI 13, 12 and 51). The file travels again (its bytes
    are gone from the spool) but reaches the inbox under the same peer message id, which
    is how an inbox knows it holds that file already."""
    spool, inbox, starts = tmp_path / "spool", MemoryInbox(), Starts()
    journal = Journal(tmp_path / "push")
    listener = await start_listener(pki, spool, inbox=inbox)
    try:
        first = await _send(peer(pki, listener.port), source, journal, starts)
        journal.save(KEY, PushCheckpoint(first.transfer_id, len(DATA)))  # what a crash leaves
        again = await _send(peer(pki, listener.port), source, journal, starts)
        journal.save(KEY, PushCheckpoint(first.transfer_id, len(DATA)))
        other = replace(
            FileInfo(file_name=CODE, transfer_id=first.transfer_id, max_size_kb=391),
            created="260301120000",  # another file that reuses the transfer id
        )
        await push(peer(pki, listener.port), source, file=replace(other, restart=True))
        await push(peer(pki, listener.port), source, file=describe(first.transfer_id, False))
    finally:
        await listener.stop(timeout=1)
    assert (starts[1][1], again.transfer_id) == (True, first.transfer_id)
    assert again.resumed_from == Position()  # nothing left to resume from: all again
    ids = [incoming.peer_message_id for incoming in inbox.seen]
    assert ids[0] == ids[1]  # the restart is that transfer
    assert len(set(ids)) == 3  # another file, or a fresh start (PI 15 = 0), is not
