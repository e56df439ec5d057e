"""The simulator's clock (one function, so tests and modules agree on UTC)."""

from __future__ import annotations

import datetime as dt

__all__ = ["utc_now"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
