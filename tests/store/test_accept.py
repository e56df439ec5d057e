"""accept(): hostile input first, then durability and idempotency, on real files."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Direction, Environment, MessageState
from gateway.store import (
    ConflictingRepeat,
    InvalidSubmission,
    PayloadTooLarge,
    StoreError,
    TruncatedPayload,
    open_store,
)
from gateway.store.settling import Settlement
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import FakeClock, payload_files, raw_db, sha, sub, temp_files


@pytest.fixture(autouse=True)
def _both_temp_kinds(temp_kind: str) -> str:
    """Every test here runs with unnamed temps and with named ones (`temp_kind`)."""
    return temp_kind


def assert_nothing_recorded(root: Path) -> None:
    with raw_db(root) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert temp_files(root) == []
    assert payload_files(root) == []


async def chunks(*parts: bytes, fail: BaseException | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if fail is not None:
        raise fail


class HeldSettlement:
    """Holds the next accept's settlement (in its worker) until released; later ones run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started, self._go = threading.Event(), threading.Event()
        self._monkeypatch = monkeypatch
        run = self._run = Settlement.run

        def held(settlement: Settlement, *args: Any) -> None:
            self.started.set()
            assert self._go.wait(10)
            run(settlement, *args)

        monkeypatch.setattr(Settlement, "run", held)

    def release(self) -> None:
        self._monkeypatch.setattr(Settlement, "run", self._run)
        self._go.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldSettlement:
    return HeldSettlement(monkeypatch)


# --- hostile input -------------------------------------------------------------------------


async def test_oversize_bytes_refused_and_nothing_stored(store: SQLiteStore, root: Path) -> None:
    with pytest.raises(PayloadTooLarge) as info:
        await store.accept(b"x" * 11, sub(max_size=10))
    assert info.value.limit == 10
    assert_nothing_recorded(root)


async def test_oversize_stream_is_cut_at_the_first_chunk_over_the_limit(
    store: SQLiteStore, root: Path
) -> None:
    pulled: list[int] = []
    seen: list[bytes] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(1000):
            pulled.append(i)
            yield b"y" * (512 * 1024)

    with pytest.raises(PayloadTooLarge):
        await store.accept(endless(), sub(max_size=3 * 1024 * 1024), on_chunk=seen.append)
    assert len(pulled) == 7  # six chunks fit, the seventh crosses the line
    assert sum(map(len, seen)) <= 3 * 1024 * 1024
    assert_nothing_recorded(root)


async def test_announced_size_over_the_limit_is_refused_before_reading(
    store: SQLiteStore, root: Path
) -> None:
    pulled: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        pulled.append(b"")
        yield b"z"

    with pytest.raises(PayloadTooLarge):
        await store.accept(source(), sub(max_size=100, expected_size=101))
    assert pulled == []
    assert_nothing_recorded(root)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [((b"abc", b"de"), 6), ((b"abc", b"defg"), 6), ((b"",), 1)],
    ids=["shorter-stream", "longer-stream", "empty-stream"],
)
async def test_stream_not_matching_the_announced_size_is_truncated(
    store: SQLiteStore, root: Path, parts: tuple[bytes, ...], expected: int
) -> None:
    with pytest.raises(TruncatedPayload) as info:
        await store.accept(chunks(*parts), sub(expected_size=expected))
    assert info.value.expected == expected
    assert_nothing_recorded(root)


async def test_bytes_not_matching_the_announced_size_are_truncated(
    store: SQLiteStore, root: Path
) -> None:
    with pytest.raises(TruncatedPayload):
        await store.accept(b"12345", sub(expected_size=6))
    assert_nothing_recorded(root)


async def test_iterator_raising_mid_stream_records_nothing(store: SQLiteStore, root: Path) -> None:
    big = os.urandom(1536 * 1024)  # past the flush threshold: a temp file exists when it fails
    with pytest.raises(ConnectionResetError):
        await store.accept(chunks(big, big, fail=ConnectionResetError("peer went away")), sub())
    assert_nothing_recorded(root)


async def test_sniffer_refusing_the_format_aborts_the_accept(
    store: SQLiteStore, root: Path
) -> None:
    class NotAnInvoiceError(Exception):
        pass

    def sniff(chunk: bytes) -> None:
        if not chunk.startswith(b"<?xml"):
            raise NotAnInvoiceError(chunk[:8])

    with pytest.raises(NotAnInvoiceError):
        await store.accept(chunks(b"%PDF-1.7 not xml"), sub(), on_chunk=sniff)
    assert_nothing_recorded(root)


async def test_chunks_that_are_not_bytes_are_refused(store: SQLiteStore, root: Path) -> None:
    async def text() -> AsyncIterator[object]:
        yield b"ok"
        yield "not bytes"

    with pytest.raises(InvalidSubmission) as info:
        await store.accept(text(), sub())  # type: ignore[arg-type]
    assert info.value.field == "data"
    with pytest.raises(InvalidSubmission):
        await store.accept(12345, sub())  # type: ignore[arg-type]
    assert_nothing_recorded(root)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("file_name", "../../etc/passwd"),
        ("file_name", "dir/file.xml"),
        ("file_name", "dir\\file.xml"),
        ("file_name", ".."),
        ("file_name", "a\x00b.xml"),
        ("file_name", "x" * 300),
        ("peer_message_id", "<id>\r\nX-Injected: 1"),
        ("peer_message_id", "p" * 2000),
        ("peer_message_id", "bad \udcff surrogate"),
        ("source", ""),
        ("source", "   "),
        ("interface_code", "FSO\n1100A"),
        ("max_size", -1),
        ("max_size", True),
        ("expected_size", "10"),
        ("direction", "emission"),
        ("environment", "prod"),
        ("events[0]", ["as2.mdn_sent", {}]),
        ("events[0]", ("as2.mdn_sent", "not a mapping")),
        ("events[0].kind", ("as2\nforged", {})),
    ],
)
async def test_hostile_submission_fields_are_refused_by_name(
    store: SQLiteStore, root: Path, field: str, value: object
) -> None:
    name = field.split("[", 1)[0]
    with pytest.raises(InvalidSubmission) as info:
        await store.accept(b"payload", sub(**{name: (value,) if name == "events" else value}))
    assert info.value.field == field
    assert_nothing_recorded(root)


async def test_caller_cancelled_mid_stream_leaves_no_temp_file(
    store: SQLiteStore, root: Path
) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield os.urandom(2 * 1024 * 1024)
        started.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(store.accept(stalled(), sub()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_nothing_recorded(root)


async def test_a_forged_message_cannot_point_the_payload_path_elsewhere(
    store: SQLiteStore,
) -> None:
    message = await store.get((await store.accept(b"real", sub())).message_id)
    for forged in ("../../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(StoreError, match="sha256"):
            store.payload_path(replace(message, sha256=forged))


async def test_a_caller_gone_after_the_last_byte_still_gets_its_file_recorded(
    store: SQLiteStore, held: HeldSettlement
) -> None:
    """The peer hung up while we were committing: its retry must find the original."""

    async def source() -> AsyncIterator[bytes]:
        yield b"<Invoice>complete</Invoice>"

    task = asyncio.create_task(store.accept(source(), sub(peer_message_id="<hangup@x>")))
    assert await asyncio.to_thread(held.started.wait, 10)  # the last byte is in, settling
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held.release()
    retried = await store.accept(b"<Invoice>complete</Invoice>", sub(peer_message_id="<hangup@x>"))
    async with asyncio.timeout(5):  # the abandoned accept settles on its own, in any order
        while len(events := await store.events(retried.message_id)) < 2:
            await asyncio.sleep(0.01)
    assert [e.kind for e in events] == ["accepted", "duplicate"]
    assert [m.id for m in await store.list_messages()] == [retried.message_id]


async def test_close_waits_for_a_settlement_in_flight(
    root: Path, clock: FakeClock, held: HeldSettlement
) -> None:
    """Closing while an accept is being placed and recorded: it ends first, recorded."""
    opened = await open_store(root, clock=clock)
    accepting = asyncio.create_task(opened.accept(b"<Invoice>late</Invoice>", sub()))
    assert await asyncio.to_thread(held.started.wait, 10)
    closing = asyncio.create_task(opened.close())
    await asyncio.sleep(0.1)
    assert not closing.done()  # waiting for the settlement, not cutting it off
    held.release()
    receipt = await accepting
    await closing
    with raw_db(root) as conn:
        [row] = conn.execute("SELECT id FROM messages").fetchall()
    assert row[0] == receipt.message_id


async def test_closed_store_refuses_work(root: Path, clock: FakeClock) -> None:
    opened = await open_store(root, clock=clock)
    await opened.close()
    with pytest.raises(StoreError):
        await opened.accept(b"late", sub())
    with pytest.raises(StoreError):
        await opened.get("01ANYTHING")
    await opened.close()  # idempotent


async def test_a_disk_failing_while_placing_refuses_the_accept_and_records_nothing(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fsync

    def full(fd: int) -> None:  # the bucket's fsync fails
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match=r"cannot store the payload: .*No space left"):
        await asyncio.wait_for(store.accept(b"<Invoice/>", sub()), 10)
    assert_nothing_recorded(root)
    monkeypatch.undo()
    receipt = await store.accept(b"<Invoice/>", sub())  # the disk is back: accepted in full
    assert not receipt.duplicate


# --- durability ----------------------------------------------------------------------------


async def test_accept_is_durable_before_it_returns(
    store: SQLiteStore, root: Path, clock: FakeClock
) -> None:
    data = os.urandom(10_000)
    receipt = await store.accept(
        data,
        sub(
            peer_message_id="<m1@partner>", file_name="FSO1100A_1.xml", environment=Environment.QUAL
        ),
    )
    assert not receipt.duplicate
    assert (receipt.sha256, receipt.size, receipt.accepted_at) == (sha(data), len(data), clock())
    with raw_db(root) as conn:
        row = conn.execute(
            "SELECT state, sha256, size, source, peer_message_id, environment FROM messages"
            " WHERE id = ?",
            (receipt.message_id,),
        ).fetchone()
        kinds = conn.execute(
            "SELECT kind, state FROM events WHERE message_id = ?", (receipt.message_id,)
        ).fetchall()
    assert row == ("accepted", sha(data), len(data), "api", "<m1@partner>", "qual")
    assert kinds == [("accepted", "accepted")]
    message = await store.get(receipt.message_id)
    path = store.payload_path(message)
    assert path == root / "payloads" / sha(data)[:2] / sha(data)
    assert sha(path.read_bytes()) == sha(data)
    assert temp_files(root) == []


async def test_streamed_payload_is_hashed_sniffed_and_stored_whole(
    store: SQLiteStore, root: Path
) -> None:
    parts = [os.urandom(64 * 1024) for _ in range(40)] + [b"tail"]
    seen: list[bytes] = []
    receipt = await store.accept(chunks(*parts), sub(), on_chunk=seen.append)
    data = b"".join(parts)
    assert b"".join(seen) == data
    assert receipt.size == len(data)
    message = await store.get(receipt.message_id)
    assert store.payload_path(message).read_bytes() == data
    assert message.state is MessageState.ACCEPTED
    assert message.direction is Direction.EMISSION


async def test_empty_payload_is_a_valid_file(store: SQLiteStore) -> None:
    receipt = await store.accept(b"", sub(expected_size=0))
    assert receipt.size == 0
    assert store.payload_path(await store.get(receipt.message_id)).read_bytes() == b""


async def test_ids_sort_in_acceptance_order(store: SQLiteStore, clock: FakeClock) -> None:
    ids = []
    for i in range(30):
        if i % 10 == 0:
            clock.advance(0.001)
        ids.append((await store.accept(f"invoice {i}".encode(), sub())).message_id)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)
    listed = await store.list_messages(limit=100)
    assert [m.id for m in listed] == ids


# --- idempotency ---------------------------------------------------------------------------


async def test_duplicate_by_peer_id_returns_the_original_receipt(
    store: SQLiteStore, root: Path
) -> None:
    first = await store.accept(b"original", sub(peer_message_id="<42@as2>"))
    again = await store.accept(b"original", sub(peer_message_id="<42@as2>", file_name="b.xml"))
    assert again.duplicate
    assert (again.message_id, again.sha256, again.size) == (
        first.message_id,
        first.sha256,
        first.size,
    )
    assert again.accepted_at == first.accepted_at
    events = await store.events(first.message_id)
    assert [e.kind for e in events] == ["accepted", "duplicate"]
    assert events[1].detail["matched"] == "peer_message_id"
    assert payload_files(root) == [store.payload_path(await store.get(first.message_id))]
    assert temp_files(root) == []


async def test_a_peer_id_reused_for_other_bytes_is_refused_not_taken_for_a_repeat(
    store: SQLiteStore, root: Path
) -> None:
    """Answering it as a duplicate would drop the new file while its sender believes it sent."""
    first = await store.accept(b"original", sub(peer_message_id="<42@as2>"))
    with pytest.raises(ConflictingRepeat, match="<42@as2>") as refused:
        await store.accept(b"different bytes", sub(peer_message_id="<42@as2>"))
    assert refused.value.original == first.message_id
    events = await store.events(first.message_id)
    assert [e.kind for e in events] == ["accepted", "conflicting_repeat"]
    assert events[1].detail["sha256"] == sha(b"different bytes")
    assert events[1].detail["matched"] == "peer_message_id"
    assert payload_files(root) == [store.payload_path(await store.get(first.message_id))]
    assert temp_files(root) == []
    with raw_db(root) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1


async def test_duplicate_by_content_returns_the_original_receipt(
    store: SQLiteStore, root: Path
) -> None:
    first = await store.accept(b"same bytes", sub(file_name="a.xml"))
    again = await store.accept(b"same bytes", sub(file_name="b.xml"))
    assert again.duplicate
    assert again.message_id == first.message_id
    assert [e.kind for e in await store.events(first.message_id)] == ["accepted", "duplicate"]
    with raw_db(root) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    assert len(payload_files(root)) == 1


async def test_same_bytes_under_a_new_peer_id_repeat_the_message_by_content(
    store: SQLiteStore, root: Path
) -> None:
    """The new peer id passes the pre-check, so the bytes are placed (found present), and the
    insert refused by the content index turns into the original's receipt."""
    first = await store.accept(b"same bytes", sub(peer_message_id="<1@as2>"))
    again = await store.accept(b"same bytes", sub(peer_message_id="<2@as2>"))
    assert again.duplicate
    assert again.message_id == first.message_id
    events = await store.events(first.message_id)
    assert [e.kind for e in events] == ["accepted", "duplicate"]
    assert events[1].detail["matched"] == "content"
    assert payload_files(root) == [store.payload_path(await store.get(first.message_id))]
    assert temp_files(root) == []


async def test_submission_events_commit_with_a_new_message_and_never_with_a_repeat(
    store: SQLiteStore,
) -> None:
    said = ("as2.mdn_sent", {"disposition": "processed"})
    first = await store.accept(b"bytes", sub(peer_message_id="<7@as2>", events=(said,)))
    again = await store.accept(b"bytes", sub(peer_message_id="<7@as2>", events=(said,)))
    assert again.duplicate
    events = await store.events(first.message_id)
    assert [e.kind for e in events] == ["accepted", "as2.mdn_sent", "duplicate"]
    assert events[1].detail == {"disposition": "processed"}
    assert events[1].at == events[0].at
    assert events[1].state is None


async def test_same_bytes_from_another_source_is_another_message_sharing_the_payload(
    store: SQLiteStore, root: Path
) -> None:
    one = await store.accept(b"shared", sub(source="sftp-acme"))
    two = await store.accept(b"shared", sub(source="sftp-other"))
    three = await store.accept(b"shared", sub(source="sftp-acme", interface_code="FSO1106A"))
    assert len({one.message_id, two.message_id, three.message_id}) == 3
    assert not (one.duplicate)
    assert not (two.duplicate)
    assert not three.duplicate
    [stored] = payload_files(root)
    inode = stored.stat().st_ino
    await store.accept(b"shared", sub(source="folder"))
    assert stored.stat().st_ino == inode  # present already: not rewritten


async def test_twenty_identical_concurrent_submissions_make_one_message(
    store: SQLiteStore, root: Path
) -> None:
    receipts = await asyncio.gather(
        *(store.accept(b"<Invoice/>", sub(peer_message_id="<dup@x>")) for _ in range(20))
    )
    assert len({r.message_id for r in receipts}) == 1
    assert sum(not r.duplicate for r in receipts) == 1
    kinds = [e.kind for e in await store.events(receipts[0].message_id)]
    assert kinds.count("accepted") == 1
    assert kinds.count("duplicate") == 19
    with raw_db(root) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    assert len(payload_files(root)) == 1
    assert temp_files(root) == []


async def test_concurrent_same_peer_id_with_different_bytes_keeps_only_the_original_payload(
    store: SQLiteStore, root: Path
) -> None:
    outcomes = await asyncio.gather(
        *(
            store.accept(f"version {i}".encode(), sub(peer_message_id="<race@x>"))
            for i in range(20)
        ),
        return_exceptions=True,
    )
    receipts = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(receipts) == 1
    assert all(isinstance(o, ConflictingRepeat) for o in outcomes if o not in receipts)
    original = await store.get(receipts[0].message_id)
    assert payload_files(root) == [store.payload_path(original)]
    assert temp_files(root) == []


# --- opening, locking and crash leftovers ----------------------------------------------------


async def test_a_second_opener_of_the_same_directory_is_refused(
    store: SQLiteStore, root: Path
) -> None:
    with pytest.raises(StoreError, match="in use"):
        await open_store(root)


async def test_garbage_database_file_is_refused_and_the_lock_released(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "raccord.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        await open_store(root)
    (root / "raccord.db").unlink()
    reopened = await open_store(root)
    await reopened.close()


async def test_naive_clock_is_refused_at_open(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="naive"):
        await open_store(tmp_path / "s", clock=lambda: FakeClock()().replace(tzinfo=None))


async def test_leftovers_of_a_crash_are_cleaned_at_open(root: Path, clock: FakeClock) -> None:
    first = await open_store(root, clock=clock)
    kept = await first.accept(b"committed", sub())
    await first.close()
    # What a process killed mid-accept leaves: a temp file, a placed but uncommitted payload,
    # and the "open" marker it never removed.
    (root / "payloads" / "tmp" / "abandoned.part").write_bytes(b"half a file")
    orphan = sha(b"never committed")
    orphan_path = root / "payloads" / orphan[:2] / orphan
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(b"never committed")
    (root / "store.open").touch()

    reopened = await open_store(root, clock=clock)
    try:
        assert reopened.recovered_from_crash
        assert temp_files(root) == []
        assert not orphan_path.exists()
        message = await reopened.get(kept.message_id)
        assert reopened.payload_path(message).read_bytes() == b"committed"
    finally:
        await reopened.close()
    assert not (root / "store.open").exists()


async def test_clean_close_does_not_sweep(root: Path, clock: FakeClock) -> None:
    first = await open_store(root, clock=clock)
    await first.close()
    stray = "ab" * 32
    stray_path = root / "payloads" / "ab" / stray
    stray_path.parent.mkdir()
    stray_path.write_bytes(b"operator put this here")
    second = await open_store(root, clock=clock)
    await second.close()
    assert not second.recovered_from_crash
    assert stray_path.exists()


async def test_a_store_of_the_two_level_layout_is_moved_to_one_level(
    root: Path, clock: FakeClock
) -> None:
    """Payloads written as `ab/cd/<sha256>` by an earlier version are found after an open."""
    first = await open_store(root, clock=clock)
    kept = await first.accept(b"written before the layout changed", sub())
    await first.close()
    digest = kept.sha256
    (root / "payloads" / "layout-one-level").unlink()  # an earlier version wrote no mark
    old = root / "payloads" / digest[:2] / digest[2:4] / digest
    old.parent.mkdir()
    (root / "payloads" / digest[:2] / digest).rename(old)
    stranger = old.parent / "notes.txt"  # not ours: kept, and so is its directory
    stranger.write_text("an operator's file")

    reopened = await open_store(root, clock=clock)
    try:
        message = await reopened.get(kept.message_id)
        path = reopened.payload_path(message)
        assert path == root / "payloads" / digest[:2] / digest
        assert path.read_bytes() == b"written before the layout changed"
        assert not old.exists()
        assert stranger.read_text() == "an operator's file"
        assert (root / "payloads" / "layout-one-level").exists()  # the next open lists nothing
    finally:
        await reopened.close()
