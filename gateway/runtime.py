"""What the daemon asks of its host: enough open files, and whether watched files changed."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Sequence
from pathlib import Path


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard one; returns (soft, hard) after.

    The store keeps its 256 payload buckets open and every session holds a socket, while
    container runtimes often start a process with a soft limit of 1,024. Raising the soft
    limit up to the hard one needs no privilege.
    """
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == infinity else hard  # the kernel's usual nr_open
    if soft != infinity and soft < target:
        with contextlib.suppress(ValueError, OSError):  # a kernel may cap it lower
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


FileState = tuple[tuple[int, int, int] | None, ...]


def file_state(paths: Sequence[Path]) -> FileState:
    """What tells that a file was replaced or rewritten, without reading it: inode, size and
    modification time of each path (None when it cannot be looked at)."""
    state: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            found = os.stat(path)
        except OSError:
            state.append(None)
        else:
            state.append((found.st_ino, found.st_size, found.st_mtime_ns))
    return tuple(state)
