"""What a restart trusts on disk: the spool of a received transfer and the sender's journal.

Hostile first: a log torn by a crash, a flipped bit, a log that claims more than the data
holds, another file under the same transfer id, keys that try to leave the folder.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from protocols.pesit.endpoint import spool as spool_module
from protocols.pesit.endpoint.spool import (
    Journal,
    PushCheckpoint,
    Spool,
    SpoolMeta,
    logged_points,
)
from protocols.pesit.events import Position

META = SpoolMeta(
    transfer_id=7, file_name="FEN1200A", interface_code="FEN1200A", started="20260301T120000Z"
)


def _spool_three_points(root: Path) -> Spool:
    spool = Spool(root)
    partial = spool.create("in-7", META)
    for point in (1, 2, 3):
        partial.append([bytes([point]) * 1000], Position(point, point * 1000, point))
    partial.append([b"not durable"])  # received after the last sync point: may be lost
    partial.close()
    return spool


def test_resume_cuts_back_to_the_last_durable_point(tmp_path: Path) -> None:
    partial = _spool_three_points(tmp_path).resume("in-7", META)
    assert partial is not None
    assert partial.durable == Position(3, 3000, 3)
    assert (tmp_path / "in-7" / "data").stat().st_size == 3000
    partial.append([b"ne", b"xt"], durable=True)
    assert partial.read(2998, 10) == b"\x03\x03next"
    partial.close()


def test_torn_tail_of_the_log_is_ignored_and_cut(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    log = tmp_path / "in-7" / "points"
    log.write_bytes(log.read_bytes() + b"\x00\x00\x00\x04\x00")  # a crash mid-append
    partial = spool.resume("in-7", META)
    assert partial is not None
    assert partial.durable.point == 3
    assert log.stat().st_size == 3 * 24
    partial.close()


def test_flipped_bit_stops_the_log_at_the_last_good_record(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    log = tmp_path / "in-7" / "points"
    raw = bytearray(log.read_bytes())
    raw[24 + 7] ^= 0x10  # inside record 2
    log.write_bytes(bytes(raw))
    partial = spool.resume("in-7", META)
    assert partial is not None
    assert partial.durable == Position(1, 1000, 1)
    partial.close()


def test_log_claiming_more_than_the_data_is_not_resumed(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    (tmp_path / "in-7" / "data").write_bytes(b"short")
    assert spool.resume("in-7", META) is None


@pytest.mark.parametrize(
    "other",
    [
        SpoolMeta(8, "FEN1200A", "FEN1200A", "x"),
        SpoolMeta(7, "CSO1100A", "CSO1100A", "x"),
        SpoolMeta(7, "FEN1200A", "FEN1200A", "x", created="260301120000"),
    ],
    ids=["other-transfer-id", "other-file-name", "other-creation-date"],
)
def test_another_transfer_under_the_same_key_is_not_resumed(
    tmp_path: Path, other: SpoolMeta
) -> None:
    assert _spool_three_points(tmp_path).resume("in-7", other) is None


def test_unreadable_meta_is_not_resumed(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    (tmp_path / "in-7" / "meta.json").write_text("{not json")
    assert spool.resume("in-7", META) is None


def test_create_replaces_an_older_transfer(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    partial = spool.create("in-7", META)
    assert partial.durable == Position()
    assert (tmp_path / "in-7" / "data").stat().st_size == 0
    partial.close()
    spool.discard("in-7")
    assert not (tmp_path / "in-7").exists()


@pytest.mark.parametrize("key", ["../escape", "a/b", "..", "", "x" * 101, "in-7\x00"])
def test_keys_never_leave_the_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        Spool(tmp_path / "spool").create(key, META)
    with pytest.raises(ValueError, match="plain name"):
        Journal(tmp_path / "push").save(key, PushCheckpoint(1, 1))


def test_journal_round_trip_and_clear(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "push")
    assert journal.load("M1") is None
    checkpoint = PushCheckpoint(0xABCDEF, 10_000, (Position(2, 8192, 2), Position(3, 12288, 3)))
    journal.save("M1", checkpoint)
    assert Journal(tmp_path / "push").load("M1") == checkpoint
    journal.clear("M1")
    journal.clear("M1")
    assert journal.load("M1") is None


def test_corrupt_journal_is_no_checkpoint(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "push")
    journal.save("M1", PushCheckpoint(1, 1))
    (tmp_path / "push" / "M1.json").write_text('{"transfer_id": 1}')
    assert journal.load("M1") is None


def test_prune_forgets_only_old_transfers(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    spool.create("in-8", META).close()
    week_ago = time.time() - 8 * 86400
    for path in (tmp_path / "in-7", *(tmp_path / "in-7").iterdir()):
        os.utime(path, (week_ago, week_ago))
    assert spool.prune(older_than=7 * 86400, now=time.time()) == ["in-7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-8"]
    assert Spool(tmp_path / "missing").prune(older_than=1, now=time.time()) == []


def test_the_spool_hashes_what_it_wrote_also_across_a_resume(tmp_path: Path) -> None:
    """An adopting inbox trusts this digest: it must cover every byte, the resumed ones too."""
    spool = _spool_three_points(tmp_path)
    partial = spool.resume("in-7", META)
    assert partial is not None
    partial.append([b"tail"], durable=True)
    with pytest.raises(ValueError, match="hashed"):
        _ = partial.sha256  # four bytes written and not hashed yet: no digest
    partial.digest([b"tail"])
    whole = (tmp_path / "in-7" / "data").read_bytes()
    assert partial.sha256 == hashlib.sha256(whole).hexdigest()
    assert partial.size == len(whole) == 3004
    assert partial.path == tmp_path / "in-7" / "data"
    partial.close()
    partial.close()  # again: harmless


def test_a_resume_whose_data_cannot_be_read_back_is_no_resume(tmp_path: Path) -> None:
    spool = _spool_three_points(tmp_path)
    (tmp_path / "in-7" / "data").unlink()
    assert spool.resume("in-7", META) is None


def test_the_log_is_written_ahead_in_zeros_and_read_up_to_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records overwrite zeros written ahead (no size change to commit); growing past them
    writes more; the reader stops at the first zeroed record and a resume cuts the rest."""
    monkeypatch.setattr(spool_module, "_LOG_AHEAD", 5 * 24)
    spool = Spool(tmp_path)
    partial = spool.create("in-7", META)
    for point in range(1, 13):
        partial.append([b"x" * 10], Position(point, point * 10, point))
    log = tmp_path / "in-7" / "points"
    assert log.stat().st_size == 15 * 24  # three steps of five records
    assert [p.point for p in logged_points(log)] == list(range(1, 13))
    partial.close()
    resumed = spool.resume("in-7", META)
    assert resumed is not None
    assert resumed.durable == Position(12, 120, 12)
    assert log.stat().st_size == 12 * 24
    resumed.append([b"y" * 10], Position(13, 130, 13))
    assert logged_points(log)[-1] == Position(13, 130, 13)
    resumed.close()
    assert logged_points(tmp_path / "missing") == []
