"""The writer: who commits a record (the writer thread, or the worker that has it ready) and
that every request gets exactly one answer, committed or refused, whoever commits it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from gateway.store import StoreError
from gateway.store.writer import Grouped, Writer

WRITER_THREAD = "raccord-store-writer"


async def _started(tmp_path: Path) -> Writer:
    """A writer over a fresh database of one table, its thread running."""
    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rows (v TEXT NOT NULL, thread TEXT NOT NULL)")
    conn.close()
    w = Writer(db)
    await asyncio.to_thread(w.start)
    return w


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    w = await _started(tmp_path)
    yield w
    await asyncio.to_thread(w.close)


Write = Callable[[sqlite3.Connection], str]


def _insert(value: str, *, gate: threading.Event | None = None) -> Write:
    def fn(conn: sqlite3.Connection) -> str:
        if gate is not None:
            assert gate.wait(10), "the test never opened the gate"
        name = threading.current_thread().name
        conn.execute("INSERT INTO rows (v, thread) VALUES (?, ?)", (value, name))
        return name

    return fn


async def _busy(w: Writer) -> tuple[threading.Event, asyncio.Future[str]]:
    """The writer thread inside a commit, held at a gate: what comes now queues behind it."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(w.submit(_insert("blocker", gate=gate)))
    await asyncio.sleep(0.05)
    return gate, blocker


def _committed(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT v, thread FROM rows").fetchall())
    finally:
        conn.close()


def _from_worker(w: Writer, fn: Write) -> asyncio.Future[str]:
    """`commit_here` called from a thread of its own, as the placing job does."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    worker = threading.Thread(
        target=w.commit_here, args=(fn,), kwargs={"loop": loop, "future": future}, name="worker"
    )
    worker.start()
    worker.join(10)
    return future


async def test_submit_from_the_loop_commits_in_the_writer_thread(
    writer: Writer, tmp_path: Path
) -> None:
    assert await writer.submit(_insert("a")) == WRITER_THREAD
    assert _committed(tmp_path / "db.sqlite") == {"a": WRITER_THREAD}


async def test_a_lone_worker_commits_its_record_itself(writer: Writer, tmp_path: Path) -> None:
    assert await _from_worker(writer, _insert("b")) == "worker"
    assert _committed(tmp_path / "db.sqlite") == {"b": "worker"}


async def test_a_worker_arriving_during_a_commit_leaves_its_record_to_the_writer_thread(
    writer: Writer, tmp_path: Path
) -> None:
    gate = threading.Event()
    first = asyncio.ensure_future(writer.submit(_insert("first", gate=gate)))
    await asyncio.sleep(0.05)  # the writer thread is now inside its commit, waiting at the gate
    second = _from_worker(writer, _insert("second"))
    assert not second.done()  # queued, not committed by the worker, not dropped
    gate.set()
    assert await first == WRITER_THREAD
    assert await second == WRITER_THREAD
    assert _committed(tmp_path / "db.sqlite") == {"first": WRITER_THREAD, "second": WRITER_THREAD}


async def test_a_failing_request_in_a_batch_leaves_the_others_committed(
    writer: Writer, tmp_path: Path
) -> None:
    gate, blocker = await _busy(writer)

    def broken(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO rows (v, thread) VALUES ('half', 'x')")
        raise ValueError("refused half-way")

    loop = asyncio.get_running_loop()
    failing: asyncio.Future[str] = loop.create_future()
    writer.enqueue(broken, loop=loop, future=failing)
    good = asyncio.ensure_future(writer.submit(_insert("good")))
    gate.set()
    await blocker
    with pytest.raises(ValueError, match="half-way"):
        await failing
    await good
    assert set(_committed(tmp_path / "db.sqlite")) == {"blocker", "good"}


async def test_after_close_a_worker_is_refused_and_what_was_queued_is_committed(
    tmp_path: Path,
) -> None:
    w = await _started(tmp_path)
    gate = threading.Event()
    first = asyncio.ensure_future(w.submit(_insert("first", gate=gate)))
    queued = asyncio.ensure_future(w.submit(_insert("queued")))
    await asyncio.sleep(0.05)
    closing = asyncio.ensure_future(asyncio.to_thread(w.close))
    await asyncio.sleep(0.05)
    with pytest.raises(StoreError, match="closed"):
        w.commit_here(_insert("late"), loop=asyncio.get_running_loop(), future=asyncio.Future())
    gate.set()
    await closing
    assert await first == WRITER_THREAD
    assert await queued == WRITER_THREAD
    assert set(_committed(tmp_path / "db.sqlite")) == {"first", "queued"}


async def test_a_settled_request_runs_and_settles_even_when_its_caller_went_away(
    writer: Writer, tmp_path: Path
) -> None:
    gate, blocker = await _busy(writer)
    settled: list[tuple[object, BaseException | None]] = []
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[str] = loop.create_future()
    writer.enqueue(
        _insert("kept"), loop=loop, future=gone, settle=lambda v, e: settled.append((v, e))
    )
    skipped: asyncio.Future[str] = loop.create_future()
    writer.enqueue(_insert("skipped"), loop=loop, future=skipped)
    gone.cancel()
    skipped.cancel()
    gate.set()
    await blocker
    await writer.submit(_insert("after"))  # the batch before it is settled by now
    assert settled == [(WRITER_THREAD, None)]
    assert set(_committed(tmp_path / "db.sqlite")) == {"blocker", "kept", "after"}


async def test_what_settle_raises_is_what_the_caller_gets(writer: Writer) -> None:
    def refuse(value: object, error: BaseException | None) -> object:
        raise LookupError(f"refused after {value}")

    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    writer.enqueue(_insert("x"), loop=loop, future=future, settle=refuse)
    with pytest.raises(LookupError, match="refused after raccord-store-writer"):
        await future


async def test_a_batch_runs_without_savepoints_until_a_request_fails(
    writer: Writer, tmp_path: Path
) -> None:
    """Savepoints cost two statements per request: a batch takes them only to run again once
    a request failed half-way, whose partial write must not reach the others' commit."""
    assert writer._conn is not None
    traced: list[str] = []
    writer._conn.set_trace_callback(traced.append)
    runs: list[str] = []

    def counted(value: str) -> Write:
        insert = _insert(value)

        def fn(conn: sqlite3.Connection) -> str:
            runs.append(value)
            return insert(conn)

        return fn

    async def batch(*fns: Write) -> list[asyncio.Future[str]]:
        gate, blocker = await _busy(writer)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str]] = []
        for fn in fns:
            futures.append(loop.create_future())
            writer.enqueue(fn, loop=loop, future=futures[-1])
        gate.set()
        await blocker
        await asyncio.wait(futures)
        return futures

    done = await batch(counted("a"), counted("b"))
    assert [f.result() for f in done] == [WRITER_THREAD, WRITER_THREAD]
    assert runs == ["a", "b"]
    assert not [s for s in traced if "SAVEPOINT" in s]

    def broken(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO rows (v, thread) VALUES ('half', 'x')")
        raise ValueError("refused half-way")

    runs.clear()
    done = await batch(counted("c"), broken, counted("d"))
    assert isinstance(done[1].exception(), ValueError)
    assert runs == ["c", "d", "c", "d"]  # rolled back, then each in its savepoint
    assert [s for s in traced if s.startswith("SAVEPOINT")] == ["SAVEPOINT request"] * 3
    assert set(_committed(tmp_path / "db.sqlite")) == {"blocker", "a", "b", "c", "d"}


async def test_neighbours_of_one_kind_are_written_together_and_each_gets_its_value(
    writer: Writer, tmp_path: Path
) -> None:
    """Grouped requests next to each other share one call of their kind; another request
    between them splits the group, and a group of one runs the request's own function."""
    calls: list[list[str]] = []

    def many(conn: sqlite3.Connection, items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        conn.executemany("INSERT INTO rows (v, thread) VALUES (?, 'group')", [(i,) for i in items])
        return [f"{item} together" for item in items]

    gate, blocker = await _busy(writer)
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[str]] = []
    for value, grouped in [("a", True), ("b", True), ("c", False), ("d", True), ("e", True)]:
        futures.append(loop.create_future())
        group = Grouped(many, value) if grouped else None
        writer.enqueue(_insert(value), loop=loop, future=futures[-1], group=group)
    gate.set()
    await blocker
    values = await asyncio.gather(*futures)
    assert calls == [["a", "b"], ["d", "e"]]
    assert values == ["a together", "b together", WRITER_THREAD, "d together", "e together"]
    lone: asyncio.Future[str] = loop.create_future()
    writer.enqueue(_insert("f"), loop=loop, future=lone, group=Grouped(many, "f"))
    assert await lone == WRITER_THREAD
    assert calls == [["a", "b"], ["d", "e"]]
    committed = _committed(tmp_path / "db.sqlite")
    assert committed == {"blocker": WRITER_THREAD, "a": "group", "b": "group", "c": WRITER_THREAD,
                         "d": "group", "e": "group", "f": WRITER_THREAD}  # fmt: skip


async def test_a_group_that_fails_runs_again_each_request_alone(
    writer: Writer, tmp_path: Path
) -> None:
    """A repeat among them (say): what the group wrote is undone, and each request's own
    function decides for it, in its own savepoint."""

    def refused(conn: sqlite3.Connection, items: Sequence[str]) -> list[str]:
        conn.execute("INSERT INTO rows (v, thread) VALUES ('half', 'group')")
        raise sqlite3.IntegrityError("UNIQUE constraint failed")

    def broken(conn: sqlite3.Connection) -> str:
        raise ValueError("refused alone too")

    gate, blocker = await _busy(writer)
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[str]] = []
    for fn in (_insert("a"), broken, _insert("c")):
        futures.append(loop.create_future())
        writer.enqueue(fn, loop=loop, future=futures[-1], group=Grouped(refused, "x"))
    gate.set()
    await blocker
    await asyncio.wait(futures)
    assert futures[0].result() == futures[2].result() == WRITER_THREAD
    assert isinstance(futures[1].exception(), ValueError)
    assert set(_committed(tmp_path / "db.sqlite")) == {"blocker", "a", "c"}
