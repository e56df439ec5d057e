"""A requester core and a server core joined in memory, and small applications to drive them.

No mocks: both ends are the real cores; the "network" is `data_to_send` handed to the other
side's `receive_data`. Applications are plain event handlers, like an endpoint would be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from protocols.pesit.connection import PesitConnection
from protocols.pesit.events import (
    ArticleReceived,
    Connected,
    ConnectionRequested,
    CreateRequested,
    DataEnded,
    Event,
    FileClosed,
    FileDeselected,
    FileInfo,
    FileOpened,
    FileReady,
    Position,
    PreConnectionRequested,
    ReadRequested,
    ReadStarted,
    SelectRequested,
    SyncPointAcknowledged,
    SyncPointReached,
    SyncPointSent,
    TransferEnded,
    WriteStarted,
)
from protocols.pesit.fpdu import Fpdu, encode_fpdu, split_fpdus
from protocols.pesit.framing import Framing, UnitReader, frame
from protocols.pesit.requester import PesitRequester
from protocols.pesit.server import PesitServer
from protocols.pesit.settings import PesitSettings

NOW = 1000.0
SETTINGS = PesitSettings(
    requester_id="PA-EMETTEUR",
    server_id="CHORUSPRO",
    password="s3cret",
    sync_interval_kb=4,
    sync_window=2,
    max_entity_size=4096,
    article_size=1024,
)
FILE = FileInfo(file_name="FSO1100A", transfer_id=0x24C9, max_size_kb=40)

Handler = Callable[[Event], None]


def fpdus_of(stream: bytes, framing: Framing = Framing.PREFIXED) -> list[Fpdu]:
    """Every FPDU of a byte stream as the peer would cut it."""
    reader = UnitReader(framing)
    reader.feed(stream)
    found: list[Fpdu] = []
    while (unit := reader.next_nsdu()) is not None:
        found.extend(split_fpdus(unit))
    return found


def feed(conn: PesitConnection, fpdu: Fpdu) -> tuple[list[Event], list[Fpdu]]:
    """Deliver one FPDU as the peer would; return the events and the FPDUs answered."""
    conn.receive_data(frame(encode_fpdu(fpdu), Framing.PREFIXED), now=NOW)
    return list(iter(conn.next_event, None)), fpdus_of(conn.data_to_send())


def payload(size: int, seed: int = 7) -> bytes:
    """Deterministic, non-repeating-looking bytes (a restart bug cannot hide in zeros)."""
    return bytes((i * 31 + seed + (i >> 8) * 17) % 251 for i in range(size))


def articles_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class Pair:
    """Moves bytes both ways and dispatches events until nothing moves (or `stop` says so)."""

    requester: PesitRequester
    server: PesitServer
    now: float = NOW
    log: list[tuple[str, Event]] = field(default_factory=list)
    on_requester: Handler | None = None
    on_server: Handler | None = None
    stop: Callable[[], bool] | None = None
    stopped: bool = False
    chunk: int = 0  # deliver in slices of this many bytes (0: as produced)
    wire: dict[str, bytearray] = field(default_factory=lambda: {"r": bytearray(), "s": bytearray()})

    def pump(self) -> None:
        moved = True
        while moved and not self.stopped:
            moved = self._move_bytes()
            for side, conn, handler in (
                ("r", self.requester, self.on_requester),
                ("s", self.server, self.on_server),
            ):
                while (event := conn.next_event()) is not None:
                    moved = True
                    self.log.append((side, event))
                    if handler is not None:
                        handler(event)
                    if self.stop is not None and self.stop():
                        self.stopped = True
                        return

    def _move_bytes(self) -> bool:
        moved = False
        for side, source, target in (
            ("r", self.requester, self.server),
            ("s", self.server, self.requester),
        ):
            data = source.data_to_send()
            if data:
                moved = True
                self.wire[side] += data
                step = self.chunk or len(data)
                for start in range(0, len(data), step):
                    target.receive_data(data[start : start + step], now=self.now)
        return moved

    def sent(self, side: str, framing: Framing = Framing.PREFIXED) -> list[Fpdu]:
        """Every FPDU `side` put on the wire so far."""
        return fpdus_of(bytes(self.wire[side]), framing)

    def events(self, side: str) -> list[Event]:
        return [event for who, event in self.log if who == side]

    def kinds(self, side: str) -> list[str]:
        return [type(event).__name__ for event in self.events(side)]


@dataclass
class Storage:
    """What a receiver keeps per transfer id: bytes received, and the durable prefix."""

    data: bytearray = field(default_factory=bytearray)
    durable: Position = field(default_factory=Position)

    def crash(self) -> None:
        """Lose what was not confirmed durable, as a power cut would."""
        del self.data[self.durable.byte_offset :]


@dataclass
class ServerApp:
    """Accepts every known partner; stores pushes; serves `files` for pulls."""

    server: PesitServer
    settings: PesitSettings = SETTINGS
    files: dict[str, bytes] = field(default_factory=dict)
    stores: dict[int, Storage] = field(default_factory=dict)
    sent_points: dict[int, dict[int, Position]] = field(default_factory=dict)
    confirm: bool = True
    article_size: int = 1024
    _transfer: int = 0
    _outgoing: list[bytes] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        now = NOW
        if isinstance(event, PreConnectionRequested):
            self.server.answer_preconnection(self.settings, now=now)
        elif isinstance(event, ConnectionRequested):
            self.server.accept_connection(self.settings, now=now)
        elif isinstance(event, CreateRequested):
            self._transfer = event.file.transfer_id
            store = self.stores.setdefault(self._transfer, Storage())
            self.server.accept_create(resume=store.durable if event.file.restart else None, now=now)
        elif isinstance(event, SelectRequested):
            self._transfer = event.file.transfer_id or 0x0102
            info = FileInfo(transfer_id=self._transfer, article_size=self.article_size)
            self.server.accept_select(info, now=now)
        elif isinstance(event, ArticleReceived):
            self.stores[self._transfer].data += event.data
        elif isinstance(event, SyncPointReached) and self.confirm:
            self.stores[self._transfer].durable = event.position
            self.server.confirm_durable(event.position.point, now=now)
        elif isinstance(event, DataEnded) and self.confirm:
            self.server.confirm_end(now=now)
        elif isinstance(event, ReadRequested):
            self._serve(event.restart_point)
        elif isinstance(event, SyncPointSent):
            self.sent_points.setdefault(self._transfer, {})[event.position.point] = event.position
        elif isinstance(event, SyncPointAcknowledged):
            self._send_more()

    def _serve(self, point: int) -> None:
        resume = self.sent_points.get(self._transfer, {}).get(point) if point else None
        self.server.accept_read(resume=resume, now=NOW)
        start = resume.byte_offset if resume else 0
        data = next(iter(self.files.values()))[start:]
        self._outgoing = articles_of(data, self.article_size)
        self._send_more()

    def _send_more(self) -> None:
        if self._outgoing:
            taken = self.server.send_articles(self._outgoing, now=NOW)
            del self._outgoing[:taken]
            if not self._outgoing:
                self.server.end_data(now=NOW)


@dataclass
class PushApp:
    """The requester side of a push of `data`, cut into `article_size` articles."""

    requester: PesitRequester
    data: bytes
    file: FileInfo = FILE
    article_size: int = 1024
    known: Sequence[Position] = ()
    sent_points: dict[int, Position] = field(default_factory=dict)
    acked: list[Position] = field(default_factory=list)
    release: bool = True
    _outgoing: list[bytes] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        requester = self.requester
        if isinstance(event, Connected):
            requester.create(replace(self.file, article_size=self.article_size), now=NOW)
        elif isinstance(event, FileReady):
            requester.open_file(now=NOW)
        elif isinstance(event, FileOpened):
            requester.write(known=self.known, now=NOW)
        elif isinstance(event, WriteStarted):
            rest = self.data[event.position.byte_offset :]
            self._outgoing = articles_of(rest, self.article_size)
            self._send_more()
        elif isinstance(event, SyncPointSent):
            self.sent_points[event.position.point] = event.position
        elif isinstance(event, SyncPointAcknowledged):
            self.acked.append(event.position)
            self._send_more()
        else:
            _wind_down(requester, event, release=self.release)

    def _send_more(self) -> None:
        if self._outgoing:
            taken = self.requester.send_articles(self._outgoing, now=NOW)
            del self._outgoing[:taken]
        if not self._outgoing and self.requester.can_send:
            self.requester.end_data(now=NOW)


@dataclass
class PullApp:
    """The requester side of a pull into `storage`, confirming durability at once."""

    requester: PesitRequester
    storage: Storage
    file: FileInfo = FILE
    resume: Position | None = None

    def __call__(self, event: Event) -> None:
        requester = self.requester
        if isinstance(event, Connected):
            requester.select(self.file, now=NOW)
        elif isinstance(event, FileReady):
            requester.open_file(now=NOW)
        elif isinstance(event, FileOpened):
            requester.read(resume=self.resume, now=NOW)
        elif isinstance(event, ReadStarted):
            del self.storage.data[event.position.byte_offset :]
        elif isinstance(event, ArticleReceived):
            self.storage.data += event.data
        elif isinstance(event, SyncPointReached):
            self.storage.durable = event.position
            requester.confirm_durable(event.position.point, now=NOW)
        elif isinstance(event, DataEnded):
            requester.confirm_end(now=NOW)
        else:
            _wind_down(requester, event, release=True)


def _wind_down(requester: PesitRequester, event: Event, *, release: bool) -> None:
    """After the transfer: CRF, DESELECT, RELEASE, each on the previous answer."""
    if isinstance(event, TransferEnded):
        requester.close_file(now=NOW)
    elif isinstance(event, FileClosed):
        requester.deselect(now=NOW)
    elif isinstance(event, FileDeselected) and release:
        requester.release(now=NOW)


def connected_pair(
    settings: PesitSettings = SETTINGS, *, server: PesitServer | None = None
) -> Pair:
    """A pair that went through CONNECT/ACONNECT and stands in CN03 on both sides."""
    pair = Pair(PesitRequester(settings), server or PesitServer(now=NOW))
    pair.on_server = ServerApp(pair.server, settings)
    pair.requester.connect(now=NOW)
    pair.pump()
    return pair


def connections(pair: Pair) -> tuple[PesitConnection, PesitConnection]:
    return pair.requester, pair.server
