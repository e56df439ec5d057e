"""Real certificates, real sockets, small real ports: what the PeSIT endpoint tests share.

AIFE's side is played by our own adapters with AIFE's certificate (made by the test CA); the
inbox port either keeps files in memory or puts them in a real store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ssl
import threading
import time
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.model import Direction
from gateway.store import Submission
from gateway.store.sqlite import SQLiteStore
from protocols.pesit.diagnostics import DiagnosticCode
from protocols.pesit.endpoint import (
    OutgoingFile,
    Peer,
    PesitListener,
    ServerProfile,
    client_context,
    server_context,
)
from protocols.pesit.endpoint.ports import Offload, to_thread
from protocols.pesit.endpoint.spool import PartialFile
from protocols.pesit.events import Position
from protocols.pesit.settings import PesitSettings, Timers
from protocols.ports import Accepted, InboxPort, Incoming, RefusalKind, TransferRefused
from tests.pki import Issued, TestCA

AIFE_ID, OUR_ID, PASSWORD = "CPRO", "PAB2GPRD", "s3cret"
CODE = "FEN1200A"
TIMERS = Timers(tp=5.0, td=10.0, tc=5.0, tr=1.0)
Who = tuple[Path, Path, bytes]  # certificate file, key file, DER of the certificate


@dataclass
class Pki:
    """A CA and every certificate the tests present, written as PEM files under `folder`."""

    folder: Path
    ca: TestCA = field(default_factory=TestCA)

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.aife = self._write("aife", self.ca.issue("aife"))
        self.ours = self._write("ours", self.ca.issue("pa-server"))
        self.our_client = self._write("our-client", self.ca.issue("pa-client"))
        self.other = self._write("other", self.ca.issue("other-connection"))
        self.expired = self._write(
            "expired",
            self.ca.issue(
                "aife-expired",
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            ),
        )
        self.stranger = self._write("stranger", TestCA("Untrusted Root").issue("aife"))
        self.anchors = self.ca.root_pem().decode()

    def _write(self, stem: str, issued: Issued) -> Who:
        cert, key = issued.write(self.folder, stem)
        return cert, key, issued.cert.public_bytes(Encoding.DER)

    def server_tls(self, who: Who | None = None) -> ssl.SSLContext:
        cert, key, _ = who or self.ours
        return server_context(certificate=cert, key=key, anchors=self.anchors)

    def client_tls(self, who: Who | None = None) -> ssl.SSLContext:
        cert, key, _ = who or self.aife
        return client_context(certificate=cert, key=key, anchors=self.anchors)


def settings(**changes: object) -> PesitSettings:
    """Seen from the requester (AIFE calling us): PI 3 is AIFE's id, PI 4 ours."""
    base = PesitSettings(
        requester_id=AIFE_ID,
        server_id=OUR_ID,
        password=PASSWORD,
        sync_interval_kb=4,
        sync_window=2,
        max_entity_size=4096,
        article_size=1024,
        timers=TIMERS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # checked by the dataclass


def payload(size: int, seed: int = 3) -> bytes:
    """Bytes that do not repeat within a sync interval: a misplaced restart cannot hide."""
    block = hashlib.sha256(str(seed).encode()).digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


async def _collect(data: bytes | AsyncIterable[bytes]) -> bytes:
    if isinstance(data, bytes):
        return data
    return b"".join([chunk async for chunk in data])


@dataclass
class MemoryInbox:
    """An inbox port that keeps each accepted file; a repeat (same bytes) is a duplicate."""

    files: list[tuple[Incoming, bytes]] = field(default_factory=list)
    refuse: TransferRefused | None = None
    seen: list[Incoming] = field(default_factory=list)  # every call, duplicates too

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        self.seen.append(incoming)
        body = await _collect(data)
        if self.refuse is not None:
            raise self.refuse
        digest = hashlib.sha256(body).hexdigest()
        for index, (_, kept) in enumerate(self.files):
            if kept == body:
                return Accepted(f"M{index}", digest, len(body), duplicate=True)
        self.files.append((incoming, body))
        return Accepted(f"M{len(self.files) - 1}", digest, len(body), duplicate=False)


@dataclass
class StoreInbox:
    """An inbox port over a real store (reception direction), as simple as the rule allows."""

    store: SQLiteStore

    async def accept(self, data: bytes | AsyncIterable[bytes], incoming: Incoming) -> Accepted:
        submission = Submission(
            source=incoming.source,
            direction=Direction.RECEPTION,
            interface_code=incoming.interface_code,
            protocol=incoming.protocol,
            connection=incoming.connection,
            peer_message_id=incoming.peer_message_id,
            file_name=incoming.file_name,
            expected_size=incoming.expected_size,
        )
        receipt = await self.store.accept(data, submission)
        return Accepted(receipt.message_id, receipt.sha256, receipt.size, receipt.duplicate)


@dataclass
class Admit:
    """Admits every code but those in `refused`."""

    refused: dict[str, RefusalKind] = field(default_factory=dict)

    def admit(self, interface_code: str) -> TransferRefused | None:
        kind = self.refused.get(interface_code)
        return None if kind is None else TransferRefused(kind, f"{interface_code} refused")


@dataclass
class Waiting:
    """Flows waiting for the peer, as a list; `done` records what was delivered."""

    files: list[OutgoingFile] = field(default_factory=list)
    done: list[tuple[str, int]] = field(default_factory=list)

    async def waiting(self, interface_code: str) -> list[OutgoingFile]:
        return [
            f
            for f in self.files
            if f.interface_code == interface_code and f.message_id not in {d for d, _ in self.done}
        ]

    async def delivered(self, file: OutgoingFile, *, transfer_id: int) -> None:
        self.done.append((file.message_id, transfer_id))


async def start_listener(
    pki: Pki,
    spool: Path,
    *,
    inbox: InboxPort | None = None,
    core: PesitSettings | None = None,
    admission: Admit | None = None,
    outgoing: Waiting | None = None,
    pins: frozenset[bytes] | None = None,
    max_size: int = 1 << 30,
    server_who: Who | None = None,
    port: int = 0,
    observer: Recorder | None = None,
    names: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    offload: Offload = to_thread,
    served: Path | None = None,
) -> PesitListener:
    """Our server on 127.0.0.1, expecting AIFE's certificate unless `pins` says otherwise."""
    profile = ServerProfile(
        connection="b2g-prod-pesit",
        settings=core or settings(),
        names=names or {},
        max_size=max_size,
        spool_dir=spool,
        served_dir=served,
    )
    listener = PesitListener(
        profile,
        host="127.0.0.1",
        port=port,
        ssl_context=tls or pki.server_tls(server_who),
        pins=pins if pins is not None else frozenset({pki.aife[2]}),
        inbox=inbox or MemoryInbox(),
        admission=admission or Admit(),
        outgoing=outgoing or Waiting(),
        observer=observer,
        offload=offload,
    )
    await listener.start()
    assert listener.ready
    return listener


def peer(
    pki: Pki,
    port: int,
    *,
    core: PesitSettings | None = None,
    who: Who | None = None,
    pins: frozenset[bytes] | None = None,
) -> Peer:
    """AIFE calling our server (or us calling AIFE, with `who`/`pins` swapped)."""
    return Peer(
        connection="b2g-prod-pesit",
        host="127.0.0.1",
        port=port,
        ssl_context=pki.client_tls(who),
        pins=pins if pins is not None else frozenset({pki.ours[2]}),
        settings=core or settings(),
        connect_timeout=5.0,
    )


def spool_left(root: Path) -> dict[str, list[str]]:
    """What each transfer folder of a receiving spool still holds."""
    if not root.is_dir():
        return {}
    return {folder.name: sorted(p.name for p in folder.iterdir()) for folder in root.iterdir()}


SETTLED = ["meta.json"]  # a transfer handed to the inbox keeps only its identity


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition()` until true (for things that settle after a transfer returns)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class CutProxy:
    """A TCP relay to `port` that cuts its first connection once `up` bytes went to the server
    (or `down` bytes came back); later connections are relayed whole."""

    def __init__(self, port: int, *, up: int | None = None, down: int | None = None) -> None:
        self._target = port
        self._limits: tuple[int | None, int | None] | None = (up, down)
        self.cuts = 0
        self.down = 0  # bytes relayed from the server, over every connection
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> CutProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        (up, down), self._limits = self._limits or (None, None), None
        pipes = {
            asyncio.create_task(self._pipe(reader, up_writer, up)),
            asyncio.create_task(self._pipe(up_reader, writer, down, count=True)),
        }
        done, _ = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        if any(t.result() for t in done if not t.cancelled() and t.exception() is None):
            self.cuts += 1
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        for stream in (writer, up_writer):
            stream.transport.abort()
        self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limit: int | None,
        *,
        count: bool = False,
    ) -> bool:
        """Relay until the end of the stream (False) or `limit` bytes (True: a cut)."""
        moved = 0
        while limit is None or moved < limit:
            size = 65536 if limit is None else min(65536, limit - moved)
            data = await reader.read(size)
            if not data:
                return False
            writer.write(data)
            await writer.drain()
            moved += len(data)
            if count:
                self.down += len(data)
        return True


class Disk:
    """The spool's disk, slowed, held or broken: each durable append (a sync point logged, or
    the end) first waits for `gate`, then `delay` seconds, then raises `fail` once `after`
    appends went well. Installed over `PartialFile.append` for one test (the writer thread
    calls it), so the real append still does the real I/O after."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *,
        delay: float = 0.0,
        fail: BaseException | None = None,
        after: int = 0,
    ) -> None:
        self.gate = threading.Event()
        self.delay = delay
        self.synced = 0
        original = PartialFile.append

        def append(
            partial: PartialFile,
            chunks: Sequence[bytes],
            position: Position | None = None,
            *,
            durable: bool = False,
        ) -> None:
            if durable or position is not None:
                self.gate.wait(10.0)  # a forgotten gate must not hang the suite
                time.sleep(self.delay)
                if fail is not None and self.synced >= after:
                    raise fail  # the disk (or a bug) after `after` good syncs
                self.synced += 1
            original(partial, chunks, position, durable=durable)

        monkeypatch.setattr(PartialFile, "append", append)

    @classmethod
    def slow(cls, monkeypatch: pytest.MonkeyPatch, delay: float) -> Disk:
        disk = cls(monkeypatch, delay=delay)
        disk.gate.set()
        return disk


class Starts(list[tuple[int, bool, int]]):
    """(transfer id, restart, known points) of each attempt of a resumable push."""


class Recorder:
    """An observer that remembers every observation."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def session(self, role: str, delta: int) -> None:
        self.seen.append(("session", role, str(delta)))

    def auth_failure(self, reason: str) -> None:
        self.seen.append(("auth", reason))

    def diagnostic(self, direction: str, code: DiagnosticCode) -> None:
        self.seen.append(("diagnostic", direction, str(code)))

    def sync_point(self, direction: str) -> None:
        self.seen.append(("sync", direction))

    def refused(self, kind: RefusalKind) -> None:
        self.seen.append(("refused", kind.value))

    def of(self, kind: str) -> list[tuple[str, ...]]:
        return [entry for entry in self.seen if entry[0] == kind]
