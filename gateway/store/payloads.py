"""The content-addressed payload directory `<root>/payloads/ab/<sha256>` (blocking code).

A payload is streamed to `payloads/tmp/`, renamed into place, then the file and its bucket
directory are fsynced *before* the row that names it is committed, so a row never points at
nothing. Renaming first lets one journal commit carry the data and the new name (the directory
fsync then finds little left to write); a name placed but not yet fsynced is referenced by no
row, and the sweep after a crash removes it. Everything here blocks: callers run it in the
offload pool or the writer thread.

One level of 256 buckets, as git lays out its objects: each bucket is created (and made durable
in `payloads/`) the first time it is used, so in a running store an accept creates no directory
and pays one directory fsync instead of up to three, and no inode allocation besides its own
file. Each bucket is opened once and kept open: the rename goes into that descriptor's directory
(`renameat`) and its fsync is of that same descriptor, so an accept opens and closes no
directory, and a bucket removed by hand cannot leave a rename synced in the wrong place. A store
written with the earlier two levels (`ab/cd/<sha256>`) is moved to this layout the first time
it opens.

Where the file system allows it (`O_TMPFILE` and `/proc`, probed when the store opens), a temp
file has no name at all until it is linked into its bucket: nothing is created in `tmp/` and
removed again, no rename crosses two directories (the kernel serialises those file system
wide), the link itself refuses to overwrite a payload already there (no look first), and a
process that dies leaves nothing behind (after a power loss, the file system's recovery, or
fsck without a journal, frees what was never linked). Elsewhere temps are named files in
`tmp/`, and the next open removes those a crash left.

Pins close the one race content addressing has: a payload placed for a submission that turned
out to be a duplicate may be removed only if no row references it and no other in-flight
submission placed the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.store import StoreError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BUCKETS = tuple(f"{n:02x}" for n in range(256))
_BUCKET_SET = frozenset(_BUCKETS)
_LAYOUT_MARK = "layout-one-level"  # present once the store is known to hold no `ab/cd/` files
_TEMP_SUFFIX = ".part"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux only


def _open_unnamed(directory: str) -> int:
    """A new file without a name in `directory`'s file system (`O_TMPFILE`)."""
    return os.open(directory, os.O_WRONLY | _TMPFILE | _CLOEXEC, 0o600)


def _link_unnamed(fd: int, name: str, directory: int) -> None:
    """Give the unnamed file open as `fd` its first name; FileExistsError if it is taken."""
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=directory, follow_symlinks=True)


def unnamed_temps_work(directory: Path) -> bool:
    """Whether temps can be unnamed files in `directory`: one is made, linked, removed."""
    if not _TMPFILE:
        return False
    probe = f".probe-{secrets.token_hex(8)}"
    try:
        fd = _open_unnamed(str(directory))
    except OSError:  # EOPNOTSUPP, EISDIR (kernel or file system without O_TMPFILE)...
        return False
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            _link_unnamed(fd, probe, dir_fd)
            os.unlink(probe, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # no /proc mounted, or linking refused
        return False
    finally:
        os.close(fd)
    return True


def _size_at(name: str, directory: int) -> int | None:
    try:
        return os.stat(name, dir_fd=directory).st_size
    except FileNotFoundError:
        return None


def _fsync_at(name: str, directory: int) -> None:
    """Make a file someone else wrote durable (its bytes may still be only in the page cache)."""
    fd = os.open(name, os.O_RDONLY | _CLOEXEC, dir_fd=directory)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class Spooled:
    """A complete temp file and what it holds (durable only once placed)."""

    temp: str  # a plain string: the accept path builds no `Path` objects (they cost)
    sha256: str
    size: int


class SpoolFile:
    """One temp file being written; hashing happens here, off the event loop.

    A lock orders the writers of one file (flushes, the final seal, an abort): an abort waits
    for a write in progress, and a write that comes after an abort is refused instead of
    creating the temp file again. An `unnamed` temp is made without a name in the directory
    of `name`, and gets its name only when it is placed (or adopts a file under `name`).
    """

    def __init__(self, name: str, *, unnamed: bool = False) -> None:
        self.name = name  # the full path, as a string
        self.unnamed = unnamed
        self._fd: int | None = None
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._aborted = False
        self.size = 0

    def _open(self) -> int:
        if self._aborted:
            raise StoreError("the payload was abandoned")
        if self._fd is None:
            if self.unnamed:
                self._fd = _open_unnamed(os.path.dirname(self.name))
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
                self._fd = os.open(self.name, flags, 0o600)
        return self._fd

    def write_all(self, chunks: Sequence[bytes]) -> None:
        """Append `chunks` in order and hash them: one hash update and one write per batch.

        Each call that lets go of the GIL (hashing a large buffer, a write) must win it back,
        and while the event loop is busy that can take up to the interpreter's switch
        interval (5 ms). Per chunk, those waits capped a 100 MB SFTP upload near 190 MB/s;
        joining the batch first (a memory copy) leaves two per batch.
        """
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        with self._lock:
            fd = self._open()
            if not data:
                return
            self._hash.update(data)
            view = memoryview(data)
            while view:  # a short write: the rest goes next time
                written = os.write(fd, view)
                self.size += written
                view = view[written:]

    def sync_data(self) -> None:
        """Push what is written so far to disk, so that the final fsync has little left to do.

        Runs beside the writes, not between them: the descriptor is duplicated under the lock
        and synced outside it, so a write (or an abort closing the file) never waits for the
        disk, and the sync never touches a descriptor number reused by someone else.
        """
        with self._lock:
            if self._fd is None or self._aborted:
                return
            fd = os.dup(self._fd)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def adopt(self, source: Path) -> None:
        """Take over `source`, a complete file on this file system (EXDEV otherwise), as this
        temp's content: renamed here, opened for the fsync that places it."""
        with self._lock:
            if self._fd is not None or self._aborted:
                raise StoreError("the temp file is already in use")
            self.unnamed = False
            os.replace(source, self.name)
            self._fd = os.open(self.name, os.O_RDONLY | _CLOEXEC)
            self.size = os.fstat(self._fd).st_size

    def seal(self) -> Spooled:
        """Every byte is written: the digest. The file stays open until it is placed."""
        with self._lock:
            self._open()
            return Spooled(self.name, self._hash.hexdigest(), self.size)

    def link(self, name: str, directory: int) -> None:
        """Give an unnamed temp its name `name` in `directory` (FileExistsError if taken)."""
        with self._lock:
            if self._fd is None or not self.unnamed:
                raise StoreError("not an open unnamed temp file")
            _link_unnamed(self._fd, name, directory)

    def name_it(self) -> None:
        """Give an unnamed temp its temp name, to be placed like a named temp."""
        with self._lock:
            if self._fd is None or not self.unnamed:
                raise StoreError("not an open unnamed temp file")
            directory, base = os.path.split(self.name)
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
            try:
                _link_unnamed(self._fd, base, dir_fd)
            finally:
                os.close(dir_fd)
            self.unnamed = False

    def sync_and_close(self) -> None:
        """fsync and close: the bytes (under whatever name they now have) are durable."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                raise StoreError("the payload file is already closed")
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def abort(self) -> None:
        """Close and remove whatever was written; safe to call more than once."""
        with self._lock:
            self._aborted = True
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)
            if not self.unnamed:  # an unnamed file is gone with its last descriptor
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.name)


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
        flags = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
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

        The rename comes before the fsyncs: one barrier then carries the bytes and the name.
        A payload already present with the same size is not rewritten (the temp is dropped)
        but fsynced, because the rename we found may be another submission's whose bytes are
        not durable yet; a present file of another size (damage) is replaced only once our
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
            if _size_at(sha256, bucket) == spooled.size:  # the same bytes: keep theirs
                file.abort()
                _fsync_at(sha256, bucket)
                return bucket
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
            file.abort()
            _fsync_at(sha256, bucket)
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
