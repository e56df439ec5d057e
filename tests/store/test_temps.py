"""Unnamed temp files (O_TMPFILE): used where the file system allows them, probed once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gateway.store import tempfiles
from gateway.store.payloads import PayloadDir


def test_unnamed_temps_are_probed_and_refused_where_they_would_not_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tempfiles.unnamed_temps_work(tmp_path)  # Linux and a local file system: here, yes
    assert list(tmp_path.iterdir()) == []  # the probe left no name behind

    def unsupported(directory: str) -> int:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    with monkeypatch.context() as patch:
        patch.setattr(tempfiles, "_open_unnamed", unsupported)
        assert not tempfiles.unnamed_temps_work(tmp_path)
    before = set(os.listdir("/proc/self/fd"))

    def no_proc(fd: int, name: str, directory: int) -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"/proc/self/fd/{fd}")

    monkeypatch.setattr(tempfiles, "_link_unnamed", no_proc)
    assert not tempfiles.unnamed_temps_work(tmp_path)
    assert set(os.listdir("/proc/self/fd")) <= before  # the probe closed what it opened
    directory = PayloadDir(tmp_path)
    directory.prepare()
    assert not directory.unnamed_temps
    assert not directory.new_spool().unnamed
