"""What survives a gateway restart in the middle of a PeSIT transfer, on disk under data_dir.

Receiving (`Spool`): one folder per transfer holds `meta.json` (who sends what, written once),
`data` (the bytes so far) and `points` (a log of durable sync points, each record with its
CRC, written over zeros laid ahead of it). A sync point is logged only after `data` is
fsynced up to it, and is fsynced before ACK(SYN) leaves: whatever the log says is on disk. On
resume, `data` is cut back to the last logged point and the peer restarts right after it.
A finished transfer keeps its `meta.json` alone for a while (`settle`): a restart of it is
still that transfer.

Sending (`Journal`): one small JSON file per outgoing message with its transfer id and the sync
points sent but maybe not yet acknowledged, replaced atomically; a restart offers them to the
server, which answers with the one it holds.

All methods block: callers run them through their `Offload`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from protocols.pesit.events import Position

__all__ = [
    "Journal",
    "PartialFile",
    "PushCheckpoint",
    "Spool",
    "SpoolMeta",
    "checked_key",
    "fsync_dir",
    "logged_points",
    "write_atomic",
]

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_RECORD = struct.Struct(">IQQI")  # point, byte offset, article offset, CRC-32 of the first 20
_BODY = _RECORD.size - 4
_IOV_MAX = 512  # buffers per writev (the system limit is at least 1024)
_DSYNC = getattr(os, "RWF_DSYNC", 0)  # Linux: a write that is also its own fdatasync
_HASH_BLOCK = 1 << 20
_LOG_AHEAD = 64 << 10  # zeroed log space written ahead: a record overwrites, never extends


def checked_key(key: str) -> str:
    if not _KEY.match(key) or key in {".", ".."}:
        raise ValueError(f"spool key {key!r} is not a plain name")
    return key


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Temp file, fsync, rename, fsync the folder: the old or the new content, never half."""
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)
    fsync_dir(path.parent)


def _make_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class SpoolMeta:
    """A transfer's identity; a restart resumes only a spool whose identity matches."""

    transfer_id: int
    file_name: str
    interface_code: str
    started: str  # when we first saw it (ISO UTC): part of the inbox's peer message id
    created: str | None = None  # PI 51 as sent
    label: str | None = None  # PI 37

    def same_transfer(self, other: SpoolMeta) -> bool:
        return (self.transfer_id, self.file_name, self.created) == (
            other.transfer_id,
            other.file_name,
            other.created,
        )


class PartialFile:
    """An open spooled transfer: append, make durable up to a sync point, read back.

    The thread that writes competes with the busy event loop for the interpreter lock each
    time a system call returns, so a durable append costs as few calls as the platform
    allows: a `pwritev` with RWF_DSYNC for the data, another for the log record. The bytes
    are hashed as they are written (`digest`), so a finished spool can be handed to an inbox
    that adopts the file instead of reading it back.
    """

    def __init__(self, folder: Path, meta: SpoolMeta, durable: Position) -> None:
        self.folder = folder
        self.meta = meta
        self.durable = durable
        self._data = os.open(folder / "data", os.O_RDWR)
        self._points = os.open(folder / "points", os.O_WRONLY)
        self._end = durable.byte_offset
        self._log_end = self._log_room = os.fstat(self._points).st_size
        self._dirty = False  # bytes written that no sync covered yet
        self._dsync = _DSYNC
        self._hash = hashlib.sha256()
        self._hashed = 0

    @property
    def path(self) -> Path:
        """The data file: complete and durable once the transfer's last pass is."""
        return self.folder / "data"

    @property
    def size(self) -> int:
        """Bytes appended so far (durable or not)."""
        return self._end

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of what `digest` was given: the whole file once it is all written."""
        if self._hashed != self._end:
            raise ValueError(f"{self._hashed} of {self._end} spooled bytes hashed")
        return self._hash.hexdigest()

    def digest(self, chunks: Iterable[bytes]) -> None:
        """Hash `chunks`, the bytes appended after those already hashed, in order."""
        for chunk in chunks:
            self._hash.update(chunk)
            self._hashed += len(chunk)

    def hash_prefix(self) -> None:
        """A resumed spool: hash what the earlier connections left (read once, at resume)."""
        while self._hashed < self._end:
            block = self.read(self._hashed, min(_HASH_BLOCK, self._end - self._hashed))
            if not block:
                raise OSError(f"spool data ends at {self._hashed} of {self._end} bytes")
            self.digest([block])

    def append(
        self, chunks: Sequence[bytes], position: Position | None = None, *, durable: bool = False
    ) -> None:
        """Write `chunks`; if `durable` or a `position` is given, everything written so far is
        on disk before `position` is logged, and the log record is on disk when this returns."""
        durable = durable or position is not None
        for start in range(0, len(chunks), _IOV_MAX):
            self._end += self._write(self._data, chunks[start : start + _IOV_MAX], self._end,
                                     sync=durable)  # fmt: skip
        if durable and self._dirty:
            os.fdatasync(self._data)
            self._dirty = False
        if position is not None:
            body = _RECORD.pack(position.point, position.byte_offset, position.article_offset, 0)
            record = body[:_BODY] + zlib.crc32(body[:_BODY]).to_bytes(4, "big")
            if self._log_end + len(record) > self._log_room:
                self._log_ahead()
            self._log_end += self._write(self._points, [record], self._log_end, sync=True)
            if self._dirty:  # the platform could not write it synchronously
                os.fdatasync(self._points)
                self._dirty = False
            self.durable = position

    def _log_ahead(self) -> None:
        """Zeros past the last record, on disk: a record written over them changes neither the
        log's size nor its blocks, so making it durable needs no journal commit of its own."""
        zeros = bytes(_LOG_AHEAD)
        written = 0
        while written < len(zeros):
            written += os.pwrite(self._points, zeros[written:], self._log_room + written)
        os.fdatasync(self._points)
        self._log_room += _LOG_AHEAD

    def _write(self, fd: int, chunks: Sequence[bytes], offset: int, *, sync: bool) -> int:
        """All of `chunks` at `offset`, synchronously if asked and possible; bytes written."""
        batch, total = list(chunks), 0
        while batch:
            flags = self._dsync if sync else 0
            try:
                written = os.pwritev(fd, batch, offset + total, flags)
            except OSError as exc:
                if not flags or exc.errno not in {errno.EINVAL, errno.EOPNOTSUPP}:
                    raise
                self._dsync = 0  # this file system does not take RWF_DSYNC: fsync instead
                continue
            total += written
            batch = _after(batch, written)
        if not (sync and self._dsync):
            self._dirty = self._dirty or total > 0
        return total

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._data, size, offset)

    def close(self) -> None:
        """Close both files; again is harmless (a closed number may be someone else's now)."""
        fds, (self._data, self._points) = (self._data, self._points), (-1, -1)
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _after(batch: list[bytes], written: int) -> list[bytes]:
    """What is left of `batch` once `written` bytes of it went out (a short write)."""
    while batch and written >= len(batch[0]):
        written -= len(batch.pop(0))
    if batch and written:
        batch[0] = batch[0][written:]
    return batch


class Spool:
    """One connection's receiving spool: `<root>/<key>/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def peek(self, key: str) -> SpoolMeta | None:
        """The identity of the transfer spooled under `key`, if a readable one is there."""
        try:
            raw = json.loads((self.root / checked_key(key) / "meta.json").read_text("utf-8"))
            return SpoolMeta(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def resume(self, key: str, meta: SpoolMeta) -> PartialFile | None:
        """The same transfer cut back to its last durable sync point, or None."""
        found = self.peek(key)
        if found is None or not found.same_transfer(meta):
            return None
        folder = self.root / key
        try:
            durable = _last_point(folder / "points")
            with (folder / "data").open("r+b") as data:
                if os.fstat(data.fileno()).st_size < durable.byte_offset:
                    return None  # the log claims more than the data holds: not ours to trust
                data.truncate(durable.byte_offset)
                os.fsync(data.fileno())
            partial = PartialFile(folder, found, durable)
        except OSError:
            return None
        try:
            partial.hash_prefix()
        except OSError:
            partial.close()
            return None
        return partial

    def create(self, key: str, meta: SpoolMeta) -> PartialFile:
        """A fresh spool for `meta`, replacing whatever `key` held."""
        self.discard(key)
        folder = self.root / checked_key(key)
        _make_dir(self.root)
        folder.mkdir()
        fsync_dir(self.root)
        (folder / "data").touch()
        (folder / "points").touch()
        write_atomic(folder / "meta.json", json.dumps(asdict(meta), sort_keys=True))
        return PartialFile(folder, meta, Position())

    def discard(self, key: str) -> None:
        folder = self.root / checked_key(key)
        if folder.exists():
            shutil.rmtree(folder)
            fsync_dir(self.root)

    def settle(self, key: str) -> None:
        """The transfer is over and its file handed on: its bytes go, its identity stays (until
        `prune`), so that a restart of the same transfer (a sender that crashed before it heard
        the answer) is known as that transfer, not taken for a new one."""
        folder = self.root / checked_key(key)
        for name in ("data", "points"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        if folder.is_dir():
            fsync_dir(folder)

    def prune(self, *, older_than: float, now: float) -> list[str]:
        """Forget transfers untouched for `older_than` seconds: no restart is coming."""
        if not self.root.is_dir():
            return []
        gone = []
        for folder in self.root.iterdir():
            if folder.is_dir() and _KEY.match(folder.name):
                stamps = [p.stat().st_mtime for p in (folder, *folder.iterdir())]
                if now - max(stamps) > older_than:
                    self.discard(folder.name)
                    gone.append(folder.name)
        return gone


def logged_points(path: Path) -> list[Position]:
    """The intact records of a points log, in order, up to the first torn, flipped or zeroed
    one (a crash mid-append, or the zeroed space written ahead of the records)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    found: list[Position] = []
    last = Position()
    for start in range(0, len(raw) - _RECORD.size + 1, _RECORD.size):
        point, byte_offset, article_offset, crc = _RECORD.unpack_from(raw, start)
        body = raw[start : start + _BODY]
        if zlib.crc32(body) != crc or point <= last.point or byte_offset < last.byte_offset:
            break
        last = Position(point, byte_offset, article_offset)
        found.append(last)
    return found


def _last_point(path: Path) -> Position:
    """The last intact record of the log; what follows it (torn, or zeroed) is cut."""
    found = logged_points(path)
    good = len(found) * _RECORD.size
    if path.stat().st_size != good:
        with path.open("r+b") as log:
            log.truncate(good)
            os.fsync(log.fileno())
    return found[-1] if found else Position()


@dataclass(frozen=True, slots=True)
class PushCheckpoint:
    """A push in progress: its transfer id and the sync points a restart may resume from.

    `on_grid`: every point sent so far fell on the predicted grid, which a restart may
    then offer too (what a crash, which saves nothing, leaves to go on with).
    """

    transfer_id: int
    size: int
    positions: tuple[Position, ...] = ()
    on_grid: bool = True


class Journal:
    """One connection's outgoing pushes in progress: `<root>/<key>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def load(self, key: str) -> PushCheckpoint | None:
        try:
            raw = json.loads((self.root / f"{checked_key(key)}.json").read_text("utf-8"))
            positions = tuple(Position(*p) for p in raw["positions"])
            on_grid = raw.get("on_grid") is True
            return PushCheckpoint(int(raw["transfer_id"]), int(raw["size"]), positions, on_grid)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save(self, key: str, checkpoint: PushCheckpoint) -> None:
        _make_dir(self.root)
        raw = {
            "transfer_id": checkpoint.transfer_id,
            "size": checkpoint.size,
            "positions": [[p.point, p.byte_offset, p.article_offset] for p in checkpoint.positions],
            "on_grid": checkpoint.on_grid,
        }
        write_atomic(self.root / f"{checked_key(key)}.json", json.dumps(raw))

    def clear(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{checked_key(key)}.json").unlink()
