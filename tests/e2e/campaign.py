"""The campaign driver: waves of invoices in, the gateway killed and restarted, Chorus Pro down
for a while, a hostile peer, then wait until everything owed both ways has arrived.

The simulator runs in this process (its state is read directly); the gateway is a real
`raccord serve` process (its store is read with read-only queries). Everything random comes
from the `Plan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import Config
from gateway.simulator import flows
from gateway.simulator.desk import new_flow_id
from gateway.simulator.feeder import drop_file
from gateway.simulator.hostile import Impersonation, impersonate
from gateway.simulator.runner import Simulator
from gateway.simulator.samples import cii_invoice, ubl_invoice
from tests.e2e.gateway_process import GatewayProcess, total
from tests.e2e.plan import Armed, Hostile, Invoice, Plan

__all__ = ["ArmedKill", "HostileOutcome", "Record", "World", "read_store", "run"]


@dataclass(frozen=True, slots=True)
class World:
    """A campaign's configuration, simulator and gateway, under one temporary folder."""

    root: Path
    config: Config
    sim: Simulator
    gateway: GatewayProcess

    @property
    def drop(self) -> Path:
        assert self.config.intake.drop_dir is not None
        return self.config.intake.drop_dir

    @property
    def outgoing(self) -> Path:
        assert self.config.intake.delivery.folder is not None
        return self.config.intake.delivery.folder

    @property
    def store(self) -> Path:
        return self.config.gateway.data_dir / "raccord.db"


@dataclass(frozen=True, slots=True)
class HostileOutcome:
    """One hostile attempt, and the gateway's auth-failure counter around it (one process)."""

    hostile: Hostile
    outcome: Impersonation
    failures_before: float
    failures_after: float
    log: Path


@dataclass(frozen=True, slots=True)
class ArmedKill:
    """An armed kill as it went; `fired` False: it fell back to a plain kill because no
    deposit (or no answer) came in time."""

    armed: Armed
    fired: bool
    at: float  # s from the start


@dataclass(slots=True)
class Record:
    """What happened, for the audit and for a replay."""

    plan: Plan
    started: float = 0.0  # monotonic
    dropped_at: dict[str, float] = field(default_factory=dict)  # invoice -> Unix time
    kills_at: list[float] = field(default_factory=list)  # s from the start, as they happened
    hostile: list[HostileOutcome] = field(default_factory=list)
    armed: list[ArmedKill] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # raised where no test could see it
    settled_after: float = 0.0  # s from the start

    def why(self, problems: list[str], limit: int = 15) -> str:
        shown = "\n  ".join(problems[:limit])
        more = f"\n  … and {len(problems) - limit} more" if len(problems) > limit else ""
        return f"{self.plan.replay()}\n  {shown}{more}"


@contextlib.contextmanager
def read_store(path: Path) -> Iterator[sqlite3.Connection]:
    """A query-only connection to the gateway's store (it may be running)."""
    db = sqlite3.connect(path, timeout=30.0)
    try:
        db.execute("PRAGMA query_only = ON")
        yield db
    finally:
        db.close()


def _payload(invoice: Invoice) -> bytes:
    make = cii_invoice if invoice.cii else ubl_invoice
    return make(invoice.number, issued=dt.date.today())


async def _at(started: float, seconds: float) -> None:
    await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))


async def _feed(world: World, record: Record) -> None:
    """Each wave at its time: every file written `.part`, fsynced, renamed into place."""
    plan = record.plan
    for wave in range(plan.waves):
        await _at(record.started, 1.0 + wave * plan.wave_every)
        mine = [i for i in plan.invoices if i.wave == wave]
        for invoice in mine:
            await asyncio.to_thread(
                drop_file, world.drop, environment=invoice.lane.environment, code=invoice.code,
                name=invoice.file_name, data=_payload(invoice),
            )  # fmt: skip
            record.dropped_at[invoice.number] = time.time()


async def _kill(world: World, record: Record) -> None:
    world.gateway.kill()
    record.kills_at.append(round(time.monotonic() - record.started, 2))
    world.gateway.start()


async def _armed_kill(world: World, record: Record, armed: Armed, *, wait: float) -> None:
    """Kill from inside the simulator, at the next deposit on the armed connection (or once
    its answer is out); a plain kill if that does not come within `wait` seconds."""
    fired = asyncio.Event()

    def action() -> None:
        try:
            world.gateway.kill()
            record.kills_at.append(round(time.monotonic() - record.started, 2))
            world.gateway.start()
        except (AssertionError, OSError) as exc:  # surfaced by the kill test
            record.errors.append(f"armed kill ({armed}): {exc}")
        fired.set()

    desk = world.sim.desk
    desk.on_next_deposit(armed.connection, action, after_answer=armed.after_answer)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fired.wait(), wait)
    if desk.disarm(armed.connection):
        await _kill(world, record)
    at = round(time.monotonic() - record.started, 2)
    record.armed.append(ArmedKill(armed, fired.is_set(), at))


async def _hostile(world: World, record: Record, hostile: Hostile) -> None:
    """A forged status (REJETEE) about an invoice already out, wearing another certificate."""
    victim = next(i for i in record.plan.invoices if i.lane.connection == hostile.target)
    flow_id = new_flow_id()
    name = f"{hostile.lifecycle_code}_{flow_id}.xml"
    body = flows.lifecycle_flow(
        deposited_name=victim.file_name,
        statuses=[(victim.number, flows.Lifecycle("REJETEE", "forged by a hostile peer"))],
        now=dt.datetime.now(dt.UTC),
    )
    await world.gateway.started()
    protocol = next(c.protocol.value for c in world.config.connections if c.name == hostile.target)
    before = total(await world.gateway.counters("raccord_authentication_failures"),
                   protocol=protocol)  # fmt: skip
    outcome = await impersonate(world.config, target=hostile.target, wearing=hostile.wearing,
                                flow_id=flow_id, file_name=name, body=body)  # fmt: skip
    after = total(await world.gateway.counters("raccord_authentication_failures"),
                  protocol=protocol)  # fmt: skip
    record.hostile.append(HostileOutcome(hostile, outcome, before, after, world.gateway.log))


async def _chaos(world: World, record: Record) -> None:
    """Kills, the outage and the hostile attempts, in time order (never two at once)."""
    plan = record.plan
    steps: list[tuple[float, Callable[[], Awaitable[None]]]] = [
        (at, functools.partial(_armed_kill, world, record, plan.armed[n], wait=8.0))
        if n in plan.armed else (at, functools.partial(_kill, world, record))
        for n, at in enumerate(plan.kills)
    ]  # fmt: skip

    async def outage() -> None:
        world.sim.request_outage(plan.outage_for)

    steps.append((plan.outage_at, outage))
    steps.extend((h.at, functools.partial(_hostile, world, record, h)) for h in plan.hostile)
    for at, step in sorted(steps, key=lambda s: s[0]):
        await _at(record.started, at)
        await step()


def _progress(world: World, record: Record) -> dict[str, int]:
    """Counts that reach their targets when the campaign is settled."""
    numbers = {i.number for i in record.plan.invoices}
    deposits = world.sim.state.deposits()
    counts = world.sim.state.counts()
    with read_store(world.store) as db:
        unsettled = db.execute(
            "SELECT COUNT(*) FROM messages WHERE correlated_at IS NULL"
            " OR (direction = 'emission' AND state != 'acknowledged')"
            " OR (direction = 'reception' AND state != 'delivered')"
        ).fetchone()[0]
        received = db.execute(
            "SELECT COUNT(*) FROM messages WHERE direction = 'reception'"
        ).fetchone()[0]
    return {
        "invoices deposited": sum(1 for d in deposits for n in d.invoices if n in numbers),
        "flows owed by the simulator": sum(p for _, p in counts.values()),
        "flows the simulator sent": sum(s for s, _ in counts.values()),
        "flows the gateway received": int(received),
        "messages not settled in the gateway": int(unsettled),
    }


def _settled(progress: dict[str, int], invoices: int) -> bool:
    return (
        progress["invoices deposited"] >= invoices
        and progress["flows owed by the simulator"] == 0
        and progress["messages not settled in the gateway"] == 0
        and progress["flows the gateway received"] >= progress["flows the simulator sent"]
    )


async def _until_settled(world: World, record: Record, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    progress: dict[str, int] = {}
    while time.monotonic() < deadline:
        progress = await asyncio.to_thread(_progress, world, record)
        if _settled(progress, len(record.plan.invoices)) and not world.sim.down:
            record.settled_after = round(time.monotonic() - record.started, 1)
            return
        await asyncio.sleep(1.0)
    raise AssertionError(record.why([f"not settled after {timeout:.0f} s: {progress}"]))


async def run(world: World, plan: Plan, *, settle_timeout: float) -> Record:
    """The whole campaign; returns once everything owed both ways arrived (or raises)."""
    record = Record(plan)
    world.gateway.start()
    await world.gateway.started()
    record.started = time.monotonic()
    await asyncio.gather(_feed(world, record), _chaos(world, record))
    await world.gateway.started()
    await _until_settled(world, record, timeout=settle_timeout)
    return record
