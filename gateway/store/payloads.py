"""The content-addressed payload directory `<root>/payloads/ab/<sha256>` (blocking code).

A payload is streamed to a temp file in `payloads/tmp/`, moved into place (linked when the
temp has no name, renamed otherwise), then the file and its bucket directory are fsynced
*before* the row that names it is committed, so a row never points at nothing. Moving first
lets one journal commit carry the data and the new name (the directory fsync then finds little
left to write); a name placed but not yet fsynced is referenced by no row, and the sweep after
a crash removes it. Everything here blocks: callers run it in the
offload pool or the writer thread.

One level of 256 buckets, as git lays out its objects: each bucket is created (and made durable
in `payloads/`) the first time it is used, so in a running store an accept creates no directory
and pays one directory fsync instead of up to three, and no inode allocation besides its own
file. Each bucket is opened once and kept open: the link or rename goes into that descriptor's
directory (`linkat`, `renameat`) and its fsync is of that same descriptor, so an accept opens
and closes no directory, and a bucket removed by hand cannot leave a name synced in the wrong
place. A store
written with the earlier two levels (`ab/cd/<sha256>`) is moved to this layout the first time
it opens.

Temps are written by `SpoolFile` (`tempfiles.py`), unnamed where the file system allows it.

Pins close the one race content addressing has: a payload placed for a submission that turned
out to be a duplicate may be removed only if no row references it and no other in-flight
submission placed the same bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gateway.store import StoreError
from gateway.store.tempfiles import CLOEXEC, Spooled, SpoolFile, unnamed_temps_work

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BUCKETS = tuple(f"{n:02x}" for n in range(256))
_BUCKET_SET = frozenset(_BUCKETS)
_LAYOUT_MARK = "layout-one-level"  # present once the store is known to hold no `ab/cd/` files
_TEMP_SUFFIX = ".part"


def _size_at(name: str, directory: int) -> int | None:
    try:
        return os.stat(name, dir_fd=directory).st_size
    except FileNotFoundError:
        return None


def _fsync_at(name: str, directory: int) -> None:
    """Make a file someone else wrote durable (its bytes may still be only in the page cache)."""
    fd = os.open(name, os.O_RDONLY | CLOEXEC, dir_fd=directory)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_theirs(file: SpoolFile, sha256: str, bucket: int) -> int:
    """The same bytes are already in place, maybe another submission's not yet durable: our
    temp is dropped and theirs fsynced. Returns the bucket, the one to fsync."""
    file.abort()
    _fsync_at(sha256, bucket)
    return bucket


def fsync_dir(path: str | Path) -> None:
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


def _create_durable(path: Path, data: bytes) -> None:
    """A small file and its name, both on disk when this returns."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


class PayloadDir:
    """Where payload bytes live, by sha256."""

    def __init__(self, root: Path) -> None:
        self.base = root / "payloads"
        self.tmp = self.base / "tmp"
        self._base = str(self.base)
        # Temp names: unique in this process by a counter, across processes by a random
        # prefix (only one process opens a store, but a crash leaves names behind).
        self._temp_prefix = f"{self.tmp}/{secrets.token_hex(8)}-"
        self._temp_count = itertools.count()
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._buckets: set[str] = set()  # bucket names known to exist durably
        self._bucket_fds: dict[str, int] = {}  # open buckets, by name
        self._retired: list[int] = []  # descriptors of buckets removed by hand, closed last
        self._closed = False
        self.unnamed_temps = False  # set by `prepare` when the file system allows them

    def prepare(self) -> int:
        """Create the layout and remove temp files a crash left; returns how many."""
        _mkdir_durable(self.base)
        _mkdir_durable(self.tmp)
        if not (self.base / _LAYOUT_MARK).exists():  # listing every bucket is once per store
            self._adopt_two_level()
            _create_durable(self.base / _LAYOUT_MARK, b"ab/<sha256>\n")
        fsync_dir(self.base)  # buckets a crash left unsynced are durable from here on
        with self._lock:
            self._buckets = {p.name for p in self.base.iterdir() if p.name in _BUCKET_SET}
        removed = 0
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        self.unnamed_temps = unnamed_temps_work(self.tmp)
        return removed

    def _bucket(self, name: str) -> None:
        """Make bucket `name` exist durably; after its first use in this process, nothing."""
        if name in self._buckets:
            return
        with contextlib.suppress(FileExistsError):
            (self.base / name).mkdir()
        fsync_dir(self.base)
        with self._lock:
            self._buckets.add(name)

    def _bucket_fd(self, name: str) -> int:
        """The open descriptor of bucket `name`, made (durably) and opened on first use."""
        fd = self._bucket_fds.get(name)
        if fd is not None:
            return fd
        self._bucket(name)
        flags = os.O_RDONLY | os.O_DIRECTORY | CLOEXEC
        fd = os.open(f"{self._base}/{name}", flags)
        with self._lock:
            if self._closed:
                os.close(fd)
                raise StoreError("the store is closed")
            known = self._bucket_fds.setdefault(name, fd)
        if known != fd:  # another thread opened it meanwhile
            os.close(fd)
        return known

    def _reopen_bucket(self, name: str, stale: int) -> int:
        """The bucket behind `stale` is gone (removed by hand): make it again, durably.

        The stale descriptor is kept open until `close`: another thread may be using it, and a
        closed number could be reused by an unrelated file meanwhile.
        """
        with self._lock:
            if self._bucket_fds.get(name) == stale:
                del self._bucket_fds[name]
                self._buckets.discard(name)
                self._retired.append(stale)
        return self._bucket_fd(name)

    def _rename_into_bucket(self, temp: str, sha256: str, bucket: int) -> int:
        """Rename into the open bucket; one removed by hand since is made again. Returns the
        descriptor of the bucket the name is in, the one to fsync."""
        try:
            os.replace(temp, sha256, dst_dir_fd=bucket)
        except FileNotFoundError:
            if not os.path.exists(temp):
                raise
            bucket = self._reopen_bucket(sha256[:2], bucket)
            os.replace(temp, sha256, dst_dir_fd=bucket)
        return bucket

    def close(self) -> None:
        """Close the bucket descriptors (the store is closing: no accept is in flight)."""
        with self._lock:
            self._closed = True
            fds = [*self._bucket_fds.values(), *self._retired]
            self._bucket_fds.clear()
            self._retired.clear()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _adopt_two_level(self) -> None:
        """Move payloads of the earlier `ab/cd/<sha256>` layout up one level, crash-safely.

        Each move is a rename within the bucket, made durable before the emptied directory
        is removed; a crash part-way leaves files in either place, and the next open finishes.
        """
        for name in _BUCKETS:
            bucket = self.base / name
            if not bucket.is_dir():
                continue
            nested = [d for d in bucket.iterdir() if d.is_dir() and len(d.name) == 2]
            for directory in nested:
                for path in directory.iterdir():
                    if _SHA256.fullmatch(path.name) and path.name.startswith(name):
                        os.replace(path, bucket / path.name)
                fsync_dir(bucket)
                with contextlib.suppress(OSError):  # not empty: a stranger's file stays
                    directory.rmdir()
            if nested:
                fsync_dir(bucket)

    def path_for(self, sha256: str) -> Path:
        """The final path of a payload; refuses anything that is not a lowercase sha256."""
        return Path(self._final(sha256))

    def _final(self, sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise StoreError(f"not a sha256 digest: {sha256!r}")
        return f"{self._base}/{sha256[:2]}/{sha256}"

    def new_spool(self) -> SpoolFile:
        """A temp file in the same filesystem as its final place (rename stays atomic)."""
        name = f"{self._temp_prefix}{next(self._temp_count):x}{_TEMP_SUFFIX}"
        return SpoolFile(name, unnamed=self.unnamed_temps)

    def place(self, spooled: Spooled, file: SpoolFile) -> None:
        """Move a sealed temp to its final path and pin it; durable when this returns.

        The link or rename comes before the fsyncs: one barrier then carries the bytes and the
        name. A payload already present with the same size is not rewritten (the temp is
        dropped) but fsynced, because the name we found may be another submission's whose
        bytes are not durable yet; a present file of another size (damage) is replaced only once our
        bytes are durable. A bucket removed by hand since the store opened is made again.
        """
        sha256 = spooled.sha256
        if not _SHA256.fullmatch(sha256):
            raise StoreError(f"not a sha256 digest: {sha256!r}")
        with self._lock:  # pinned first: a discard can no longer remove what we find below
            self._pins[sha256] += 1
        try:
            bucket = self._bucket_fd(sha256[:2])
            if file.unnamed:
                bucket = self._place_unnamed(spooled, file, bucket)
            else:
                bucket = self._place_named(spooled, file, bucket)
            os.fsync(bucket)
        except BaseException:
            self.unpin(sha256)
            raise

    def _place_unnamed(self, spooled: Spooled, file: SpoolFile, bucket: int) -> int:
        """Link the unnamed temp in, then fsync it; a name already taken is looked at as a
        named temp's would be. Returns the bucket's descriptor, the one to fsync."""
        sha256 = spooled.sha256
        try:
            try:
                file.link(sha256, bucket)
            except FileNotFoundError:  # the bucket was removed by hand: made again
                bucket = self._reopen_bucket(sha256[:2], bucket)
                file.link(sha256, bucket)
        except FileExistsError:
            if _size_at(sha256, bucket) == spooled.size:
                return _keep_theirs(file, sha256, bucket)
            file.name_it()  # damage, or gone meanwhile: placed under a name, as named temps are
            return self._place_named(spooled, file, bucket)
        file.sync_and_close()
        return bucket

    def _place_named(self, spooled: Spooled, file: SpoolFile, bucket: int) -> int:
        """Rename the named temp in unless the same bytes are there; returns the bucket's
        descriptor, the one to fsync."""
        sha256 = spooled.sha256
        present = _size_at(sha256, bucket)
        if present is None:
            bucket = self._rename_into_bucket(spooled.temp, sha256, bucket)
            file.sync_and_close()
        elif present == spooled.size:
            _keep_theirs(file, sha256, bucket)
        else:
            file.sync_and_close()
            bucket = self._rename_into_bucket(spooled.temp, sha256, bucket)
        return bucket

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
        moves its own temp into place).
        """
        with self._lock:
            if self._pins[sha256] > 1 or referenced(sha256):
                return False
            self.path_for(sha256).unlink(missing_ok=True)
            return True

    def sweep(self, *, referenced: Callable[[str], bool]) -> int:
        """After a crash: remove payloads no row references (placed, never committed)."""
        removed = 0
        for name in _BUCKETS:
            bucket = self.base / name
            for path in sorted(bucket.iterdir()) if bucket.is_dir() else ():
                if _SHA256.fullmatch(path.name) and not referenced(path.name):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def temp_files(self) -> list[Path]:
        """Temp files currently present (tests and the crash checker look)."""
        return sorted(self.tmp.iterdir()) if self.tmp.is_dir() else []
