"""Crash anywhere, restart, and nothing acknowledged is lost.

A child process (crash_child.py) accepts payloads with several concurrent producers and prints
each receipt only after `accept` returned. It is SIGKILLed at random moments, 50 times, on the
same directory. After each kill the raw files are checked from outside (fresh sqlite3, plain
file reads), then the store is reopened the normal way, which must clean up what the crash left.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from gateway.store import open_store
from tests.store.conftest import payload_files, temp_files

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 50
SEED = 20260901


class Child:
    """One run of the child process and the lines it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready = asyncio.Event()
        self.acks: list[tuple[str, str]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # a line cut by the kill was never a complete promise
            words = raw.decode().split()
            if words == ["READY"]:
                self.ready.set()
            elif len(words) == 3 and words[0] == "ACK":
                self.acks.append((words[1], words[2]))


async def spawn(root: Path, seed: int, stderr: Path) -> Child:
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.store.crash_child",
            str(root),
            str(seed),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    return Child(proc)


def payload_path(root: Path, sha256: str) -> Path:
    return root / "payloads" / sha256[:2] / sha256


def check_crashed_state(root: Path, acked: dict[str, str], fresh: set[str]) -> None:
    """The store as the crash left it, seen from outside."""
    with closing(sqlite3.connect(root / "raccord.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = dict(conn.execute("SELECT id, sha256 FROM messages").fetchall())
        accepted = {
            r[0] for r in conn.execute("SELECT message_id FROM events WHERE kind = 'accepted'")
        }
        mismatched = conn.execute(
            """SELECT m.id FROM messages m WHERE m.state != (
                 SELECT e.state FROM events e WHERE e.message_id = m.id AND e.state IS NOT NULL
                 ORDER BY e.seq DESC LIMIT 1)"""
        ).fetchall()
    for message_id, sha256 in acked.items():
        assert rows.get(message_id) == sha256, f"acknowledged {message_id} lost"
        assert message_id in accepted, f"{message_id} has no 'accepted' event"
    for message_id, sha256 in rows.items():
        assert payload_path(root, sha256).is_file(), f"row {message_id} without payload"
    for message_id in fresh:
        data = payload_path(root, acked[message_id]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == acked[message_id]
    assert mismatched == [], "a state changed without its event"


async def reopen_and_check(root: Path) -> int:
    """Restart the normal way: temps cleaned, orphans swept, interrupted sends requeued."""
    store = await open_store(root)
    try:
        assert temp_files(root) == []
        with closing(sqlite3.connect(root / "raccord.db")) as conn:
            referenced = {r[0] for r in conn.execute("SELECT sha256 FROM messages")}
        assert {p.name for p in payload_files(root)} == referenced
        return await store.recover()
    finally:
        await store.close()


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random(SEED)
    acked: dict[str, str] = {}
    for round_no in range(ROUNDS):
        child = await spawn(root, round_no, tmp_path / f"child-{round_no}.err")
        if round_no % 7 == 3:  # sometimes kill during start-up: open, migrate, sweep, recover
            await asyncio.sleep(rng.uniform(0.0, 0.2))
        else:
            async with asyncio.timeout(30):
                await child.ready.wait()
            await asyncio.sleep(rng.uniform(0.01, 0.3))
        child.proc.send_signal(signal.SIGKILL)
        await child.proc.wait()
        await child.reader
        err = (tmp_path / f"child-{round_no}.err").read_text(errors="replace")
        assert child.proc.returncode == -signal.SIGKILL, err
        fresh = {mid for mid, _ in child.acks if mid not in acked}
        for message_id, sha256 in child.acks:
            assert acked.setdefault(message_id, sha256) == sha256
        check_crashed_state(root, acked, fresh)
        await reopen_and_check(root)
    assert len(acked) > 200, f"only {len(acked)} receipts: the children barely worked"
