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
from gateway.store.schema import MIGRATIONS, connect, migrate, schema_version

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
    shared: bool = False  # opened beside a running daemon (CLI): no lock, no crash recovery

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    def release(self, *, clean: bool) -> None:
        """Drop the lock; `clean` also removes the marker (a normal close)."""
        if clean and not self.shared:
            (self.root / MARKER_NAME).unlink(missing_ok=True)
        if self.lock_fd >= 0:
            fd, self.lock_fd = self.lock_fd, -1
            os.close(fd)


class StoreBusy(StoreError):
    """Another process (the daemon) holds the store directory."""


def _lock(root: Path) -> int:
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreBusy(f"{root}: store is in use by another process") from exc
    return fd


def _open_shared(root: Path) -> StoreFiles:
    """Beside a running daemon: SQLite serialises writers across processes (BEGIN IMMEDIATE
    waits), so an operator's CLI may read and record changes; it never recovers, sweeps or
    migrates what the daemon owns."""
    try:
        conn = connect(root / DB_NAME)
        try:
            version = schema_version(conn)
            latest = MIGRATIONS[-1].version
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{root}: cannot open the store ({exc})") from exc
    if version != latest:
        raise StoreError(f"{root}: schema v{version} is not v{latest}; let the daemon migrate it")
    return StoreFiles(root, -1, version, False, 0, 0, shared=True)


def open_files(
    root: Path, payloads: PayloadDir, *, now: str, allow_shared: bool = False
) -> StoreFiles:
    """Blocking: lock, detect a crash, prepare payloads, migrate, sweep after a crash.

    With `allow_shared`, a store held by a running daemon is opened in shared mode instead.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{root}: cannot create the store directory ({exc})") from exc
    try:
        fd = _lock(root)
    except StoreBusy:
        if not allow_shared:
            raise
        return _open_shared(root)
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
