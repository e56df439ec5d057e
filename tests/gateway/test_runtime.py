"""What the daemon asks of its host: the open-files limit, and telling a changed file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.runtime import file_state


def test_the_soft_limit_on_open_files_is_raised_to_the_hard_one() -> None:
    """The store keeps 256 buckets open: a soft limit of 1,024 (container default) would
    leave little room for sessions. Checked in a child, whose limits are its own."""
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from gateway.runtime import raise_open_files_limit\n"
        "print(raise_open_files_limit() == (hard, hard) or hard < 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "True"


def test_a_file_replaced_rewritten_or_removed_changes_its_state(tmp_path: Path) -> None:
    """The CRL watch compares states: a file renamed over (new inode), rewritten in place
    (size or mtime) or gone must each look different; an untouched one must not."""
    crl = tmp_path / "ca.crl"
    crl.write_bytes(b"first list")
    first = file_state([crl])
    assert file_state([crl]) == first
    new = tmp_path / "ca.crl.new"
    new.write_bytes(b"other list")  # same size
    os.replace(new, crl)
    replaced = file_state([crl])
    assert replaced != first
    crl.write_bytes(b"a longer list")
    longer = file_state([crl])
    assert longer != replaced
    stamp = os.stat(crl).st_mtime_ns
    with crl.open("r+b") as handle:  # the same size, in place, at a later tick of the clock
        handle.write(b"A")
    os.utime(crl, ns=(stamp + 1_000_000, stamp + 1_000_000))
    assert file_state([crl]) != longer
    crl.unlink()
    assert file_state([crl]) == (None,)
