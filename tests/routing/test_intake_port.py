"""The inbox port with a real store: refusals recorded and returned, duplicates, the sweep."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.model import ConnectionStatus, Direction, Environment, MessageState
from gateway.store import Submission
from gateway.store.sqlite import SQLiteStore
from gateway.store.writer import Writer
from gateway.wakeups import CORRELATE, DELIVER
from protocols.ports import Incoming, RefusalKind, TransferRefused
from tests.gateway.test_sniff import facturx_pdf
from tests.routing.conftest import World, build_world, make_config, payload, sheet

UBL = payload("ubl-invoice.xml")
CII = payload("cii-16b.xml")


def emission(code: str = "FSO1100A", environment: str | None = "qual", **kw: object) -> Incoming:
    return Incoming(
        protocol="api",
        direction="emission",
        source="api",
        interface_code=code,
        environment=environment,
        **kw,  # type: ignore[arg-type]
    )


def reception(code: str, connection: str = "b2g-qual", **kw: object) -> Incoming:
    return Incoming(
        protocol="as2",
        direction="reception",
        source=connection,
        interface_code=code,
        connection=connection,
        **kw,  # type: ignore[arg-type]
    )


async def refused(world: World, data: bytes, incoming: Incoming) -> TransferRefused:
    with pytest.raises(TransferRefused) as info:
        await world.port.accept(data, incoming)
    return info.value


def woken(world: World, *keys: str) -> list[str]:
    calls: list[str] = []
    for key in keys:
        world.wakeups.register(key, lambda key=key: calls.append(key))  # type: ignore[misc]
    return calls


# --- hostile first -------------------------------------------------------------------------


async def test_unknown_code_is_refused_before_a_byte_is_stored(world: World) -> None:
    error = await refused(world, UBL, emission("FSO9999A"))
    assert (error.kind, error.message_id) == (RefusalKind.UNKNOWN_CODE, None)
    assert await world.store.list_messages() == []


async def test_wrong_format_is_stored_rejected_and_the_reason_returned(world: World) -> None:
    error = await refused(world, CII, emission("FSO1100A", file_name="in.xml"))
    assert error.kind == RefusalKind.WRONG_FORMAT
    assert error.message_id is not None
    message = await world.store.get(error.message_id)
    assert message.state is MessageState.REJECTED
    assert message.last_error == error.reason
    assert error.reason.startswith("payload is not ubl-invoice: CII 16B")
    kinds = [e.kind for e in await world.store.events(message.id)]
    assert kinds == ["accepted", "rejected"]


async def test_a_pdf_without_embedded_cii_is_not_factur_x(world: World) -> None:
    error = await refused(world, facturx_pdf(None), emission("FSO1117A"))
    assert error.kind == RefusalKind.WRONG_FORMAT
    assert "payload is not facturx" in error.reason


async def test_an_inactive_connection_refuses_before_storing(store: SQLiteStore) -> None:
    world = build_world(make_config(), store, statuses={"b2g-qual": ConnectionStatus.INACTIF})
    error = await refused(world, UBL, emission())
    assert error.kind == RefusalKind.CONNECTION_CLOSED
    assert "status is inactif" in error.reason
    assert await store.list_messages() == []


async def test_oversize_is_refused_announced_or_streamed(store: SQLiteStore) -> None:
    world = build_world(make_config([sheet("b2g-qual", max_size=len(UBL) - 1)]), store)
    error = await refused(world, UBL, emission(expected_size=len(UBL)))
    assert error.kind == RefusalKind.TOO_LARGE

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(UBL), 100):
            yield UBL[start : start + 100]

    error = await refused(world, stream(), emission())  # type: ignore[arg-type]
    assert error.kind == RefusalKind.TOO_LARGE
    assert await store.list_messages() == []


async def test_a_truncated_stream_is_refused(world: World) -> None:
    error = await refused(world, UBL, emission(expected_size=len(UBL) + 10))
    assert error.kind == RefusalKind.TRUNCATED
    assert await world.store.list_messages() == []


async def test_emission_without_an_environment_is_invalid(world: World) -> None:
    error = await refused(world, UBL, emission(environment=None))
    assert error.kind == RefusalKind.INVALID


async def test_hostile_file_names_are_refused(world: World) -> None:
    for name in ("../../etc/passwd", "a\r\nb.xml", "x" * 300):
        error = await refused(world, UBL + name.encode(), emission(file_name=name))
        assert error.kind == RefusalKind.INVALID, name


async def test_the_same_file_twice_is_one_message_routed_once(world: World) -> None:
    calls = woken(world, "b2g-qual")
    first = await world.port.accept(UBL, emission(file_name="a.xml"))
    second = await world.port.accept(UBL, emission(file_name="b.xml"))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.message_id == first.message_id
    kinds = [e.kind for e in await world.store.events(first.message_id)]
    assert kinds == ["accepted", "routed", "duplicate"]
    assert calls == ["b2g-qual"]


async def test_concurrent_repeats_get_the_same_id_and_one_route(world: World) -> None:
    results = await asyncio.gather(*(world.port.accept(UBL, emission()) for _ in range(10)))
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    kinds = [e.kind for e in await world.store.events(results[0].message_id)]
    assert kinds.count("routed") == 1


async def test_a_repeat_of_a_stranded_message_routes_it(world: World) -> None:
    stranded = await world.store.accept(
        UBL,
        Submission(
            source="api",
            direction=Direction.EMISSION,
            interface_code="FSO1100A",
            protocol="api",
            environment=Environment.QUAL,
        ),
    )
    repeat = await world.port.accept(UBL, emission())
    assert (repeat.message_id, repeat.duplicate) == (stranded.message_id, True)
    assert (await world.store.get(stranded.message_id)).state is MessageState.QUEUED


# --- routing -------------------------------------------------------------------------------


ROUTES = [
    ("FSO1100A", UBL, "qual", "b2g-qual", ".xml"),
    ("FSO1106A", CII, "prod", "b2g-prod", ".xml"),
    ("FSO1117A", facturx_pdf(CII), "qual", "b2g-qual", ".pdf"),
    ("XGB0002A", payload("cpp-statut.xml"), "qual", "g2b-qual", ".xml"),
]


@pytest.mark.parametrize("case", ROUTES, ids=[case[0] for case in ROUTES])
async def test_routed_to_the_one_connection_under_its_outbound_name(
    world: World, case: tuple[str, bytes, str, str, str]
) -> None:
    code, data, environment, connection, suffix = case
    calls = woken(world, connection, CORRELATE)
    accepted = await world.port.accept(data, emission(code, environment))
    message = await world.store.get(accepted.message_id)
    assert (message.state, message.connection) == (MessageState.QUEUED, connection)
    assert message.environment is Environment(environment)
    assert message.file_name == f"{code}_{message.id}{suffix}"
    assert calls == [connection, CORRELATE]


async def test_an_emission_is_recorded_and_routed_in_one_commit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acknowledgement waits for one durable commit, holding both events, not two."""
    batches: list[int] = []
    real = Writer._commit

    def counted(self: Writer, conn: sqlite3.Connection, batch: list[Any]) -> list[Any]:
        batches.append(len(batch))
        return real(self, conn, batch)

    monkeypatch.setattr(Writer, "_commit", counted)
    accepted = await world.port.accept(UBL, emission(file_name="a.xml"))
    refusal = await refused(world, CII, emission(file_name="b.xml"))
    assert batches == [1, 1]
    assert [e.kind for e in await world.store.events(accepted.message_id)] == [
        "accepted",
        "routed",
    ]
    assert refusal.message_id is not None
    kinds = [e.kind for e in await world.store.events(refusal.message_id)]
    assert kinds == ["accepted", "rejected"]


async def test_the_start_up_sweep_routes_stranded_messages_and_rejects_the_rest(
    world: World,
) -> None:
    def submission(code: str, environment: Environment | None, name: str) -> Submission:
        return Submission(
            source="folder",
            direction=Direction.EMISSION,
            interface_code=code,
            protocol="folder",
            environment=environment,
            file_name=name,
        )

    good = await world.store.accept(UBL, submission("FSO1100A", Environment.QUAL, "good.xml"))
    wrong = await world.store.accept(CII, submission("FSO1100A", Environment.QUAL, "wrong.xml"))
    lost = await world.store.accept(UBL, submission("FSO1106A", None, "lost.xml"))
    assert await world.router.sweep() == 1
    routed = await world.store.get(good.message_id)
    assert (routed.state, routed.file_name) == (
        MessageState.QUEUED,
        f"FSO1100A_{good.message_id}.xml",
    )
    refused_wrong = await world.store.get(wrong.message_id)
    assert refused_wrong.state is MessageState.REJECTED
    assert "payload is not ubl-invoice" in (refused_wrong.last_error or "")
    refused_lost = await world.store.get(lost.message_id)
    assert refused_lost.last_error == "no environment to route in"
    assert await world.router.sweep() == 0


# --- reception -----------------------------------------------------------------------------


async def test_a_flow_from_chorus_pro_is_stored_on_its_connection(world: World) -> None:
    calls = woken(world, DELIVER, CORRELATE)
    accepted = await world.port.accept(
        payload("cpp-statut.xml"), reception("FEN1200A", file_name="FEN1200A_77.xml")
    )
    message = await world.store.get(accepted.message_id)
    assert (message.direction, message.state) == (Direction.RECEPTION, MessageState.ACCEPTED)
    assert (message.connection, message.environment) == ("b2g-qual", Environment.QUAL)
    assert calls == [DELIVER, CORRELATE]


@pytest.mark.parametrize(
    ("code", "connection", "kind"),
    [
        ("FEN1200A", "g2b-qual", RefusalKind.NOT_SUBSCRIBED),
        ("FSO1100A", "b2g-qual", RefusalKind.NOT_SUBSCRIBED),
        ("FEN9999A", "b2g-qual", RefusalKind.UNKNOWN_CODE),
        ("FEN1200A", "no-such-connection", RefusalKind.CONNECTION_CLOSED),
    ],
)
async def test_reception_refusals(
    world: World, code: str, connection: str, kind: RefusalKind
) -> None:
    error = await refused(world, b"<x/>", reception(code, connection))
    assert error.kind == kind
    assert await world.store.list_messages() == []


async def test_reception_on_an_inactive_connection_is_refused(store: SQLiteStore) -> None:
    world = build_world(make_config(), store, statuses={"b2g-qual": ConnectionStatus.ERREUR})
    error = await refused(world, b"<x/>", reception("FEN1200A"))
    assert error.kind == RefusalKind.CONNECTION_CLOSED
