"""PESIT settings of a connection sheet (`connections[i].settings` when protocol is pesit)."""

from __future__ import annotations

from gateway.config import Frozen


class PesitSettings(Frozen):
    """Filled in by the PESIT work; unknown keys are refused like everywhere else."""
