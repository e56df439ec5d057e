"""Serving AIFE's pulls (SELECT/READ): the oldest flow waiting for it under the PI 12 asked.

The transfer id we give a served file is derived from its message id, so a SELECT restarted
with that PI 13 finds the same file again; the sync points we placed are kept so that a READ
restarted at one of them resumes right after it: in memory for the listener's life and, when
the profile names a `served_dir`, as the file's sync grid on disk (`served`), which a
restarted gateway reads back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint.ports import (
    Admission,
    Offload,
    OutgoingFile,
    OutgoingFiles,
    ServerProfile,
    bare_name,
    diagnostic_for,
)
from protocols.pesit.endpoint.sending import FileSender
from protocols.pesit.endpoint.served import ServedFile, ServedLog
from protocols.pesit.endpoint.session import Session
from protocols.pesit.events import FileInfo, Position
from protocols.pesit.server import PesitServer
from protocols.ports import RefusalKind

__all__ = ["PullServing", "Refuse", "ServerShared", "pesit_date", "served_transfer_id"]

_SERVED_MEMORY = 64  # pulls whose sync points we remember for a READ restart
Refuse = Callable[[Diagnostic, str, RefusalKind | None], None]


def served_transfer_id(message_id: str) -> int:
    """PI 13 of a file we serve: stable for a message, so a restarted SELECT finds it again."""
    value = int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:3], "big")
    return value or 1


def pesit_date(moment: dt.datetime) -> str:
    """PI 51 / PI 52: `YYMMDDhhmmss` in UTC."""
    return moment.astimezone(dt.UTC).strftime("%y%m%d%H%M%S")


@dataclass
class ServerShared:
    """What the sessions of one listener share: transfers in progress, points of served pulls."""

    busy: set[int] = field(default_factory=set)
    served: OrderedDict[int, dict[int, Position]] = field(default_factory=OrderedDict)

    def remember(self, transfer_id: int, position: Position) -> None:
        points = self.served.setdefault(transfer_id, {})
        points[position.point] = position
        self.served.move_to_end(transfer_id)
        while len(self.served) > _SERVED_MEMORY:
            self.served.popitem(last=False)


@dataclass
class _Pull:
    file: OutgoingFile
    transfer_id: int
    sender: FileSender | None = None


class PullServing:
    """The pull side of one server session."""

    def __init__(
        self,
        session: Session,
        core: PesitServer,
        *,
        profile: ServerProfile,
        admission: Admission,
        outgoing: OutgoingFiles,
        shared: ServerShared,
        offload: Offload,
        refuse: Refuse,
        log: Any,
    ) -> None:
        self._session = session
        self._core = core
        self._profile = profile
        self._admission = admission
        self._outgoing = outgoing
        self._shared = shared
        self._offload = offload
        self._refuse = refuse
        self._events = log
        self._log = None if profile.served_dir is None else ServedLog(profile.served_dir)
        self._pull: _Pull | None = None

    @property
    def active(self) -> bool:
        return self._pull is not None

    async def select(self, file: FileInfo) -> None:
        code = self._profile.code_of(file.file_name)
        refusal = self._admission.admit(code)
        if refusal is not None:
            self._refuse(diagnostic_for(refusal), refusal.reason, refusal.kind)
            return
        waiting = await self._outgoing.waiting(code)
        if file.restart:
            waiting = [w for w in waiting if served_transfer_id(w.message_id) == file.transfer_id]
        if not waiting:
            self._refuse(Diagnostic.FILE_NOT_FOUND, f"nothing waiting under {code}", None)
            return
        chosen = waiting[0]
        transfer_id = served_transfer_id(chosen.message_id)
        self._pull = _Pull(chosen, transfer_id)
        answer = FileInfo(
            file_name=file.file_name,
            transfer_id=transfer_id,
            article_size=self._profile.settings.article_size,
            max_size_kb=-(-chosen.size // 1024),
            created=pesit_date(chosen.created),
            label=bare_name(chosen.file_name),
        )
        self._core.accept_select(answer, now=self._session.now())
        self._events.info(
            "pesit.pull_selected", message_id=chosen.message_id, transfer_id=transfer_id
        )

    async def read(self, point: int) -> None:
        pull = self._pull
        assert pull is not None
        grid = self._grid(pull)
        if point == 0:
            start: Position | None = Position()
            if self._log is not None:  # durable before the first SYN can leave
                await self._offload(self._log.save, pull.transfer_id, grid)
        else:
            start = self._shared.served.get(pull.transfer_id, {}).get(point)
            if start is None and self._log is not None:
                kept = await self._offload(self._log.load, pull.transfer_id)
                start = kept.position(point) if kept == grid else None
        if start is None:
            self._refuse(Diagnostic.RESTART_NEGOTIATION_FAILED, f"no sync point {point}", None)
            return
        self._core.accept_read(resume=start, now=self._session.now())
        pull.sender = FileSender(
            self._session,
            pull.file.path,
            start=start,
            article_size=self._profile.settings.article_size,
            offload=self._offload,
            on_end=lambda: self._core.end_data(now=self._session.now()),
        )
        pull.sender.begin()

    def _grid(self, pull: _Pull) -> ServedFile:
        """How this session places the SYNs of `pull` (what a restart must find unchanged)."""
        return ServedFile(
            pull.file.message_id,
            pull.file.size,
            self._profile.settings.article_size,
            self._core.sync_points.interval_kb,
        )

    def sent(self, position: Position) -> None:
        if self._pull is not None:
            self._shared.remember(self._pull.transfer_id, position)

    def acknowledged(self) -> None:
        if self._pull is not None and self._pull.sender is not None:
            self._pull.sender.acknowledged()

    async def ended(self, ok: bool) -> None:
        """TRANS.END answered: a served file is delivered, and its points forgotten."""
        pull, self._pull = self._pull, None
        if pull is None or not ok:
            return
        await self._outgoing.delivered(pull.file, transfer_id=pull.transfer_id)
        self._shared.served.pop(pull.transfer_id, None)
        if self._log is not None:
            await self._offload(self._log.clear, pull.transfer_id)
        self._events.info("pesit.pull_served", message_id=pull.file.message_id)

    def stop(self) -> None:
        """The transfer was interrupted or the connection lost: the file stays waiting."""
        pull, self._pull = self._pull, None
        if pull is not None and pull.sender is not None:
            pull.sender.stop()
