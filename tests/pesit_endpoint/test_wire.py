"""The session's transport end on real loopback sockets: bounded reading, drain, the end.

Hostile first: a peer that floods while the application does not take must be held back by
the transport (reading paused), not buffered without bound; a drain waiting on a peer that
stopped reading must end when the connection does; a peer that vanishes is an end of stream.
"""

from __future__ import annotations

import asyncio

from protocols.pesit.endpoint.wire import Wire
from tests.pesit_endpoint.helpers import wait_for

LIMIT = 64 * 1024


async def _pair(
    *, limit: int = LIMIT
) -> tuple[Wire, asyncio.StreamReader, asyncio.StreamWriter, asyncio.Server]:
    """Our wire as a server, and a plain asyncio stream as the peer."""
    loop = asyncio.get_running_loop()
    made: list[Wire] = []

    def protocol() -> Wire:
        made.append(Wire(limit=limit))
        return made[-1]

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await wait_for(lambda: bool(made) and made[0].transport is not None)
    return made[0], reader, writer, server


async def test_a_flood_not_taken_pauses_reading_and_resumes_when_taken() -> None:
    wire, _, peer, server = await _pair()
    try:
        transport = wire.transport
        assert isinstance(transport, asyncio.ReadTransport)
        peer.write(b"x" * (8 * LIMIT))
        await wait_for(lambda: not transport.is_reading())  # held back past the limit
        taken = 0
        while taken < 8 * LIMIT:
            chunks = wire.take()
            taken += sum(map(len, chunks))
            assert transport.is_reading() or not chunks
            await asyncio.sleep(0.001)
        assert taken == 8 * LIMIT
    finally:
        peer.close()
        server.close()
        await wire.close()


async def test_the_wire_wakes_its_session_and_sees_the_end() -> None:
    wire, _, peer, server = await _pair()
    woken: list[int] = []
    wire.on_ready = lambda: woken.append(1)
    try:
        peer.write(b"hello")
        await wait_for(lambda: wire.has_data)
        assert b"".join(wire.take()) == b"hello"
        assert not wire.has_data
        peer.close()
        await wait_for(lambda: wire.ended)
        assert woken
    finally:
        server.close()
        await wire.close(timeout=1)


async def test_a_drain_blocked_by_a_peer_that_stopped_reading_ends_with_the_connection() -> None:
    wire, _, peer, server = await _pair()
    transport = wire.transport
    assert isinstance(transport, asyncio.Transport)
    transport.set_write_buffer_limits(high=LIMIT)
    try:
        while True:  # the peer never reads: the kernel buffers fill, then asyncio's
            wire.write(b"y" * LIMIT)
            if transport.get_write_buffer_size() > LIMIT:
                break
            await asyncio.sleep(0)
        draining = asyncio.ensure_future(wire.drain())
        await asyncio.sleep(0.05)
        assert not draining.done()
        peer.transport.abort()
        await asyncio.wait_for(draining, 5)  # ends, and raises nothing
    finally:
        server.close()
        await wire.close(timeout=1)
    assert wire.ended
    wire.write(b"after the end")  # dropped, not an error
    await wire.drain()
