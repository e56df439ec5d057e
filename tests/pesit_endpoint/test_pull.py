"""Pulls (SELECT/READ): our puller against a PeSIT server, here our own server playing AIFE's.

One run covers both adapters: the server serving the flows waiting for its peer, and the
puller emptying each PI 12 into an inbox port, a real store in the end-to-end case.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from gateway.model import Direction, MessageState
from gateway.store.sqlite import open_store
from protocols.pesit.endpoint import OutgoingFile, Spool, pull
from protocols.ports import RefusalKind, TransferRefused
from tests.pesit_endpoint.helpers import (
    CODE,
    Admit,
    MemoryInbox,
    Pki,
    Recorder,
    StoreInbox,
    Waiting,
    payload,
    peer,
    start_listener,
)

OTHER = "CSO1100A"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _waiting(tmp_path: Path, *specs: tuple[str, str, bytes]) -> Waiting:
    files = []
    for index, (message_id, code, body) in enumerate(specs):
        path = tmp_path / f"{message_id}.xml"
        path.write_bytes(body)
        created = T0 + dt.timedelta(minutes=index)
        files.append(OutgoingFile(message_id, path, len(body), code, created, f"{message_id}.xml"))
    return Waiting(files)


async def test_every_waiting_flow_is_pulled_once_and_delivered(pki: Pki, tmp_path: Path) -> None:
    bodies = [payload(50_000, seed=1), payload(7, seed=2), payload(30_000, seed=3)]
    waiting = _waiting(
        tmp_path, ("M1", CODE, bodies[0]), ("M2", CODE, bodies[1]), ("M3", OTHER, bodies[2])
    )
    observer = Recorder()
    listener = await start_listener(pki, tmp_path / "served", outgoing=waiting, observer=observer)
    inbox, spool = MemoryInbox(), Spool(tmp_path / "pulled")
    names = {CODE: CODE, OTHER: OTHER}
    try:
        accepted = await asyncio.wait_for(
            pull(peer(pki, listener.port), names=names, spool=spool, inbox=inbox, max_size=1 << 20),
            10,
        )
        again = await pull(
            peer(pki, listener.port), names=names, spool=spool, inbox=inbox, max_size=1 << 20
        )
    finally:
        await listener.stop(timeout=1)
    assert [a.size for a in accepted] == [len(b) for b in bodies]
    assert [body for _, body in inbox.files] == bodies  # oldest first, code by code
    assert [i.interface_code for i, _ in inbox.files] == [CODE, CODE, OTHER]
    assert [i.file_name for i, _ in inbox.files] == ["M1.xml", "M2.xml", "M3.xml"]
    assert [d for d, _ in waiting.done] == ["M1", "M2", "M3"]
    assert again == []
    assert not list((tmp_path / "pulled").iterdir())
    assert observer.of("diagnostic") == [
        ("diagnostic", "sent", "2/205"),  # nothing more under each name, twice over
        ("diagnostic", "sent", "2/205"),
        ("diagnostic", "sent", "2/205"),
        ("diagnostic", "sent", "2/205"),
    ]


async def test_refused_code_is_skipped_and_nothing_is_served(pki: Pki, tmp_path: Path) -> None:
    waiting = _waiting(tmp_path, ("M1", CODE, b"<a/>"))
    listener = await start_listener(
        pki,
        tmp_path / "served",
        outgoing=waiting,
        admission=Admit({CODE: RefusalKind.CONNECTION_CLOSED}),
    )
    inbox = MemoryInbox()
    try:
        accepted = await pull(
            peer(pki, listener.port),
            names={CODE: CODE},
            spool=Spool(tmp_path / "pulled"),
            inbox=inbox,
            max_size=1 << 20,
        )
    finally:
        await listener.stop(timeout=1)
    assert accepted == []
    assert waiting.done == []


async def test_pulled_file_our_inbox_refuses_stays_with_the_server(
    pki: Pki, tmp_path: Path
) -> None:
    waiting = _waiting(tmp_path, ("M1", CODE, payload(20_000)))
    listener = await start_listener(pki, tmp_path / "served", outgoing=waiting)
    inbox = MemoryInbox(refuse=TransferRefused(RefusalKind.WRONG_FORMAT, "not a lifecycle"))
    try:
        accepted = await pull(
            peer(pki, listener.port),
            names={CODE: CODE},
            spool=Spool(tmp_path / "pulled"),
            inbox=inbox,
            max_size=1 << 20,
        )
    finally:
        await listener.stop(timeout=1)
    assert accepted == []
    assert waiting.done == []  # not delivered: the server keeps it
    assert not list((tmp_path / "pulled").iterdir())


async def test_pulled_file_over_our_limit_is_interrupted(pki: Pki, tmp_path: Path) -> None:
    waiting = _waiting(tmp_path, ("M1", CODE, payload(60_000)))
    listener = await start_listener(pki, tmp_path / "served", outgoing=waiting)
    inbox = MemoryInbox()
    try:
        accepted = await pull(
            peer(pki, listener.port),
            names={CODE: CODE},
            spool=Spool(tmp_path / "pulled"),
            inbox=inbox,
            max_size=10_000,
        )
    finally:
        await listener.stop(timeout=1)
    assert (accepted, inbox.files, waiting.done) == ([], [], [])


async def test_push_and_pull_through_a_real_store(pki: Pki, tmp_path: Path) -> None:
    """AIFE's flow is pushed into our store, then AIFE pulls it back: delivered, same bytes."""
    from protocols.pesit.endpoint import push
    from protocols.pesit.events import FileInfo

    body = payload(123_457)
    source = tmp_path / "flow.xml"
    source.write_bytes(body)
    store = await open_store(tmp_path / "store")
    served = Waiting()
    listener = await start_listener(pki, tmp_path / "spool", inbox=StoreInbox(store))
    try:
        await push(peer(pki, listener.port), source, file=FileInfo(file_name=CODE, transfer_id=5))
        [message] = await store.list_messages(direction=Direction.RECEPTION)
        assert (message.state, message.size) == (MessageState.ACCEPTED, len(body))
        assert message.connection == "b2g-prod-pesit"
        assert store.payload_path(message).read_bytes() == body
        served.files.append(
            OutgoingFile(
                message.id,
                store.payload_path(message),
                message.size,
                CODE,
                message.created_at,
            )
        )
        back = MemoryInbox()
        server = await start_listener(pki, tmp_path / "served", outgoing=served)
        try:
            await pull(
                peer(pki, server.port),
                names={CODE: CODE},
                spool=Spool(tmp_path / "pulled"),
                inbox=back,
                max_size=1 << 20,
            )
        finally:
            await server.stop(timeout=1)
    finally:
        await listener.stop(timeout=1)
        await store.close()
    assert [b for _, b in back.files] == [body]
    assert served.done[0][0] == message.id
