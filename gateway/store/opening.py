"""Opening a store directory: exclusive lock, crash detection, migrations, clean-up.

A marker file says "a process has this store open". Found at open, it means the previous
process died without closing: its temp files are removed and payloads it placed but never
committed are swept. The flock makes a second daemon on the same directory fail loudly
instead of corrupting the single-writer assumptions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.store import StoreError
from gateway.store.payloads import PayloadDir, fsync_dir
from gateway.store.queries import is_referenced
from gateway.store.schema import connect, migrate

DB_NAME = "raccord.db"
LOCK_NAME = "store.lock"
MARKER_NAME = "store.open"


@dataclass(slots=True)
class StoreFiles:
    """What `open_files` found and holds: the lock, and what crash recovery did."""

    root: Path
    lock_fd: int
    version: int
    crashed: bool
    temps_removed: int
    orphans_removed: int

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    def release(self, *, clean: bool) -> None:
        """Drop the lock; `clean` also removes the marker (a normal close)."""
        if clean:
            (self.root / MARKER_NAME).unlink(missing_ok=True)
        if self.lock_fd >= 0:
            fd, self.lock_fd = self.lock_fd, -1
            os.close(fd)


def _lock(root: Path) -> int:
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"{root}: store is in use by another process") from exc
    return fd


def open_files(root: Path, payloads: PayloadDir, *, now: str) -> StoreFiles:
    """Blocking: lock, detect a crash, prepare payloads, migrate, sweep after a crash."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the store directory ({exc})") from exc
    fd = _lock(root)
    try:
        marker = root / MARKER_NAME
        crashed = marker.exists()
        marker.touch()
        temps = payloads.prepare()
        conn = connect(root / DB_NAME)
        try:
            version = migrate(conn, now=now)
            orphans = 0
            if crashed:
                orphans = payloads.sweep(referenced=lambda sha: is_referenced(conn, sha))
        finally:
            conn.close()
        fsync_dir(root)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.close(fd)
        if isinstance(exc, sqlite3.Error | OSError):
            raise StoreError(f"{root}: cannot open the store ({exc})") from exc
        raise
    return StoreFiles(root, fd, version, crashed, temps, orphans)
