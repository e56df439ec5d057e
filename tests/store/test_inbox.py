"""StoreInbox: what endpoints get injected; counts duplicates with bounded labels, logs."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from gateway.inbox import Inbox, StoreInbox
from gateway.metrics import REGISTRY
from gateway.store import PayloadTooLarge, Store
from gateway.store.sqlite import SQLiteStore
from tests.store.conftest import sub


def duplicates(protocol: str, code: str) -> float:
    labels = {"protocol": protocol, "interface_code": code}
    return REGISTRY.get_sample_value("raccord_duplicates_total", labels) or 0.0


def test_the_sqlite_store_and_the_inbox_satisfy_their_protocols(store: SQLiteStore) -> None:
    typed_store: Store = store
    inbox: Inbox = StoreInbox(typed_store)
    assert inbox is not None


async def test_accept_logs_the_ids_an_operator_searches_by(store: SQLiteStore) -> None:
    inbox = StoreInbox(store, known_codes={"FSO1100A"})
    with capture_logs() as logs:
        receipt = await inbox.accept(
            b"<Invoice/>", sub(source="sftp-acme", connection="b2g-qual", protocol="sftp")
        )
    [entry] = [e for e in logs if e["event"] == "inbox.accepted"]
    assert entry["message_id"] == receipt.message_id
    assert entry["connection"] == "b2g-qual"
    assert entry["interface_code"] == "FSO1100A"
    assert entry["sha256"] == receipt.sha256


async def test_duplicates_are_counted_with_bounded_labels(store: SQLiteStore) -> None:
    inbox = StoreInbox(store, known_codes={"FSO1100A"})
    known_before = duplicates("as2", "FSO1100A")
    unknown_before = duplicates("unknown", "unknown")
    await inbox.accept(b"a", sub(protocol="as2"))
    again = await inbox.accept(b"a", sub(protocol="as2"))
    assert again.duplicate
    hostile = sub(protocol="x" * 200, interface_code="<script>", peer_message_id="p")
    await inbox.accept(b"b", hostile)
    with capture_logs() as logs:
        await inbox.accept(b"b", hostile)
    assert duplicates("as2", "FSO1100A") - known_before == 1
    assert duplicates("unknown", "unknown") - unknown_before == 1
    assert [e["event"] for e in logs] == ["inbox.duplicate"]


async def test_a_refused_submission_is_logged_and_raised(store: SQLiteStore) -> None:
    inbox = StoreInbox(store)
    with capture_logs() as logs, pytest.raises(PayloadTooLarge):
        await inbox.accept(b"toolarge", sub(max_size=3, connection="g2b-prod"))
    [entry] = logs
    assert entry["event"] == "inbox.refused"
    assert entry["error"] == "PayloadTooLarge"
    assert entry["connection"] == "g2b-prod"
