"""The terminal table a newcomer watches during `make run` (pure text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.simulator.flows import INTEGRATED
from gateway.simulator.state import Deposit

__all__ = ["render_summary"]

_HEADERS = ("connection", "deposits", "integrated", "rejected", "reports", "statuses", "g2b sent")


def _pair(counts: Mapping[tuple[str, str], tuple[int, int]], name: str, kind: str) -> str:
    sent, pending = counts.get((name, kind), (0, 0))
    return f"{sent}" + (f" (+{pending} due)" if pending else "")


def render_summary(
    connections: Sequence[str],
    deposits: Sequence[Deposit],
    counts: Mapping[tuple[str, str], tuple[int, int]],
    *,
    simulated: set[str],
) -> str:
    """One row per connection: what the gateway deposited, what the simulator sent back."""
    rows = [_HEADERS]
    for name in connections:
        mine = [d for d in deposits if d.connection == name]
        if name not in simulated:
            rows.append((name, "-", "-", "-", "-", "-", "not running"))
            continue
        integrated = sum(d.result == INTEGRATED for d in mine)
        rows.append((
            name, str(len(mine)), str(integrated), str(len(mine) - integrated),
            _pair(counts, name, "report"), _pair(counts, name, "status"),
            _pair(counts, name, "invoice"),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    rule = "-" * len(lines[0])
    return "\n".join(["", "Chorus Pro simulator", rule, lines[0], rule, *lines[1:], rule, ""])
