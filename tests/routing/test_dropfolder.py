"""The drop folder on real files: partial and hostile files first, then the rename protocol."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from gateway.dropfolder import DropFolder, scan
from gateway.metrics import REGISTRY
from gateway.model import ConnectionStatus, MessageState
from gateway.store.sqlite import SQLiteStore
from tests.routing.conftest import World, build_world, make_config, payload

UBL = payload("ubl-invoice.xml")
CII = payload("cii-16b.xml")


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    root = tmp_path / "drop"
    for name in ("qual", "prod", ".tmp"):
        (root / name).mkdir(parents=True)
    return root


def folder(world: World, root: Path, *, settle: float = 0.0) -> DropFolder:
    return DropFolder(root, port=world.port, store=world.store, settle_seconds=settle)


def put(root: Path, relative: str, data: bytes) -> Path:
    """The documented protocol: write `<name>.part`, then rename into place."""
    final = root / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    part.write_bytes(data)
    part.rename(final)
    return final


async def sweep(world: World, root: Path, *, settle: float = 0.0) -> None:
    service = folder(world, root, settle=settle)
    for candidate in scan(root, now=time.time(), settle=settle):
        await service.take(candidate)


def note(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def refused_count(kind: str) -> float:
    labels = {"protocol": "folder", "direction": "emission", "kind": kind}
    return REGISTRY.get_sample_value("raccord_refused_total", labels) or 0.0


# --- partial and hostile files first -------------------------------------------------------


async def test_partial_files_are_never_taken(world: World, drop: Path) -> None:
    (drop / "qual" / "FSO1100A").mkdir()
    (drop / "qual" / "FSO1100A" / "inv.xml.part").write_bytes(UBL[:100])
    (drop / ".tmp" / "FSO1100A_inv.xml").write_bytes(UBL)
    (drop / "qual" / ".FSO1100A_hidden.xml").write_bytes(UBL)
    fresh = drop / "qual" / "FSO1100A" / "being-written.xml"
    fresh.write_bytes(UBL[:50])  # a writer ignoring the protocol: too fresh to be taken
    await sweep(world, drop, settle=60)
    assert await world.store.list_messages() == []
    assert not (drop / "done").exists()
    assert fresh.exists()


async def test_a_symlink_to_a_secret_is_refused_without_reading_it(
    world: World, drop: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(UBL)  # even a valid payload: a link is never followed
    (drop / "qual" / "FSO1100A").mkdir()
    (drop / "qual" / "FSO1100A" / "inv.xml").symlink_to(secret)
    before = refused_count("invalid")
    await sweep(world, drop)
    assert await world.store.list_messages() == []
    moved = drop / "rejected" / "qual" / "inv.xml"
    assert moved.is_symlink()
    assert "symbolic links are refused" in str(note(moved.with_name("inv.xml.reason.json")))
    assert refused_count("invalid") == before + 1
    assert secret.read_bytes() == UBL


async def test_a_fifo_is_refused_and_never_blocks_the_scan(world: World, drop: Path) -> None:
    os.mkfifo(drop / "qual" / "FSO1100A_pipe.xml")
    put(drop, "qual/FSO1100A_after.xml", UBL)
    await asyncio.wait_for(sweep(world, drop), 10)
    reason = note(drop / "rejected" / "qual" / "FSO1100A_pipe.xml.reason.json")
    assert reason["reason"] == "not a regular file"
    assert (drop / "done" / "qual" / "FSO1100A" / "FSO1100A_after.xml").is_file()


MISPLACED = [
    ("loose.xml", "rejected/loose.xml", "invalid", "files go under <drop>/<environment>/"),
    ("qual/invoice.xml", "rejected/qual/invoice.xml", "invalid", "no interface code"),
    ("qual/fso1100a/inv.xml", "rejected/qual/inv.xml", "unknown-code", "not an interface code"),
    ("qual/FSO9999A/inv.xml", "rejected/qual/inv.xml", "unknown-code", "not in the interface"),
    ("qual/FEN1200A_inv.xml", "rejected/qual/FEN1200A_inv.xml", "not-subscribed", "reception"),
    ("prod/XGB0002A/st.xml", "rejected/prod/st.xml", "not-subscribed", "no connection"),
]


@pytest.mark.parametrize("case", MISPLACED, ids=[case[0] for case in MISPLACED])
async def test_misplaced_files_are_rejected_with_their_reason(
    world: World, drop: Path, case: tuple[str, str, str, str]
) -> None:
    relative, where, kind, why = case
    put(drop, relative, UBL)
    await sweep(world, drop)
    reason = note(drop / f"{where}.reason.json")
    assert reason["kind"] == kind
    assert why in str(reason["reason"])
    assert (drop / where).read_bytes() == UBL
    assert not (drop / relative).exists()


async def test_unknown_environments_are_left_alone(world: World, drop: Path) -> None:
    staged = put(drop, "staging/FSO1100A_inv.xml", UBL)
    await sweep(world, drop)
    assert staged.exists()
    assert await world.store.list_messages() == []


async def test_wrong_format_is_recorded_and_the_message_id_given(world: World, drop: Path) -> None:
    put(drop, "qual/FSO1100A/cii.xml", CII)
    await sweep(world, drop)
    reason = note(drop / "rejected" / "qual" / "cii.xml.reason.json")
    assert reason["kind"] == "wrong-format"
    message = await world.store.get(str(reason["message_id"]))
    assert (message.state, message.last_error) == (MessageState.REJECTED, reason["reason"])


async def test_an_inactive_connection_rejects_the_file(store: SQLiteStore, drop: Path) -> None:
    world = build_world(make_config(), store, statuses={"b2g-qual": ConnectionStatus.INACTIF})
    put(drop, "qual/FSO1100A_inv.xml", UBL)
    await sweep(world, drop)
    reason = note(drop / "rejected" / "qual" / "FSO1100A_inv.xml.reason.json")
    assert reason["kind"] == "connection-closed"
    assert await store.list_messages() == []


async def test_our_side_failing_leaves_the_file_for_the_next_scan(world: World, drop: Path) -> None:
    dropped = put(drop, "qual/FSO1100A_inv.xml", UBL)
    await world.store.close()  # the store is gone: nothing can be made durable
    await sweep(world, drop)
    assert dropped.read_bytes() == UBL
    assert not (drop / "rejected").exists()


# --- the protocol working ------------------------------------------------------------------


async def test_accepted_files_go_to_done_with_their_receipt(world: World, drop: Path) -> None:
    put(drop, "qual/FSO1100A/inv.xml", UBL)
    put(drop, "prod/FSO1106A_inv.xml", CII)
    await sweep(world, drop)
    first = note(drop / "done" / "qual" / "FSO1100A" / "inv.xml.receipt.json")
    second = note(drop / "done" / "prod" / "FSO1106A" / "FSO1106A_inv.xml.receipt.json")
    one = await world.store.get(str(first["message_id"]))
    two = await world.store.get(str(second["message_id"]))
    assert (one.connection, one.file_name) == ("b2g-qual", f"FSO1100A_{one.id}.xml")
    assert (two.connection, two.state) == ("b2g-prod", MessageState.QUEUED)
    assert (one.source, one.protocol) == ("folder:qual", "folder")
    assert first["duplicate"] is False


async def test_the_same_file_dropped_twice_is_one_message(world: World, drop: Path) -> None:
    put(drop, "qual/FSO1100A/inv.xml", UBL)
    await sweep(world, drop)
    put(drop, "qual/FSO1100A/inv.xml", UBL)
    await sweep(world, drop)
    done = drop / "done" / "qual" / "FSO1100A"
    first, again = note(done / "inv.xml.receipt.json"), note(done / "inv.xml.1.receipt.json")
    assert first["message_id"] == again["message_id"]
    assert again["duplicate"] is True
    assert len(await world.store.list_messages()) == 1


async def test_a_refused_file_dropped_again_is_refused_again(world: World, drop: Path) -> None:
    put(drop, "qual/FSO1100A/cii.xml", CII)
    await sweep(world, drop)
    put(drop, "qual/FSO1100A/cii.xml", CII)
    await sweep(world, drop)
    again = note(drop / "rejected" / "qual" / "cii.xml.1.reason.json")
    assert "refused: payload is not ubl-invoice" in str(again["reason"])


async def test_the_service_picks_up_files_renamed_into_place(world: World, drop: Path) -> None:
    service = DropFolder(
        drop, port=world.port, store=world.store, poll_interval=0.05, settle_seconds=0
    )
    await service.start()
    try:
        assert {p.name for p in drop.iterdir()} >= {"qual", "prod", ".tmp", "done", "rejected"}
        (drop / ".tmp" / "inv.xml").write_bytes(UBL)
        (drop / ".tmp" / "inv.xml").rename(drop / "qual" / "FSO1100A_inv.xml")
        receipt = drop / "done" / "qual" / "FSO1100A" / "FSO1100A_inv.xml.receipt.json"
        for _ in range(200):
            if receipt.exists():
                break
            await asyncio.sleep(0.02)
        assert receipt.exists()
    finally:
        await service.stop(timeout=5)
    assert not service.ready
