"""Spooling and placing payloads: short writes, periodic syncs, aborts racing writes, fsyncs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import stat
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from gateway.store import StoreError, payloads, spool, tempfiles
from gateway.store.payloads import PayloadDir
from gateway.store.sqlite import SQLiteStore, open_store
from tests.store.conftest import payload_files, sha, sub, temp_files


@pytest.fixture(autouse=True)
def _both_temp_kinds(temp_kind: str) -> str:
    """Every test here runs with unnamed temps and with named ones (`temp_kind`)."""
    return temp_kind


async def stream(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
        await asyncio.sleep(0)


def same_bucket_pair() -> tuple[bytes, bytes]:
    """Two payloads whose digests share their bucket `ab/` (found by the birthday paradox)."""
    seen: dict[str, bytes] = {}
    for n in itertools.count():
        data = f"payload {n}".encode()
        bucket = sha(data)[:2]
        if bucket in seen:
            return seen[bucket], data
        seen[bucket] = data
    raise AssertionError  # pragma: no cover


async def test_short_writes_are_resumed_where_they_stopped(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write

    def stingy(fd: int, data: bytes) -> int:
        return real(fd, bytes(memoryview(data)[:777]))

    monkeypatch.setattr(os, "write", stingy)
    parts = [os.urandom(5000) for _ in range(7)] + [b"", b"x"]
    receipt = await store.accept(stream(parts), sub())
    data = b"".join(parts)
    assert (receipt.sha256, receipt.size) == (sha(data), len(data))
    assert store.payload_path(await store.get(receipt.message_id)).read_bytes() == data


async def test_a_large_stream_is_synced_on_the_way_and_stored_whole(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def counted(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(spool, "FLUSH_AT", 64 * 1024)
    monkeypatch.setattr(spool, "SYNC_EVERY", 128 * 1024)
    monkeypatch.setattr(os, "fdatasync", counted)
    parts = [os.urandom(32 * 1024) for _ in range(40)]
    receipt = await store.accept(stream(parts), sub())
    assert len(synced) >= 4
    path = store.payload_path(await store.get(receipt.message_id))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == receipt.sha256


async def test_a_failed_background_sync_fails_the_accept_and_records_nothing(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux may report the fsync after a failed one clean: the failure itself must count."""

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(spool, "FLUSH_AT", 64 * 1024)
    monkeypatch.setattr(spool, "SYNC_EVERY", 128 * 1024)
    monkeypatch.setattr(os, "fdatasync", failing)
    parts = [os.urandom(32 * 1024) for _ in range(40)]
    with pytest.raises(StoreError, match="cannot sync the payload: Input/output error"):
        await store.accept(stream(parts), sub())
    assert await store.list_messages(limit=10) == []
    assert temp_files(root) == []
    assert payload_files(root) == []


async def test_the_background_sync_does_not_hold_up_the_writes(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one sync waits on the disk, later batches are written (and no second sync piles up)."""
    syncing, release = threading.Event(), threading.Event()
    syncs: list[int] = []
    real_sync, real_write = os.fdatasync, tempfiles.SpoolFile.write_all
    writes_during_sync: list[int] = []

    def slow_sync(fd: int) -> None:
        syncs.append(fd)
        syncing.set()
        release.wait(5)
        real_sync(fd)

    def write_all(self: tempfiles.SpoolFile, chunks: Sequence[bytes]) -> None:
        if syncing.is_set() and not release.is_set():
            writes_during_sync.append(len(chunks))
            if len(writes_during_sync) >= 3:
                release.set()
        real_write(self, chunks)

    monkeypatch.setattr(spool, "FLUSH_AT", 64 * 1024)
    monkeypatch.setattr(spool, "SYNC_EVERY", 128 * 1024)
    monkeypatch.setattr(os, "fdatasync", slow_sync)
    monkeypatch.setattr(tempfiles.SpoolFile, "write_all", write_all)
    parts = [os.urandom(32 * 1024) for _ in range(40)]
    receipt = await store.accept(stream(parts), sub())
    assert len(writes_during_sync) >= 3
    assert receipt.size == 40 * 32 * 1024
    path = store.payload_path(await store.get(receipt.message_id))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == receipt.sha256


async def test_cancelled_while_a_flush_is_in_flight_leaves_no_temp_file(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "FLUSH_AT", 1024)
    writing, release = threading.Event(), threading.Event()
    real = tempfiles.SpoolFile.write_all

    def slow(self: tempfiles.SpoolFile, chunks: Sequence[bytes]) -> None:
        writing.set()
        release.wait(5)
        real(self, chunks)

    monkeypatch.setattr(tempfiles.SpoolFile, "write_all", slow)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(2048)
            await asyncio.sleep(0)

    task = asyncio.create_task(store.accept(endless(), sub()))
    await asyncio.to_thread(writing.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert temp_files(root) == []
    assert payload_files(root) == []


def test_a_write_after_an_abort_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    directory = PayloadDir(tmp_path)
    directory.prepare()
    spooled = directory.new_spool()
    spooled.write_all([b"first"])
    spooled.abort()
    with pytest.raises(StoreError, match="abandoned"):
        spooled.write_all([b"late"])
    spooled.abort()  # twice is fine
    assert directory.temp_files() == []


async def test_bytes_already_in_place_are_fsynced_not_rewritten(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await store.accept(b"shared bytes", sub(source="a"))
    synced: list[Path] = []
    monkeypatch.setattr(payloads, "_fsync_at", lambda name, at: synced.append(opened(at) / name))
    await store.accept(b"shared bytes", sub(source="b"))
    assert synced == [store.payload_path(await store.get(first.message_id))]


async def test_a_damaged_file_of_another_size_is_replaced(store: SQLiteStore, root: Path) -> None:
    data = b"<Invoice>the real one</Invoice>"
    final = root / "payloads" / sha(data)[:2] / sha(data)
    final.parent.mkdir()
    final.write_bytes(b"torn")
    await store.accept(data, sub())
    assert final.read_bytes() == data


def opened(fd: int) -> Path:
    """The path of what descriptor `fd` has open (" (deleted)" once it is removed)."""
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def synced_dirs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every directory fsynced from now on, by path or by an open descriptor, in order (the
    real fsync still happens)."""
    synced: list[Path] = []
    real = os.fsync

    def counted(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(opened(fd))
        real(fd)

    monkeypatch.setattr(os, "fsync", counted)
    return synced


async def test_an_accept_syncs_its_bucket_only(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket is made (and synced in its parent) once; then an accept syncs it alone."""
    one, two = same_bucket_pair()
    synced = synced_dirs(monkeypatch)
    await store.accept(one, sub())
    bucket = root / "payloads" / sha(one)[:2]
    assert synced == [bucket.parent, bucket]
    assert sorted(p.name for p in bucket.iterdir()) == [sha(one)]
    synced.clear()
    await store.accept(two, sub())
    assert synced == [bucket]


async def test_a_bucket_removed_by_hand_is_made_again(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, data = same_bucket_pair()
    await store.accept(first, sub())
    bucket = root / "payloads" / sha(data)[:2]
    (bucket / sha(first)).unlink()
    bucket.rmdir()
    synced = synced_dirs(monkeypatch)
    receipt = await store.accept(data, sub())
    assert store.payload_path(await store.get(receipt.message_id)).read_bytes() == data
    assert synced == [bucket.parent, bucket]  # the new bucket in its parent, then the name


async def test_a_bucket_replaced_by_hand_gets_the_name_and_the_sync(
    store: SQLiteStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store keeps its buckets open; one removed and made again by someone else is
    reopened, so the rename and its fsync both reach the directory that the path names."""
    first, data = same_bucket_pair()
    await store.accept(first, sub())
    bucket = root / "payloads" / sha(data)[:2]
    (bucket / sha(first)).unlink()
    bucket.rmdir()
    bucket.mkdir()
    synced = synced_dirs(monkeypatch)
    receipt = await store.accept(data, sub())
    assert store.payload_path(await store.get(receipt.message_id)).read_bytes() == data
    assert synced == [bucket.parent, bucket]


async def test_closing_the_store_closes_its_buckets(root: Path) -> None:
    def open_in_payloads() -> list[Path]:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
        paths = []
        for fd in fds:
            with contextlib.suppress(OSError):
                paths.append(opened(fd))
        return [p for p in paths if str(p).startswith(str(root / "payloads"))]

    opened_store = await open_store(root)
    for n in range(20):
        await opened_store.accept(f"<Invoice n='{n}'/>".encode(), sub())
    assert open_in_payloads()  # kept open while the store runs
    await opened_store.close()
    assert open_in_payloads() == []


async def test_a_temp_in_flight_has_a_name_only_when_unnamed_ones_are_not_possible(
    store: SQLiteStore, root: Path, temp_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unnamed: nothing in `tmp/` while the bytes stream, the file linked in when placed."""
    monkeypatch.setattr(spool, "FLUSH_AT", 16)
    written, more = asyncio.Event(), asyncio.Event()

    async def parts() -> AsyncIterator[bytes]:
        yield b"<Invoice>first part "
        written.set()
        await more.wait()
        yield b"and the rest</Invoice>"

    task = asyncio.create_task(store.accept(parts(), sub()))
    await written.wait()
    await asyncio.sleep(0.05)  # the first part's write hop has run
    in_tmp = list((root / "payloads" / "tmp").iterdir())
    assert len(temp_files(root)) == 1
    assert len(in_tmp) == (0 if temp_kind == "unnamed" else 1)
    more.set()
    receipt = await task
    assert store.payload_path(await store.get(receipt.message_id)).read_bytes() == (
        b"<Invoice>first part and the rest</Invoice>"
    )
    assert temp_files(root) == []


async def test_bytes_already_there_under_a_name_taken_meanwhile_are_kept(
    store: SQLiteStore, root: Path, temp_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two submissions of the same bytes placing at once: the second finds the name taken
    (by the link itself, unnamed) and keeps the first's file, fsynced."""
    data = b"<Invoice>raced</Invoice>"
    final = root / "payloads" / sha(data)[:2] / sha(data)
    real = payloads._size_at
    theirs: list[int] = []  # the inode of the file the other submission placed

    def taken_meanwhile(name: str, directory: int) -> int | None:
        if not final.exists():  # the other submission wins the race right now
            final.parent.mkdir(exist_ok=True)
            final.write_bytes(data)
            theirs.append(final.stat().st_ino)
        return real(name, directory)

    monkeypatch.setattr(payloads, "_size_at", taken_meanwhile)
    if temp_kind == "unnamed":
        real_link = tempfiles._link_unnamed

        def link(fd: int, name: str, directory: int) -> None:
            taken_meanwhile(name, directory)
            real_link(fd, name, directory)

        monkeypatch.setattr(tempfiles, "_link_unnamed", link)
    receipt = await store.accept(data, sub())
    assert store.payload_path(await store.get(receipt.message_id)) == final
    assert final.read_bytes() == data
    assert [final.stat().st_ino] == theirs  # theirs kept, ours not renamed over it
    assert temp_files(root) == []
