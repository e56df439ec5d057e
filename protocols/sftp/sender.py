"""Send one flow to AIFE's SFTP server: temporary name, then rename to the final name.

The file is written as `<name><temp_suffix>` in the code's remote directory and renamed only
when complete, so AIFE never picks up half a file. After a broken connection the next attempt
reconnects and resumes the temporary file where the server has it (names carry our message id,
so a temporary file of that name can only hold a prefix of the same payload); a final file
already present with the right size means an earlier attempt got through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import asyncssh
import structlog

from protocols.errors import PermanentSendError, TransientSendError
from protocols.sftp.client import ClientParams, connect
from protocols.sftp.paths import PathRefused, check_name

_log = structlog.get_logger(module=__name__)
BLOCK = 64 << 10
RESUME_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the file landed and how it got there."""

    remote_path: str
    size: int
    resumed_from: int
    already_there: bool


class SftpSender:
    """One connection's uploader; keeps its SSH connection open between files."""

    def __init__(self, params: ClientParams) -> None:
        self._params = params
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()

    async def send_file(self, payload: Path, *, file_name: str, interface_code: str) -> Delivered:
        """Upload `payload` as `file_name`; TransientSendError when it may work later."""
        try:
            check_name(file_name)
        except PathRefused as exc:
            raise PermanentSendError(f"cannot send as {file_name!r}: {exc.reason}") from None
        directory = self._params.directory(interface_code)
        final = posixpath.join(directory, file_name)
        async with self._lock:
            try:
                return await self._send(payload, final)
            except (OSError, asyncssh.Error) as exc:
                await self.close()
                raise TransientSendError(self._explain(exc, final)) from None

    def _explain(self, exc: BaseException, final: str) -> str:
        where = f"{self._params.host}:{self._params.port}"
        if isinstance(exc, asyncssh.SFTPError):
            return f"{self._params.connection}: {where} refused {final}: {exc.reason}"
        if isinstance(exc, asyncssh.Error):
            return f"{self._params.connection}: connection to {where} broke: {exc.reason}"
        return f"{self._params.connection}: {final}: {exc}"

    async def _client(self) -> asyncssh.SFTPClient:
        if self._conn is not None and self._sftp is not None and not self._conn.is_closed():
            return self._sftp
        await self.close()
        self._conn = await connect(self._params)
        try:
            self._sftp = await self._conn.start_sftp_client()
        except asyncssh.Error:
            await self.close()
            raise
        return self._sftp

    async def _send(self, payload: Path, final: str) -> Delivered:
        size = await asyncio.to_thread(os.path.getsize, payload)
        sftp = await self._client()
        if await _size_of(sftp, final) == size:
            return Delivered(final, size, resumed_from=size, already_there=True)
        temp = final + self._params.temp_suffix
        start = await _size_of(sftp, temp)
        if start is None or start > size:
            start = 0
        if start == 0:
            await sftp.put(str(payload), temp, block_size=BLOCK, max_requests=64)
        else:
            await _append(sftp, payload, temp, start=start)
        if await _size_of(sftp, temp) != size:
            raise TransientSendError(f"{temp}: the server holds a different size than sent")
        await _rename(sftp, temp, final)
        _log.info(
            "sftp.sent",
            connection=self._params.connection,
            remote_path=final,
            size=size,
            resumed_from=start,
        )
        return Delivered(final, size, resumed_from=start, already_there=False)

    async def close(self) -> None:
        """Drop the SSH connection (the next send reconnects)."""
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()


async def _size_of(sftp: asyncssh.SFTPClient, path: str) -> int | None:
    try:
        attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return None
    return attrs.size


async def _append(sftp: asyncssh.SFTPClient, payload: Path, temp: str, *, start: int) -> None:
    """Resume a temporary file from `start` (what the server already holds)."""
    loop = asyncio.get_running_loop()
    with payload.open("rb") as source:
        async with sftp.open(temp, "r+b") as target:
            offset = start
            while True:
                data = await loop.run_in_executor(None, _pread, source, offset)
                if not data:
                    break
                await target.write(data, offset)
                offset += len(data)


def _pread(source: BinaryIO, offset: int) -> bytes:
    return os.pread(source.fileno(), RESUME_BLOCK, offset)


async def _rename(sftp: asyncssh.SFTPClient, temp: str, final: str) -> None:
    """Atomic replace where the server offers it (OpenSSH), plain rename otherwise."""
    try:
        await sftp.posix_rename(temp, final)
    except asyncssh.SFTPOpUnsupported:
        await sftp.rename(temp, final)
