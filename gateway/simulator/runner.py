"""The simulator process: AIFE's sides per connection, the dispatcher of owed flows, the feeder.

`Simulator.run()` starts one side per connection it can play, then loops: send the flows that
are due (a failure is retried with backoff: the gateway may be restarting), issue G2B invoices,
answer the G2B invoices the back office received with a status, and print the summary table.
It stops cleanly when `request_stop()` is called (SIGINT/SIGTERM in the CLI).

`request_outage(seconds)` plays Chorus Pro being down: every side stops (listeners closed,
nothing sent, nothing answered) for that long, then comes back on the same addresses; what fell
due meanwhile is sent then. `outages` keeps when each one began and ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol as TypingProtocol
from typing import TextIO

from gateway.config import Config, ConnectionConfig
from gateway.config_rules import catalogue_for
from gateway.logging import get_logger
from gateway.model import Circuit, Protocol
from gateway.offload import run_blocking
from gateway.simulator.as2side import As2Side, load_aife_identity
from gateway.simulator.desk import Desk, Timing
from gateway.simulator.feeder import drop_file, drop_samples, g2b_status
from gateway.simulator.pesitside import PesitSide
from gateway.simulator.sftpside import SftpSide, prepare_known_hosts
from gateway.simulator.state import Due, SimulatorState
from gateway.simulator.summary import render_summary
from gateway.simulator.timekeeping import utc_now
from protocols.errors import RaccordError, SendError

__all__ = ["Options", "Side", "Simulator", "prepare"]

log = get_logger(__name__)
MAX_ATTEMPTS = 30
G2B_STATUS_CODE = "XGB0002A"


class Side(TypingProtocol):
    """What the dispatcher needs from a protocol side of one connection."""

    connection: str

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self, *, timeout: float) -> None: ...

    async def deliver(self, flow_id: str, file_name: str, body: bytes) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Command-line options of `raccord sandbox`."""

    state_dir: Path
    timing: Timing = dataclasses.field(default_factory=Timing)
    seed: int | None = None
    feed: bool = True
    g2b_every: float = 0.0  # seconds between G2B invoices; 0: one per G2B connection at start
    summary_every: float = 10.0  # 0: no table
    tick: float = 0.5
    retry_cap: float = 60.0  # seconds: the longest wait before a flow is offered again


class Simulator:
    """One simulator for every connection of a gateway configuration."""

    def __init__(self, config: Config, options: Options, *, out: TextIO | None = None,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:  # fmt: skip
        self._config, self._options, self._out, self._clock = config, options, out, clock
        self._state = SimulatorState(options.state_dir / "simulator.sqlite3")
        self.desk = Desk(
            config=config, catalogue=catalogue_for(config), state=self._state,
            folder=options.state_dir / "received", timing=options.timing, clock=clock,
            draw=random.Random(options.seed),  # noqa: S311 - a simulation, not a secret
        )  # fmt: skip
        self._sides: dict[str, Side] = {}
        self._stop = asyncio.Event()
        self._issued = 0
        self._outage_for: float | None = None
        self._outages: list[tuple[dt.datetime, dt.datetime]] = []
        self.ready = asyncio.Event()

    @property
    def state(self) -> SimulatorState:
        return self._state

    def request_stop(self) -> None:
        self._stop.set()

    def request_outage(self, seconds: float) -> None:
        """Go down for `seconds` at the next tick (see the module docstring)."""
        if seconds <= 0:
            raise ValueError("an outage lasts a positive number of seconds")
        self._outage_for = seconds

    @property
    def outages(self) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """(went down, came back) of every outage that has ended."""
        return tuple(self._outages)

    @property
    def down(self) -> bool:
        """True from the outage's request until every side is back."""
        return self._outage_for is not None or not self.ready.is_set()

    async def run(self) -> int:
        try:
            await self._start_sides()
            await self._start_feeding()
            self.ready.set()
            await self._loop()
        finally:
            for side in self._sides.values():
                await side.stop(timeout=5.0)
            await run_blocking(self._state.close)
        return 0

    async def _side(self, conn: ConnectionConfig) -> Side:
        if conn.protocol is Protocol.AS2:
            identity = await run_blocking(load_aife_identity, conn)
            return As2Side(self._config, conn, identity, self.desk)
        if conn.protocol is Protocol.SFTP:
            await run_blocking(prepare_known_hosts, conn)
            return await run_blocking(SftpSide, self._config, conn, self.desk)
        return await run_blocking(PesitSide, self._config, conn, self.desk,
                                  state_dir=self._options.state_dir)  # fmt: skip

    async def _start_sides(self) -> None:
        """One side per connection; one that cannot start is reported, the others run."""
        for conn in self._config.connections:
            try:
                side = await self._side(conn)
                await side.start()
                if not side.ready:
                    await side.stop(timeout=1.0)
                    raise OSError(f"cannot listen on {conn.network.aife.port}")
            except (RaccordError, OSError, ValueError, TypeError) as exc:
                log.error("simulator.side_not_started", connection=conn.name,
                          protocol=conn.protocol.value, reason=str(exc))  # fmt: skip
                continue
            self._sides[conn.name] = side
            log.info("simulator.listening", connection=conn.name, protocol=conn.protocol.value,
                     host=conn.network.aife.host, port=conn.network.aife.port)  # fmt: skip

    async def _start_feeding(self) -> None:
        drop_dir = self._config.intake.drop_dir
        if self._options.feed and drop_dir is not None:
            environments = tuple(sorted({
                c.environment.value for c in self._config.connections
                if c.circuit is Circuit.B2G and c.name in self._sides
            }))  # fmt: skip
            dropped = await run_blocking(drop_samples, drop_dir,
                                         environments=environments, now=self._clock())  # fmt: skip
            log.info("simulator.samples_dropped", files=[p.name for p in dropped])
        await self._issue_g2b()

    async def _loop(self) -> None:
        next_g2b = self._clock().timestamp() + self._options.g2b_every
        next_table = 0.0
        while not self._stop.is_set():
            if self._outage_for is not None:
                await self._outage(self._outage_for)
                continue
            await self._dispatch()
            now = self._clock().timestamp()
            if self._options.g2b_every and now >= next_g2b:
                await self._issue_g2b()
                next_g2b = now + self._options.g2b_every
            if self._options.feed:
                await self._answer_g2b()
            if self._out is not None and self._options.summary_every and now >= next_table:
                self._out.write(await self.summary())
                self._out.flush()
                next_table = now + self._options.summary_every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._options.tick)

    async def _outage(self, seconds: float) -> None:
        """Every side down (in-flight transfers cut), nothing dispatched, then every side up."""
        self.ready.clear()
        sides, self._sides = self._sides, {}
        for side in sides.values():
            await side.stop(timeout=1.0)
        began = self._clock()  # every listener closed, every transfer in flight ended
        log.warning("simulator.outage_began", seconds=seconds, sides=sorted(sides))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        back = self._clock()  # from here each side listens again as soon as it is started
        if not self._stop.is_set():
            await self._start_sides()
        self._outages.append((began, back))
        self._outage_for = None
        self.ready.set()
        log.warning("simulator.outage_ended", sides=sorted(self._sides))

    async def summary(self) -> str:
        deposits = await run_blocking(self._state.deposits)
        counts = await run_blocking(self._state.counts)
        names = [c.name for c in self._config.connections]
        return render_summary(names, deposits, counts, simulated=set(self._sides))

    async def _dispatch(self) -> None:
        """Due flows, in order within a connection, connections side by side."""
        now = self._clock().timestamp()
        queues: dict[str, list[Due]] = {}
        for flow in await run_blocking(self._state.due, now=now, limit=200):
            if flow.connection in self._sides:
                queues.setdefault(flow.connection, []).append(flow)
        await asyncio.gather(*(self._drain(name, flows) for name, flows in queues.items()))

    async def _drain(self, connection: str, flows: list[Due]) -> None:
        side = self._sides[connection]
        for flow in flows:
            if not await self._send(side, flow):
                return  # keep the order: what follows waits for the retry

    async def _send(self, side: Side, flow: Due) -> bool:
        try:
            await side.deliver(flow.file_name.partition("_")[2].partition(".")[0],
                               flow.file_name, flow.body)  # fmt: skip
        except SendError as exc:
            attempts = flow.attempts + 1
            retry_at = self._clock().timestamp() + min(self._options.retry_cap, 2.0**attempts)
            if attempts >= MAX_ATTEMPTS:
                retry_at = float("inf")
            await run_blocking(self._state.mark_failed, flow.id, reason=str(exc), retry_at=retry_at)
            log.warning("simulator.send_failed", connection=flow.connection,
                        file_name=flow.file_name, reason=str(exc), attempt=attempts)  # fmt: skip
            return False
        await run_blocking(self._state.mark_sent, flow.id, now=self._clock().timestamp())
        log.info("simulator.sent", connection=flow.connection, interface_code=flow.code,
                 file_name=flow.file_name, kind=flow.kind)  # fmt: skip
        return True

    def _g2b_connections(self) -> list[ConnectionConfig]:
        return [c for c in self._config.connections
                if c.circuit is Circuit.G2B and c.name in self._sides]  # fmt: skip

    async def _issue_g2b(self) -> None:
        for conn in self._g2b_connections():
            self._issued += 1
            stamp = self._clock().strftime("%H%M%S")
            number = f"G2B-{conn.environment.value.upper()}-{stamp}-{self._issued:03d}"
            await run_blocking(self.desk.issue_g2b_invoice, conn, number)

    async def _answer_g2b(self) -> None:
        """Once the back office has a G2B invoice (delivery folder), drop a status about it."""
        intake = self._config.intake
        if intake.drop_dir is None or intake.delivery.folder is None:
            return
        by_name = {c.name: c for c in self._config.connections}
        waiting = await run_blocking(self._state.issued_invoices, unanswered=True)
        for connection, number, file_name in waiting:
            folder = intake.delivery.folder / self.desk.g2b_invoice_code
            if not await run_blocking(_delivered, folder, file_name):
                continue
            env = by_name[connection].environment.value
            await run_blocking(drop_file, intake.drop_dir, environment=env, code=G2B_STATUS_CODE,
                               name=f"status-{number}.xml", data=g2b_status(number))  # fmt: skip
            await run_blocking(self._state.mark_answered, number)


def prepare(config: Config) -> list[Path]:
    """Blocking: what the gateway must find before it starts (the SFTP host-key pins)."""
    return [prepare_known_hosts(c) for c in config.connections if c.protocol is Protocol.SFTP]


def _delivered(folder: Path, file_name: str) -> bool:
    return folder.is_dir() and any(folder.glob(f"*_{file_name}"))
