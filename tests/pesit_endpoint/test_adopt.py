"""A finished spool handed to an inbox that adopts files: no read-back, the digest is right.

Hostile first: an adoption refused must interrupt the transfer with the refusal's diagnostic;
a resumed spool must be hashed whole (the bytes of the earlier connection included); the
store's entry point (`SQLiteStore.adopt`) must refuse what `accept` refuses, leave a
refused file where it was and record a repeat as a duplicate without keeping a second copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Direction
from gateway.store import Submission, TruncatedPayload, open_store
from protocols.pesit.diagnostics import Diagnostic
from protocols.pesit.endpoint import (
    Journal,
    PesitPermanentError,
    PesitTransientError,
    PushResult,
    pull,
    push,
)
from protocols.pesit.endpoint.outbound import send_resumable
from protocols.pesit.endpoint.ports import OutgoingFile
from protocols.pesit.endpoint.spool import Spool
from protocols.pesit.events import FileInfo
from protocols.ports import Accepted, Incoming, RefusalKind, SpoolAdopter, TransferRefused
from tests.pesit_endpoint.helpers import (
    CODE,
    SETTLED,
    CutProxy,
    Pki,
    Waiting,
    payload,
    peer,
    spool_left,
    start_listener,
)

DATA = payload(300_000)
FILE = FileInfo(file_name=CODE, transfer_id=42, max_size_kb=293)


@dataclass
class FolderInbox:
    """Takes each spooled file over by renaming it into `folder`; never reads a stream."""

    folder: Path
    kept: list[tuple[Incoming, Path, int, str]] = field(default_factory=list)
    refuse: TransferRefused | None = None

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        raise AssertionError("an adopting inbox is never streamed the spool")

    async def accept_spooled(
        self, path: Path, incoming: Incoming, *, size: int, sha256: str
    ) -> Accepted:
        if self.refuse is not None:
            raise self.refuse
        self.folder.mkdir(exist_ok=True)
        target = self.folder / f"m{len(self.kept)}"
        os.replace(path, target)
        self.kept.append((incoming, target, size, sha256))
        return Accepted(f"M{len(self.kept)}", sha256, size, duplicate=False)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "flow.xml"
    path.write_bytes(DATA)
    return path


def test_the_folder_inbox_is_an_adopting_inbox(tmp_path: Path) -> None:
    assert isinstance(FolderInbox(tmp_path), SpoolAdopter)


async def test_a_finished_push_is_handed_over_as_a_file(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    inbox = FolderInbox(tmp_path / "inbox")
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    try:
        await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    ((incoming, kept, size, sha256),) = inbox.kept
    assert kept.read_bytes() == DATA
    assert (size, sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert incoming.expected_size == len(DATA)
    assert spool_left(tmp_path / "spool") == {"in-42": SETTLED}  # no byte left after the ACK


async def test_a_resumed_push_is_hashed_whole(pki: Pki, tmp_path: Path, source: Path) -> None:
    inbox = FolderInbox(tmp_path / "inbox")
    journal = Journal(tmp_path / "push")
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)

    async def started(transfer_id: int, restart: bool, points: int) -> None:
        del transfer_id, restart, points

    def attempt(port: int) -> Coroutine[Any, Any, PushResult]:
        return send_resumable(
            peer(pki, port), source, key="M1", size=len(DATA), journal=journal,
            describe=lambda tid, restart: FileInfo(
                file_name=CODE, transfer_id=tid, restart=restart, max_size_kb=293
            ),
            started=started,
        )  # fmt: skip

    try:
        async with CutProxy(listener.port, up=len(DATA) // 2) as relay:
            with pytest.raises(PesitTransientError):
                await attempt(relay.port)
            result = await attempt(relay.port)
    finally:
        await listener.stop(timeout=1)
    assert result.resumed_from.byte_offset > 0
    ((_, kept, _, sha256),) = inbox.kept
    assert kept.read_bytes() == DATA
    assert sha256 == hashlib.sha256(DATA).hexdigest()


REFUSED = {
    RefusalKind.TOO_LARGE: (PesitPermanentError, Diagnostic.QUOTA_EXCEEDED),
    RefusalKind.UNAVAILABLE: (PesitTransientError, Diagnostic.APPLICATION_CONGESTED),
}


@pytest.mark.parametrize("kind", list(REFUSED), ids=lambda kind: kind.value)
async def test_an_adoption_refused_interrupts_the_transfer(
    pki: Pki, tmp_path: Path, source: Path, kind: RefusalKind
) -> None:
    error, diagnostic = REFUSED[kind]
    inbox = FolderInbox(tmp_path / "inbox", refuse=TransferRefused(kind, "no"))
    listener = await start_listener(pki, tmp_path / "spool", inbox=inbox)
    try:
        with pytest.raises(error) as refused:
            await push(peer(pki, listener.port), source, file=FILE)
    finally:
        await listener.stop(timeout=1)
    assert getattr(refused.value, "diagnostic", None) == diagnostic.code
    assert inbox.kept == []


async def test_a_pulled_file_is_handed_over_as_a_file(
    pki: Pki, tmp_path: Path, source: Path
) -> None:
    created = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    waiting = Waiting([OutgoingFile("M1", source, len(DATA), CODE, created=created)])
    listener = await start_listener(pki, tmp_path / "served", outgoing=waiting)
    inbox = FolderInbox(tmp_path / "inbox")
    try:
        accepted = await pull(
            peer(pki, listener.port), names={CODE: CODE}, spool=Spool(tmp_path / "pulled"),
            inbox=inbox, max_size=1 << 30,
        )  # fmt: skip
    finally:
        await listener.stop(timeout=1)
    assert len(accepted) == 1
    ((_, kept, size, sha256),) = inbox.kept
    assert (kept.read_bytes(), size) == (DATA, len(DATA))
    assert sha256 == hashlib.sha256(DATA).hexdigest()


# -- the proposed store entry point ----------------------------------------------------------


def _submission(**changes: object) -> Submission:
    base: dict[str, object] = {
        "source": "b2g-prod-pesit",
        "direction": Direction.RECEPTION,
        "interface_code": CODE,
        "protocol": "pesit",
        "connection": "b2g-prod-pesit",
        "peer_message_id": "42@20260301T120000Z",
    }
    return Submission(**{**base, **changes})  # type: ignore[arg-type]


def _spooled(folder: Path, name: str, data: bytes = DATA) -> tuple[Path, str]:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_adopt_places_the_file_and_records_it(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "store")
    try:
        path, digest = _spooled(tmp_path / "spool", "data")
        receipt = await store.adopt(path, _submission(), sha256=digest, size=len(DATA))
        message = await store.get(receipt.message_id)
        assert (receipt.sha256, receipt.size, receipt.duplicate) == (digest, len(DATA), False)
        assert store.payload_path(message).read_bytes() == DATA
        assert not path.exists()  # moved, not copied
    finally:
        await store.close()


async def test_adopt_of_a_repeat_is_a_duplicate_and_keeps_no_second_copy(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "store")
    try:
        first, digest = _spooled(tmp_path / "spool", "one")
        again, _ = _spooled(tmp_path / "spool", "two")
        original = await store.adopt(first, _submission(), sha256=digest, size=len(DATA))
        repeat = await store.adopt(again, _submission(), sha256=digest, size=len(DATA))
        assert repeat.duplicate
        assert repeat.message_id == original.message_id
        assert list((tmp_path / "store" / "payloads" / "tmp").iterdir()) == []
    finally:
        await store.close()


async def test_adopt_refuses_a_size_other_than_announced_and_leaves_the_file(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "store")
    try:
        path, digest = _spooled(tmp_path / "spool", "data")
        with pytest.raises(TruncatedPayload):
            await store.adopt(
                path, _submission(expected_size=len(DATA) + 1), sha256=digest, size=len(DATA)
            )
        assert path.read_bytes() == DATA
        with pytest.raises(TruncatedPayload):  # a caller whose size is not the file's
            await store.adopt(path, _submission(), sha256=digest, size=len(DATA) - 1)
        assert list((tmp_path / "store" / "payloads" / "tmp").iterdir()) == []
    finally:
        await store.close()
