"""Child process of test_crash: accepts payloads until it is SIGKILLed.

`python -m tests.store.crash_child ROOT SEED`. Prints `READY` once the store is open, then
`ACK <message_id> <sha256>` for each receipt, written and flushed only after `accept`
returned: every ACK line the parent reads is a promise the store must keep after a crash.
Several producers run at once (group commits), some streaming, some resending, some reusing
a peer id with other bytes; most are routed or rejected in their accept commit, the others
by a mover that also claims and settles messages meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from gateway.model import Direction, Environment, MessageState
from gateway.store import (
    ConflictingRepeat,
    Decide,
    RejectWith,
    RetryPolicy,
    RouteTo,
    Submission,
    open_store,
)
from gateway.store.sqlite import SQLiteStore

PRODUCERS = 4
SIZES = (0, 1, 512, 10_240, 65_536, 200_000, 1_500_000)
WEIGHTS = (1, 2, 4, 8, 4, 2, 1)
POLICY = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
ROUTE = RouteTo("c1", Environment.QUAL, lambda message_id: f"FSO1100A_{message_id}.xml")
REJECT = RejectWith("wrong format")
DECISIONS: tuple[Decide | None, ...] = (None, lambda _: ROUTE, lambda _: ROUTE, lambda _: REJECT)


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def pieces(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    offset = 0
    while offset < len(data):
        step = rng.randint(1, 256 * 1024)
        yield data[offset : offset + step]
        offset += step
        await asyncio.sleep(0)


async def producer(store: SQLiteStore, rng: random.Random, index: int) -> None:
    history: list[tuple[bytes, str | None]] = []
    for n in itertools.count():
        roll = rng.random()
        if history and roll < 0.1:
            data, peer = rng.choice(history)  # a resend: must come back as a duplicate
        elif history and roll < 0.15:
            data, peer = rng.randbytes(rng.randint(1, 5000)), rng.choice(history)[1]  # refused
        else:
            data = rng.randbytes(rng.choices(SIZES, WEIGHTS)[0])
            peer = f"<{index}-{n}-{rng.getrandbits(48)}@child>" if rng.random() < 0.5 else None
            history = [*history[-19:], (data, peer)]
        submission = Submission(
            source=f"src-{index % 2}",
            direction=Direction.EMISSION,
            interface_code="FSO1100A",
            protocol="sftp",
            peer_message_id=peer,
            expected_size=len(data),
            decide=rng.choice(DECISIONS),
        )
        payload = data if rng.random() < 0.5 else pieces(data, rng)
        try:
            receipt = await store.accept(payload, submission)
        except ConflictingRepeat:  # a peer id reused for other bytes: refused, nothing acked
            continue
        emit(f"ACK {receipt.message_id} {receipt.sha256}")


async def mover(store: SQLiteStore, rng: random.Random) -> None:
    while True:
        for message in await store.list_messages(state=MessageState.ACCEPTED, limit=5):
            await store.route(message.id, connection="c1")
        for message in await store.claim_due(connection="c1", limit=5):
            if rng.random() < 0.5:
                await store.record_sent(message.id, peer_message_id=None, awaiting_ack=False)
            else:
                await store.record_failure(
                    message.id, reason="peer down", retryable=True, policy=POLICY
                )
        await asyncio.sleep(0.002)


async def main(root: Path, seed: int) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    store = await open_store(root)
    await store.recover()
    emit("READY")
    rng = random.Random(seed)
    tasks = [producer(store, random.Random(rng.random()), i) for i in range(PRODUCERS)]
    await asyncio.gather(*tasks, mover(store, random.Random(rng.random())))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
