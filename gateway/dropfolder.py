"""The back office's drop folder: files for Chorus Pro taken through the same inbox port.

Layout: `<drop>/<environment>/<CODE>/<file>`, or `<drop>/<environment>/<CODE>_<file>`, where
environment is `qual` or `prod` and CODE an interface code (`FSO1100A`).

Rename-into-place protocol, for writers: write the file as `<name>.part` (or anywhere under
`<drop>/.tmp/`), close it, then rename it to its final name and place. A file ending in `.part`,
a hidden file (`.name`), and anything under `.tmp/`, `done/` or `rejected/` is never taken. As a
safety net for writers that do not follow the protocol, a file is only taken once its mtime is
`settle_seconds` old, and a file whose size changes while it is read is left for a later scan.

Outcome, once the gateway has the file durably (never before):
* accepted, or a repeat of a file already accepted: moved to `<drop>/done/<env>/<CODE>/<name>`
  beside `<name>.receipt.json` (message id, sha256, size, duplicate);
* refused: moved to `<drop>/rejected/<env>/<name>` beside `<name>.reason.json` (kind, reason,
  message id when the refusal was recorded);
* our side failed (disk, database): left in place and tried again at the next scan.
Symbolic links and special files are refused without being opened through: a link must never
let a writer make the gateway send a file the writer could not read itself.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from gateway import metrics
from gateway.interfaces import CODE_PATTERN
from gateway.logging import get_logger
from gateway.model import Environment, MessageState
from gateway.offload import run_blocking
from gateway.polling import PollingService
from gateway.store import Store
from protocols.ports import Accepted, InboxPort, Incoming, RefusalKind, TransferRefused

__all__ = ["Candidate", "DropFolder", "scan"]

log = get_logger(__name__)
SOURCE = "folder"
TEMP_DIR, DONE_DIR, REJECTED_DIR = ".tmp", "done", "rejected"
_SKIP_TOP = {TEMP_DIR, DONE_DIR, REJECTED_DIR}
_ENVIRONMENTS = {e.value for e in Environment}
_CHUNK = 1 << 20
_RETRY_LATER = {RefusalKind.UNAVAILABLE, RefusalKind.TRUNCATED}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A complete-looking file; `problem` is a refusal known before reading it."""

    path: Path
    environment: str | None
    code: str
    mtime: float
    problem: str | None = None
    kind: RefusalKind = RefusalKind.INVALID


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(".part")


def _entry(path: Path, env: str | None, code: str, now: float, settle: float) -> Candidate | None:
    """A candidate for `path` if it is settled; links and special files carry their refusal."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if now - info.st_mtime < settle:
        return None
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "symbolic links are refused: drop the file itself"
    elif not stat.S_ISREG(info.st_mode):
        problem = "not a regular file"
    elif env is None:
        problem = "files go under <drop>/<environment>/ (qual or prod)"
    elif not code:
        problem = "no interface code: use <env>/<CODE>/<file> or a <CODE>_ name prefix"
    return Candidate(path, env, code, info.st_mtime, problem)


def _code_prefix(name: str) -> str:
    head, sep, _ = name.partition("_")
    return head if sep and CODE_PATTERN.match(head) else ""


def _scan_env(directory: Path, env: str, now: float, settle: float) -> list[Candidate]:
    found: list[Candidate] = []
    for entry in os.scandir(directory):
        path = Path(entry.path)
        if _ignored(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            found.extend(_scan_code(path, env, entry.name, now, settle))
            continue
        candidate = _entry(path, env, _code_prefix(entry.name), now, settle)
        if candidate is not None:
            found.append(candidate)
    return found


def _scan_code(directory: Path, env: str, code: str, now: float, settle: float) -> list[Candidate]:
    found: list[Candidate] = []
    for entry in os.scandir(directory):
        if _ignored(entry.name) or entry.is_dir(follow_symlinks=False):
            continue
        candidate = _entry(Path(entry.path), env, code, now, settle)
        if candidate is not None and candidate.problem is None and not CODE_PATTERN.match(code):
            problem = f"{code[:40]!a} is not an interface code (3 letters, 4 digits, 1 letter)"
            candidate = replace(candidate, problem=problem, kind=RefusalKind.UNKNOWN_CODE)
        if candidate is not None:
            found.append(candidate)
    return found


def scan(root: Path, *, now: float, settle: float, limit: int = 500) -> list[Candidate]:
    """Blocking: the settled files of the drop folder, oldest first, at most `limit`."""
    found: list[Candidate] = []
    for entry in os.scandir(root):
        if _ignored(entry.name) or entry.name in _SKIP_TOP:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if entry.name in _ENVIRONMENTS:
                found.extend(_scan_env(path, entry.name, now, settle))
            continue
        candidate = _entry(path, None, "", now, settle)
        if candidate is not None:
            found.append(candidate)
    found.sort(key=lambda c: (c.mtime, str(c.path)))
    return found[:limit]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move(source: Path, directory: Path, note: Mapping[str, object], suffix: str) -> Path:
    """Blocking: move `source` into `directory` (never over another file) with its note."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    counter = 1
    while target.exists() or target.is_symlink():
        target = directory / f"{source.name}.{counter}"
        counter += 1
    note_path = directory / f"{target.name}{suffix}"
    note_path.write_text(json.dumps(dict(note), indent=2, ensure_ascii=False, default=str) + "\n")
    os.rename(source, target)
    _fsync_dir(directory)
    _fsync_dir(source.parent)
    return target


def _open_regular(path: Path) -> tuple[int, int]:
    """Blocking: open without following a link; refuse anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd, info.st_size


async def _chunks(fd: int) -> AsyncIterator[bytes]:
    while chunk := await run_blocking(os.read, fd, _CHUNK):
        yield chunk


class DropFolder(PollingService):
    """Scans the drop folder and hands each complete file to the inbox port, in order."""

    def __init__(
        self,
        root: Path,
        *,
        port: InboxPort,
        store: Store,
        poll_interval: float = 2.0,
        settle_seconds: float = 1.0,
    ) -> None:
        super().__init__(name="drop-folder", interval=poll_interval)
        self._root = root
        self._port = port
        self._store = store
        self._settle = settle_seconds

    async def start(self) -> None:
        """Create the layout so writers see where files go, then start scanning."""
        await run_blocking(self._prepare)
        await super().start()

    def _prepare(self) -> None:
        for name in (*sorted(_ENVIRONMENTS), TEMP_DIR, DONE_DIR, REJECTED_DIR):
            (self._root / name).mkdir(parents=True, exist_ok=True)

    async def cycle(self) -> float | None:
        found = await run_blocking(scan, self._root, now=time.time(), settle=self._settle)
        for candidate in found:
            await self.take(candidate)
        return None

    async def take(self, candidate: Candidate) -> None:
        """One file: accepted and moved to done, refused and moved to rejected, or left."""
        if candidate.problem is not None:
            await self._reject(candidate, candidate.kind, candidate.problem, None)
            return
        started = time.perf_counter()
        try:
            fd, size = await run_blocking(_open_regular, candidate.path)
        except FileNotFoundError:
            return  # taken back by its writer
        except OSError as exc:
            await self._reject(candidate, RefusalKind.INVALID, f"cannot be read ({exc})", None)
            return
        try:
            accepted = await self._port.accept(_chunks(fd), self._incoming(candidate, size))
        except TransferRefused as exc:
            await self._refused(candidate, exc)
            return
        finally:
            await run_blocking(os.close, fd)
        metrics.PROCESSING_SECONDS.labels(SOURCE, "emission").observe(time.perf_counter() - started)
        await self._accepted(candidate, accepted)

    @staticmethod
    def _incoming(candidate: Candidate, size: int) -> Incoming:
        return Incoming(
            protocol=SOURCE,
            direction="emission",
            # per environment: the same file dropped for QUAL, then PROD, is two deliveries
            source=f"{SOURCE}:{candidate.environment}",
            interface_code=candidate.code,
            environment=candidate.environment,
            file_name=candidate.path.name,
            expected_size=size,
        )

    async def _refused(self, candidate: Candidate, exc: TransferRefused) -> None:
        if exc.kind in _RETRY_LATER:  # our side failed, or the file changed while read
            log.warning("drop_retry_later", file=str(candidate.path), reason=exc.reason)
            return
        await self._reject(candidate, exc.kind, exc.reason, exc.message_id)

    async def _accepted(self, candidate: Candidate, accepted: Accepted) -> None:
        message = await self._store.get(accepted.message_id)
        if message.state is MessageState.REJECTED:  # a repeat of a file refused earlier
            reason = f"same file as message {message.id}, refused: {message.last_error}"
            await self._reject(candidate, RefusalKind.INVALID, reason, message.id)
            return
        note = {
            "message_id": accepted.message_id,
            "sha256": accepted.sha256,
            "size": accepted.size,
            "duplicate": accepted.duplicate,
            "state": message.state.value,
        }
        where = self._root / DONE_DIR / (candidate.environment or "") / candidate.code
        moved = await run_blocking(_move, candidate.path, where, note, ".receipt.json")
        log.info("drop_accepted", file=str(moved), **note)

    async def _reject(
        self, candidate: Candidate, kind: RefusalKind, reason: str, message_id: str | None
    ) -> None:
        metrics.REFUSED.labels(SOURCE, "emission", kind.value).inc()
        note = {"kind": kind.value, "reason": reason, "message_id": message_id}
        where = self._root / REJECTED_DIR / (candidate.environment or "")
        try:
            moved = await run_blocking(_move, candidate.path, where, note, ".reason.json")
        except FileNotFoundError:
            return
        log.warning("drop_rejected", file=str(moved), **note)
