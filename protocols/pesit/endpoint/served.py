"""Where the sync points of a file AIFE pulls from us fall, kept on disk for a restarted READ.

A file we serve is cut into articles of one size and a SYN goes wherever the next article
would cross the negotiated interval, so every sync point of it lies on one grid
(`grid_point`): remembering the article size and the interval used is remembering them all,
with one small file per pull written once, before the first SYN leaves. After a gateway
restart a READ restarted at point n then resumes right after it instead of failing (2/214)
and sending the whole file again. The file names the message it was for and its size: a
transfer id that now selects another file (or the same one changed) finds nothing.

All methods block: callers run them through their `Offload`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from protocols.pesit.endpoint.requester import grid_point
from protocols.pesit.endpoint.spool import checked_key, fsync_dir, write_atomic
from protocols.pesit.events import Position

__all__ = ["ServedFile", "ServedLog"]


@dataclass(frozen=True, slots=True)
class ServedFile:
    """How one pull we serve places its sync points."""

    message_id: str
    size: int
    article_size: int
    interval_kb: int

    def position(self, point: int) -> Position | None:
        """Sync point `point` of this file, or None where no SYN of it can be."""
        if point < 1 or self.article_size < 1 or self.interval_kb < 1:
            return None
        found = grid_point(point, article_size=self.article_size, interval_kb=self.interval_kb)
        return found if found.byte_offset < self.size else None


class ServedLog:
    """One connection's pulls in progress: `<root>/<transfer id>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, transfer_id: int) -> Path:
        return self.root / f"{checked_key(str(transfer_id))}.json"

    def save(self, transfer_id: int, served: ServedFile) -> None:
        """Durable when this returns (the points it describes may go out after)."""
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.root.parent)
        write_atomic(self._path(transfer_id), json.dumps(asdict(served), sort_keys=True))

    def load(self, transfer_id: int) -> ServedFile | None:
        try:
            raw = json.loads(self._path(transfer_id).read_text("utf-8"))
            served = ServedFile(
                str(raw["message_id"]),
                int(raw["size"]),
                int(raw["article_size"]),
                int(raw["interval_kb"]),
            )
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return served

    def clear(self, transfer_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(transfer_id).unlink()

    def prune(self, *, older_than: float, now: float) -> list[str]:
        """Forget pulls untouched for `older_than` seconds: no restart is coming."""
        if not self.root.is_dir():
            return []
        gone = []
        for path in self.root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than:
                    path.unlink()
                    gone.append(path.stem)
        return sorted(gone)
