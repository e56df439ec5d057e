"""The content-addressed payload directory `<root>/payloads/ab/cd/<sha256>` (blocking code).

A payload is streamed to `payloads/tmp/`, fsynced, renamed into place and its directory
fsynced *before* the row that names it is committed, so a row never points at nothing.
Everything here blocks: callers run it in the offload pool or the writer thread.

Pins close the one race content addressing has: a payload placed for a submission that turned
out to be a duplicate may be removed only if no row references it and no other in-flight
submission placed the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.store import StoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_SUFFIX = ".part"


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir_durable(path: Path) -> None:
    """Create `path` if missing; a directory we created is made durable in its parent."""
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class Spooled:
    """A complete, fsynced temp file and what it holds."""

    temp: Path
    sha256: str
    size: int


class SpoolFile:
    """One temp file being written; hashing happens here, off the event loop."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{secrets.token_hex(16)}{_TEMP_SUFFIX}"
        self._fd: int | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append `data` (creating the file on first use) and hash it."""
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> Spooled:
        """fsync and close; the temp is complete and durable once this returns."""
        if self._fd is None:
            self.write(b"")
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return Spooled(self.path, self._hash.hexdigest(), self.size)

    def abort(self) -> None:
        """Close and remove whatever was written; safe to call more than once."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self.path.unlink(missing_ok=True)


class PayloadDir:
    """Where payload bytes live, by sha256."""

    def __init__(self, root: Path) -> None:
        self.base = root / "payloads"
        self.tmp = self.base / "tmp"
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()

    def prepare(self) -> int:
        """Create the layout and remove temp files a crash left; returns how many."""
        _mkdir_durable(self.base)
        _mkdir_durable(self.tmp)
        removed = 0
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def path_for(self, sha256: str) -> Path:
        """The final path of a payload; refuses anything that is not a lowercase sha256."""
        if not _SHA256.fullmatch(sha256):
            raise StoreError(f"not a sha256 digest: {sha256!r}")
        return self.base / sha256[:2] / sha256[2:4] / sha256

    def new_spool(self) -> SpoolFile:
        """A temp file in the same filesystem as its final place (rename stays atomic)."""
        return SpoolFile(self.tmp)

    def place(self, spooled: Spooled) -> None:
        """Move a finished temp to its final path and pin it; durable when this returns.

        A payload already present with the same size is not rewritten: the temp is dropped.
        The directory is fsynced either way, because the rename we found may be someone
        else's that is not yet durable.
        """
        final = self.path_for(spooled.sha256)
        with self._lock:  # pinned first: a discard can no longer remove what we find below
            self._pins[spooled.sha256] += 1
        try:
            _mkdir_durable(final.parent.parent)
            _mkdir_durable(final.parent)
            try:
                present = final.stat().st_size == spooled.size
            except FileNotFoundError:
                present = False
            if present:
                spooled.temp.unlink(missing_ok=True)
            else:
                os.replace(spooled.temp, final)
            fsync_dir(final.parent)
        except BaseException:
            self.unpin(spooled.sha256)
            raise

    def unpin(self, sha256: str) -> None:
        """The submission that placed `sha256` is settled (recorded or refused)."""
        with self._lock:
            self._pins[sha256] -= 1
            if self._pins[sha256] <= 0:
                del self._pins[sha256]

    def discard_if_unreferenced(self, sha256: str, *, referenced: Callable[[str], bool]) -> bool:
        """Remove a payload we placed for nothing; the caller still holds its own pin.

        Holding the lock from the check to the unlink means a concurrent `place` of the same
        bytes either pinned before (we keep the file) or pins after (it finds no file and
        renames its own temp into place).
        """
        with self._lock:
            if self._pins[sha256] > 1 or referenced(sha256):
                return False
            self.path_for(sha256).unlink(missing_ok=True)
            return True

    def sweep(self, *, referenced: Callable[[str], bool]) -> int:
        """After a crash: remove payloads no row references (placed, never committed)."""
        removed = 0
        for first in sorted(self.base.iterdir()):
            if first == self.tmp or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                for path in second.iterdir() if second.is_dir() else ():
                    if _SHA256.fullmatch(path.name) and not referenced(path.name):
                        path.unlink(missing_ok=True)
                        removed += 1
        return removed

    def temp_files(self) -> list[Path]:
        """Temp files currently present (tests and the crash checker look)."""
        return sorted(self.tmp.iterdir()) if self.tmp.is_dir() else []
