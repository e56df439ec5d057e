"""AS2 settings of a connection sheet (`connections[i].settings` when protocol is as2)."""

from __future__ import annotations

from gateway.config import Frozen


class As2Settings(Frozen):
    """Filled in by the AS2 work; unknown keys are refused like everywhere else."""
