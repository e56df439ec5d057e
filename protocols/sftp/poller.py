"""Polling AIFE's SFTP server for return flows, when the connection pulls instead of being pushed.

Each remote directory belongs to one interface code. A file is taken only once it looked the
same (size and time) on two consecutive polls, so a file AIFE is still writing is left alone;
it is streamed to the inbox port (direction "reception") and deleted or moved on the server
only after the port answered that it is durable. A duplicate answer (we already hold it, the
earlier delete failed) is durable too. A refused file stays where it is and is skipped for the
rest of the process's life, with the reason logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import stat as statmod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, cast

import asyncssh
import structlog

from protocols.errors import SendError
from protocols.ports import InboxPort, Incoming, TransferRefused
from protocols.sftp.client import ClientParams, connect
from protocols.sftp.paths import TEMP_SUFFIXES, completion_name

_log = structlog.get_logger(module=__name__)
READ_BLOCK = 256 << 10

Seen = tuple[int, int]  # size, mtime


@dataclass(frozen=True, slots=True)
class PollParams:
    """What to poll and what to do with a file once it is durable here."""

    directories: Mapping[str, str]  # interface code -> remote directory
    interval: float
    after: Literal["delete", "move"] = "delete"
    archive_dir: str = "done"


class Poller:
    """Runs `poll_once` every `interval` seconds until stopped."""

    def __init__(self, client: ClientParams, params: PollParams, *, inbox: InboxPort) -> None:
        self._client = client
        self._params = params
        self._inbox = inbox
        self._previous: dict[str, Seen] = {}
        self._refused: set[tuple[str, Seen]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._run(), name=f"sftp-poll-{self._client.connection}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except SendError as exc:
                _log.warning(
                    "sftp.poll_failed", connection=self._client.connection, reason=exc.reason
                )
            except (OSError, asyncssh.Error) as exc:
                _log.warning(
                    "sftp.poll_failed", connection=self._client.connection, reason=str(exc)
                )
            await asyncio.sleep(self._params.interval)

    async def poll_once(self) -> int:
        """One pass over every directory; returns how many files became durable here."""
        conn = await connect(self._client)
        taken = 0
        try:
            async with conn.start_sftp_client() as sftp:
                current: dict[str, Seen] = {}
                for code, directory in self._params.directories.items():
                    async for path, seen in _candidates(sftp, directory):
                        current[path] = seen
                        if self._previous.get(path) == seen and (path, seen) not in self._refused:
                            taken += await self._take(sftp, code, path, seen)
                self._previous = current
        finally:
            conn.close()
        return taken

    async def _take(self, sftp: asyncssh.SFTPClient, code: str, path: str, seen: Seen) -> int:
        incoming = Incoming(
            protocol="sftp",
            direction="reception",
            source=self._client.connection,
            interface_code=code,
            connection=self._client.connection,
            file_name=posixpath.basename(path),
            expected_size=seen[0],
        )
        async with sftp.open(path, "rb") as remote:
            try:
                accepted = await self._inbox.accept(_chunks(remote), incoming)
            except TransferRefused as exc:
                self._refused.add((path, seen))
                _log.warning(
                    "sftp.poll_refused",
                    connection=self._client.connection,
                    interface_code=code,
                    remote_path=path,
                    kind=exc.kind.value,
                    reason=exc.reason,
                )
                return 0
        await self._settle(sftp, path)
        _log.info(
            "sftp.polled",
            connection=self._client.connection,
            interface_code=code,
            remote_path=path,
            message_id=accepted.message_id,
            duplicate=accepted.duplicate,
        )
        return 1

    async def _settle(self, sftp: asyncssh.SFTPClient, path: str) -> None:
        """The file is durable here: remove it from the server, or move it aside."""
        if self._params.after == "delete":
            await sftp.remove(path)
            return
        archive = posixpath.join(posixpath.dirname(path), self._params.archive_dir)
        with contextlib.suppress(asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
            await sftp.mkdir(archive)
        await sftp.rename(path, posixpath.join(archive, posixpath.basename(path)))


async def _candidates(sftp: asyncssh.SFTPClient, directory: str) -> AsyncIterator[tuple[str, Seen]]:
    """Regular files of `directory` that are not temporary uploads."""
    async for entry in sftp.scandir(directory):
        name = entry.filename
        assert isinstance(name, str)
        mode = entry.attrs.permissions or 0
        if name in {".", ".."} or not statmod.S_ISREG(mode):
            continue
        if completion_name(name, TEMP_SUFFIXES) is not None:
            continue
        yield posixpath.join(directory, name), (entry.attrs.size or 0, entry.attrs.mtime or 0)


async def _chunks(remote: asyncssh.SFTPClientFile) -> AsyncIterator[bytes]:
    while True:
        data = cast(bytes, await remote.read(READ_BLOCK))
        if not data:
            return
        yield data
