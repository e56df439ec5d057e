"""The HTTP API on a real loopback server: authentication first, then every answer."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.admin import AdminServer, build_app
from gateway.api import add_routes, token_matches
from gateway.metrics import REGISTRY
from gateway.model import ConnectionStatus, MessageState
from gateway.store.sqlite import SQLiteStore
from tests.routing.conftest import World, build_world, make_config, payload, sheet

TOKEN = "s3cret-token-for-tests"
UBL = payload("ubl-invoice.xml")
CII = payload("cii-16b.xml")


class Api:
    """A running admin server with the API, and a client session."""

    def __init__(self, world: World, url: str, session: aiohttp.ClientSession) -> None:
        self.world = world
        self.url = url
        self.session = session

    async def post(
        self,
        data: object,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        params = {"interface": "FSO1100A", "environment": "qual", **(query or {})}
        async with self.session.post(
            f"{self.url}/v1/flows", params=params, data=data, headers=sent
        ) as response:
            return response.status, await response.json(), response

    async def get(self, message_id: str, *, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.get(
            f"{self.url}/v1/messages/{message_id}", headers=headers
        ) as response:
            return response.status, await response.json()


async def serve(world: World) -> AsyncIterator[Api]:
    async def probe() -> dict[str, bool]:
        return {"ok": True}

    context = world.context()
    app = build_app(probe, lambda: context)
    add_routes(app)
    server = AdminServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(world, f"http://127.0.0.1:{server.bound_port}", session)
    finally:
        await server.stop()


def with_token(**admin: Any) -> dict[str, Any]:
    return {"gateway": {"admin": {"api_token": TOKEN, **admin}}}


@pytest.fixture
async def api(store: SQLiteStore) -> AsyncIterator[Api]:
    async for running in serve(build_world(make_config(**with_token()), store)):
        yield running


def auth_failures(reason: str) -> float:
    labels = {"protocol": "api", "reason": reason}
    return REGISTRY.get_sample_value("raccord_authentication_failures_total", labels) or 0.0


# --- authentication first ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "header", "reason"),
    [
        (None, None, "missing-token"),
        (None, "Basic " + TOKEN, "missing-token"),
        (None, "Bearer ", "missing-token"),
        (TOKEN[:-1], None, "wrong-token"),
        (TOKEN + "x", None, "wrong-token"),
        ("é\udcff", None, "wrong-token"),
    ],
    ids=["none", "basic", "empty", "prefix", "longer", "non-ascii"],
)
async def test_a_wrong_or_missing_token_is_401_and_nothing_is_stored(
    api: Api, token: str | None, header: str | None, reason: str
) -> None:
    before = auth_failures(reason)
    headers = {"Authorization": header} if header else {}
    if token is not None and not token.isascii():
        headers = {"Authorization": "Bearer " + token.encode("utf-8", "surrogateescape").hex()}
        token = None
    status, body, response = await api.post(UBL, token=token, headers=headers)
    assert (status, body["error"]) == (401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="raccord"'
    assert auth_failures(reason) == before + 1
    assert await api.world.store.list_messages() == []
    async with api.session.get(f"{api.url}/v1/messages/x") as answer:
        assert answer.status == 401


async def test_without_a_configured_token_the_api_is_closed(store: SQLiteStore) -> None:
    async for running in serve(build_world(make_config(), store)):
        status, body, _ = await running.post(UBL, token="anything")
        assert (status, body["error"]) == (403, "api-disabled")


async def test_the_token_may_come_from_a_file(store: SQLiteStore, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    config = make_config(gateway={"admin": {"api_token_file": str(secret)}})
    async for running in serve(build_world(config, store)):
        assert (await running.post(UBL))[0] == 201
        assert (await running.post(UBL, token="nope"))[0] == 401


def test_token_comparison_time_does_not_depend_on_where_it_differs() -> None:
    expected = ("k" * 63 + "z").encode()
    candidates = {
        "first-byte": b"x" + expected[1:],
        "last-byte": expected[:-1] + b"x",
        "short": b"k",
        "long": expected * 50,
    }

    def batch(given: bytes) -> float:
        started = time.perf_counter_ns()
        for _ in range(300):
            token_matches(given, expected)
        return float(time.perf_counter_ns() - started)

    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(40):
        for name, given in candidates.items():
            samples[name].append(batch(given))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    assert medians["first-byte"] / medians["last-byte"] == pytest.approx(1.0, rel=0.5)
    assert token_matches(expected, expected)
    assert not any(token_matches(given, expected) for given in candidates.values())


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "data", "status", "error"),
    [
        ({"interface": "FSO9999A"}, UBL, 422, "unknown-code"),
        ({"interface": "FEN1200A"}, UBL, 422, "not-subscribed"),
        ({"interface": "XGB0002A", "environment": "prod"}, UBL, 422, "not-subscribed"),
        ({"interface": ""}, UBL, 400, "invalid"),
        ({"environment": "staging"}, UBL, 400, "invalid"),
        ({"filename": "../../etc/passwd"}, UBL, 400, "invalid"),
        ({}, CII, 415, "wrong-format"),
        ({}, b"", 415, "wrong-format"),
    ],
    ids=["unknown", "reception-code", "no-route", "no-code", "bad-env", "path", "cii", "empty"],
)
async def test_refusals_answer_4xx_with_the_reason(
    api: Api, params: dict[str, str], data: bytes, status: int, error: str
) -> None:
    got, body, _ = await api.post(data, query=params)
    assert (got, body["error"]) == (status, error)
    assert body["reason"]
    if error == "wrong-format":
        message = await api.world.store.get(body["message_id"])
        assert (message.state, message.last_error) == (MessageState.REJECTED, body["reason"])


async def test_an_inactive_connection_is_409(store: SQLiteStore) -> None:
    world = build_world(
        make_config(**with_token()), store, statuses={"b2g-qual": ConnectionStatus.INACTIF}
    )
    async for running in serve(world):
        status, body, _ = await running.post(UBL)
        assert (status, body["error"]) == (409, "connection-closed")
        assert "status is inactif" in body["reason"]


async def test_too_large_is_413_announced_or_streamed(store: SQLiteStore) -> None:
    config = make_config([sheet("b2g-qual", max_size=1000)], **with_token())
    async for running in serve(build_world(config, store)):

        async def announced() -> AsyncIterator[bytes]:
            yield UBL + b" " * 5_000_000

        length = {"Content-Length": str(len(UBL) + 5_000_000)}
        status, body, _ = await running.post(announced(), headers=length)
        assert (status, body["error"]) == (413, "too-large")

        async def chunked() -> AsyncIterator[bytes]:
            yield UBL
            yield b" " * 1000

        status, body, _ = await running.post(chunked())
        assert (status, body["error"]) == (413, "too-large")
        assert await store.list_messages() == []


async def test_a_client_that_hangs_up_mid_body_leaves_nothing(api: Api) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/flows?interface=FSO1100A&environment=qual HTTP/1.1\r\n"
        b"Host: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Length: 1000000\r\n\r\n" + UBL[:500]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader
    await asyncio.sleep(0.3)
    assert await api.world.store.list_messages() == []
    assert api.world.store.root.joinpath("payloads", "tmp").exists()
    assert list(api.world.store.root.joinpath("payloads", "tmp").iterdir()) == []


# --- acceptance ----------------------------------------------------------------------------


async def test_201_then_200_with_the_original_id_for_the_same_file(api: Api) -> None:
    status, created, response = await api.post(UBL, query={"filename": "inv.xml"})
    assert status == 201
    assert response.headers["Location"] == f"/v1/messages/{created['message_id']}"
    assert (created["state"], created["connection"]) == ("queued", "b2g-qual")
    assert created["file_name"] == f"FSO1100A_{created['message_id']}.xml"
    status, again, _ = await api.post(UBL, query={"filename": "other.xml"})
    assert (status, again["message_id"], again["duplicate"]) == (
        200,
        created["message_id"],
        True,
    )


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('attachment; filename="facture 1.xml"', "facture 1.xml"),
        ("attachment; filename*=UTF-8''facture%C3%A9.xml", "factureé.xml"),
        ('attachment; filename="unterminated', None),
        ("; ;; =", None),
    ],
)
async def test_the_file_name_may_come_from_content_disposition(
    api: Api, disposition: str, name: str | None
) -> None:
    status, body, _ = await api.post(
        UBL + disposition.encode(), headers={"Content-Disposition": disposition}
    )
    assert status == 201
    message = await api.world.store.get(body["message_id"])
    assert message.file_name == f"FSO1100A_{message.id}.xml"  # the outbound name
    routed = next(e for e in await api.world.store.events(message.id) if e.kind == "routed")
    assert routed.detail["submitted_as"] == name  # the name it was given, kept in history


async def test_the_same_idempotency_key_is_one_message(api: Api) -> None:
    key = {"Idempotency-Key": "order-2026-0042"}
    first = await api.post(UBL, headers=key)
    second = await api.post(UBL, headers=key)
    assert (first[0], second[0]) == (201, 200)
    assert first[1]["message_id"] == second[1]["message_id"]


async def test_an_idempotency_key_reused_for_another_body_is_refused(api: Api) -> None:
    """Answering with the first message would drop the second invoice without a word."""
    key = {"Idempotency-Key": "order-2026-0042"}
    first = await api.post(UBL, headers=key)
    status, body, _ = await api.post(UBL.replace(b"2026-09-01", b"2026-09-02"), headers=key)
    assert (first[0], status) == (201, 400)
    assert body["error"] == "invalid"
    assert "order-2026-0042" in body["reason"]
    events = await api.world.store.events(first[1]["message_id"])
    assert [e.kind for e in events][-1] == "conflicting_repeat"


async def test_a_large_chunked_body_is_streamed_to_disk(api: Api) -> None:
    tail = b"<!--" + b"x" * (3 << 20) + b"-->"

    async def chunked() -> AsyncIterator[bytes]:
        yield UBL
        for start in range(0, len(tail), 1 << 16):
            yield tail[start : start + (1 << 16)]

    status, body, _ = await api.post(chunked())
    assert status == 201
    assert body["size"] == len(UBL) + len(tail)
    message = await api.world.store.get(body["message_id"])
    assert api.world.store.payload_path(message).read_bytes() == UBL + tail


async def test_get_message_returns_state_and_events(api: Api) -> None:
    _, created, _ = await api.post(UBL)
    status, body = await api.get(created["message_id"])
    assert status == 200
    assert body["message"]["state"] == "queued"
    assert [e["kind"] for e in body["events"]] == ["accepted", "routed"]
    assert body["related"] == []
    for junk in ("01NOSUCHMESSAGE", "a" * 200, "..%2F..%2Fetc"):
        status, missing = await api.get(junk)
        assert (status, missing["error"]) == (404, "not-found")
