"""One SFTP session of an authenticated account: asyncssh hooks over the virtual jail.

Every filesystem hook asyncssh would otherwise run against the real disk is overridden here, so
a client can only reach what `paths.Jail` resolves. Deposits stream to the inbox port
(`upload.Upload`); collect directories list what the `Mailbox` offers, and a file read to its
last byte and closed is reported fetched. The client's CLOSE (or the rename of `x.part` to `x`)
is answered only once the file is durable; a session that ends first delivers nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncssh
import structlog

from protocols.ports import InboxPort, Incoming, TransferRefused
from protocols.sftp.answers import entry_attrs, sftp_error
from protocols.sftp.paths import (
    Area,
    Kind,
    Location,
    PathRefused,
    completion_name,
    require,
)
from protocols.sftp.ports import Account, Limits, Mailbox, Offered, SftpObserver
from protocols.sftp.ranges import Coverage
from protocols.sftp.refused import RefusedOperations
from protocols.sftp.upload import Upload

_log = structlog.get_logger(module=__name__)
_OPEN_FLAGS = asyncssh.FXF_READ | asyncssh.FXF_WRITE


@dataclass
class _Deposit:
    location: Location
    upload: Upload


@dataclass
class _Download:
    location: Location
    offered: Offered
    fd: int
    coverage: Coverage = field(default_factory=Coverage)


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What the listener hands each session of an account."""

    account: Account
    inbox: InboxPort
    mailbox: Mailbox
    observer: SftpObserver
    limits: Limits
    temp_suffixes: tuple[str, ...]
    touch: Callable[[], None]  # activity seen: the idle timer starts again
    uploads_changed: Callable[[int], None]  # +1 / -1 uploads in flight (drain on stop)
    spawn: Callable[[Coroutine[Any, Any, None]], None]  # background work the listener owns


class JailSession(RefusedOperations):
    """The hooks asyncssh calls for one SFTP channel; nothing touches the real filesystem."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], context: SessionContext) -> None:
        super().__init__(chan)
        self._ctx = context
        self._account = context.account
        self._jail = context.account.jail
        self._uploads: dict[str, Upload] = {}  # open or staged, by virtual path
        self._deposited: dict[str, tuple[int, float]] = {}  # completed here: size, time
        self._fetched: set[str] = set()
        self._log = _log.bind(account=self._account.name)

    # --- helpers ---------------------------------------------------------------------------

    def _resolve(self, path: bytes) -> Location:
        self._ctx.touch()
        try:
            return self._jail.resolve(path)
        except PathRefused as exc:
            raise sftp_error(exc) from None

    def _peer_gone(self) -> bool:
        """True when asyncssh closes our handles because the session ended (not a CLOSE)."""
        chan = self.channel
        return chan.is_closing() or getattr(chan, "_recv_state", "open") != "open"

    async def _offered(self, location: Location) -> dict[str, Offered]:
        assert location.code is not None
        found = await self._ctx.mailbox.offered(
            self._account.name, location.code, archived=location.archived
        )
        return {item.name: item for item in found}

    def _refused(self, exc: PathRefused | TransferRefused, location: Location) -> None:
        kind = exc.kind.value if isinstance(exc, TransferRefused) else "invalid"
        self._ctx.observer.refused(self._account.direction, kind)
        self._log.warning(
            "sftp.upload_refused",
            path=location.path,
            interface_code=location.code,
            kind=kind,
            reason=exc.reason,
            message_id=getattr(exc, "message_id", None),
        )

    # --- names and attributes ----------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        return self._resolve(path).path.encode("utf-8")

    async def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._stat(self._resolve(path))

    async def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return await self._stat(self._resolve(path))

    async def _stat(self, location: Location) -> asyncssh.SFTPAttrs:
        if location.is_dir:
            writable = location.kind is Kind.CODE_DIR and location.area is Area.DEPOSIT
            return entry_attrs(directory=True, writable=writable)
        if location.area is Area.DEPOSIT:
            upload = self._uploads.get(location.path)
            if upload is not None:
                return entry_attrs(
                    directory=False, writable=True, size=upload.size, mtime=time.time()
                )
            if location.path in self._deposited:
                size, when = self._deposited[location.path]
                return entry_attrs(directory=False, size=size, mtime=when)
            raise asyncssh.SFTPNoSuchFile(f"{location.path} does not exist")
        offered = (await self._offered(location)).get(location.name or "")
        if offered is None:
            raise asyncssh.SFTPNoSuchFile(f"{location.path} does not exist")
        return entry_attrs(directory=False, size=offered.size, mtime=offered.mtime)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        location = self._resolve(path)
        if not location.is_dir:
            raise asyncssh.SFTPNoSuchFile(f"{location.path} is not a directory")
        for name in (".", ".."):
            yield asyncssh.SFTPName(name.encode(), attrs=entry_attrs(directory=True))
        for child in self._jail.children(location):
            yield asyncssh.SFTPName(child.encode("utf-8"), attrs=entry_attrs(directory=True))
        for name, attrs in await self._files(location):
            yield asyncssh.SFTPName(name.encode("utf-8"), attrs=attrs)

    async def _files(self, location: Location) -> list[tuple[str, asyncssh.SFTPAttrs]]:
        if location.kind is Kind.CODE_DIR and location.area is Area.DEPOSIT:
            prefix = location.path + "/"
            found = [
                (p.removeprefix(prefix), entry_attrs(directory=False, writable=True, size=u.size))
                for p, u in self._uploads.items()
                if p.startswith(prefix)
            ]
            found += [
                (p.removeprefix(prefix), entry_attrs(directory=False, size=size, mtime=when))
                for p, (size, when) in self._deposited.items()
                if p.startswith(prefix)
            ]
            return sorted(found, key=lambda item: item[0])
        if location.kind in {Kind.CODE_DIR, Kind.ARCHIVE_DIR} and location.area is Area.COLLECT:
            offered = await self._offered(location)
            return [
                (name, entry_attrs(directory=False, size=o.size, mtime=o.mtime))
                for name, o in sorted(offered.items())
            ]
        return []

    # --- open / read / write / close --------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        location = self._resolve(path)
        if location.is_dir:
            raise asyncssh.SFTPPermissionDenied(f"{location.path} is a directory")
        if pflags & _OPEN_FLAGS == _OPEN_FLAGS:
            raise asyncssh.SFTPPermissionDenied("files open for reading or for writing, not both")
        if pflags & asyncssh.FXF_WRITE:
            return self._open_deposit(location, pflags)
        if pflags & asyncssh.FXF_READ:
            return await self._open_download(location)
        raise asyncssh.SFTPPermissionDenied("open needs read or write access")

    def _open_deposit(self, location: Location, pflags: int) -> _Deposit:
        try:
            require(location, kind=Kind.FILE, area=Area.DEPOSIT, action="write")
        except PathRefused as exc:
            raise sftp_error(exc) from None
        assert location.code is not None
        assert location.name is not None
        current = self._uploads.get(location.path)
        exists = current is not None or location.path in self._deposited
        if pflags & asyncssh.FXF_EXCL and exists:
            raise asyncssh.SFTPFileAlreadyExists(f"{location.path} already exists")
        if current is not None and not current.staged:
            raise asyncssh.SFTPFailure(f"{location.path} is already being uploaded")
        resume = current is not None and not pflags & asyncssh.FXF_TRUNC
        if current is not None and resume:
            current.staged = False
            return _Deposit(location, current)
        if not pflags & asyncssh.FXF_CREAT and current is None:
            raise asyncssh.SFTPNoSuchFile(f"{location.path} does not exist")
        if current is not None:
            self._drop(location.path, current, "replaced by a new upload")
        upload = self._start_upload(location)
        self._uploads[location.path] = upload
        self._ctx.uploads_changed(1)
        return _Deposit(location, upload)

    def _start_upload(self, location: Location) -> Upload:
        assert location.code is not None
        assert location.name is not None
        final = completion_name(location.name, self._ctx.temp_suffixes) or location.name
        incoming = Incoming(
            protocol="sftp",
            direction=self._account.direction,
            source=self._account.name,
            interface_code=location.code,
            connection=self._account.connection,
            environment=self._account.environment,
            file_name=final,
        )
        limits = self._ctx.limits
        return Upload(
            self._ctx.inbox,
            incoming,
            max_size=limits.max_file_size,
            window=limits.reorder_window,
            buffer=limits.stream_buffer,
        )

    def _drop(self, path: str, upload: Upload, reason: str) -> None:
        """Forget an upload and abort it in the background (its store temp is removed)."""
        if self._uploads.get(path) is upload:
            del self._uploads[path]
            self._ctx.uploads_changed(-1)
        self._ctx.spawn(upload.abort(reason))

    async def _open_download(self, location: Location) -> _Download:
        if location.kind is not Kind.FILE or location.area is not Area.COLLECT:
            raise asyncssh.SFTPPermissionDenied(f"cannot read {location.path}: deposit only")
        offered = (await self._offered(location)).get(location.name or "")
        if offered is None:
            raise asyncssh.SFTPNoSuchFile(f"{location.path} does not exist")
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(None, os.open, offered.path, os.O_RDONLY)
        except OSError:
            raise asyncssh.SFTPFailure(f"{location.path} cannot be read now") from None
        return _Download(location, offered, fd)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        self._ctx.touch()
        if not isinstance(file_obj, _Download):
            raise asyncssh.SFTPPermissionDenied("this file is open for writing only")
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, os.pread, file_obj.fd, size, offset)
        file_obj.coverage.add(offset, len(data))
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        self._ctx.touch()
        if not isinstance(file_obj, _Deposit):
            raise asyncssh.SFTPPermissionDenied("this file is open for reading only")
        upload = file_obj.upload
        first = upload.failure is None
        try:
            await upload.write(offset, data)
        except (PathRefused, TransferRefused) as exc:
            if first:  # reported once; later pipelined writes get the same answer
                self._refused(exc, file_obj.location)
                self._ctx.spawn(upload.abort("refused"))
            raise sftp_error(exc) from None
        return len(data)

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _Download):
            await self._close_download(file_obj)
        elif isinstance(file_obj, _Deposit):
            await self._close_deposit(file_obj)

    async def _close_download(self, download: _Download) -> None:
        os.close(download.fd)
        complete = download.coverage.covers(download.offered.size)
        if not complete or self._peer_gone() or download.location.archived:
            return
        await self._ctx.mailbox.fetched(self._account.name, download.offered)
        self._fetched.add(download.location.path)
        self._log.info(
            "sftp.fetched",
            message_id=download.offered.message_id,
            interface_code=download.location.code,
            size=download.offered.size,
        )

    async def _close_deposit(self, deposit: _Deposit) -> None:
        location, upload = deposit.location, deposit.upload
        if self._uploads.get(location.path) is not upload:
            return  # replaced or removed meanwhile: that upload was already dropped
        if upload.failure is not None:  # refused during a write: the close says so too
            self._drop(location.path, upload, "refused")
            raise sftp_error(upload.failure)
        if self._peer_gone():
            self._drop(location.path, upload, "the session ended before the upload completed")
            return
        assert location.name is not None
        if completion_name(location.name, self._ctx.temp_suffixes) is not None:
            upload.staged = True  # complete only once renamed to its final name
            return
        await self._complete(location.path, location, upload)

    async def _complete(self, key: str, location: Location, upload: Upload) -> None:
        del self._uploads[key]  # the name is free again; the drain still waits for durability
        try:
            accepted = await upload.complete()
        except (PathRefused, TransferRefused) as exc:
            self._refused(exc, location)
            raise sftp_error(exc) from None
        except Exception as exc:
            self._log.exception("sftp.upload_crashed", path=location.path)
            raise asyncssh.SFTPFailure("unavailable: the gateway failed; retry later") from exc
        finally:
            self._ctx.uploads_changed(-1)
            self._ctx.touch()
        self._deposited[location.path] = (accepted.size, time.time())
        seconds = time.monotonic() - upload.started
        self._ctx.observer.accepted(self._account.direction, seconds)
        self._log.info(
            "sftp.deposited",
            message_id=accepted.message_id,
            interface_code=location.code,
            connection=self._account.connection,
            size=accepted.size,
            duplicate=accepted.duplicate,
            seconds=round(seconds, 3),
        )

    # --- namespace changes ----------------------------------------------------------------------

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self._resolve(oldpath), self._resolve(newpath)
        upload = self._uploads.get(old.path)
        same_dir = old.area is Area.DEPOSIT and (old.area, old.code) == (new.area, new.code)
        final = completion_name(old.name or "", self._ctx.temp_suffixes)
        if upload is None or not upload.staged or not same_dir or final != new.name:
            raise asyncssh.SFTPPermissionDenied(
                "only a closed upload renamed from x.part to x in its own directory"
            )
        if new.path in self._deposited or new.path in self._uploads:
            raise asyncssh.SFTPFileAlreadyExists(f"{new.path} already exists")
        await self._complete(old.path, new, upload)

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self.rename(oldpath, newpath)

    async def remove(self, path: bytes) -> None:
        location = self._resolve(path)
        upload = self._uploads.get(location.path)
        if upload is not None and upload.staged:
            self._drop(location.path, upload, "removed by the client")
            return
        if location.path in self._fetched:
            return  # already reported fetched: removing it is the client's acknowledgement
        if location.kind is Kind.FILE and location.area is Area.COLLECT:
            raise asyncssh.SFTPPermissionDenied("download a file completely before removing it")
        raise asyncssh.SFTPPermissionDenied(f"cannot remove {location.path}")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile(f"{self._resolve(path).path} is not a symbolic link")

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        """Times and modes a client sets after an upload (`put -p`) are ignored; sizes are not."""
        if not isinstance(file_obj, _Deposit):
            raise asyncssh.SFTPPermissionDenied("attributes cannot be changed")
        if attrs.size is not None and attrs.size != file_obj.upload.size:
            raise asyncssh.SFTPPermissionDenied("an upload cannot be truncated or extended")

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        if isinstance(file_obj, _Deposit):
            return entry_attrs(directory=False, writable=True, size=file_obj.upload.size)
        if isinstance(file_obj, _Download):
            offered = file_obj.offered
            return entry_attrs(directory=False, size=offered.size, mtime=offered.mtime)
        raise asyncssh.SFTPInvalidHandle("unknown handle")

    async def exit(self) -> None:
        """The session ended: every upload not completed is dropped, nothing delivered."""
        for path, upload in list(self._uploads.items()):
            self._drop(path, upload, "the session ended before the upload completed")
