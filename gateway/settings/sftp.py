"""SFTP settings of a connection sheet (`connections[i].settings` when protocol is sftp)."""

from __future__ import annotations

from gateway.config import Frozen


class SftpSettings(Frozen):
    """Filled in by the SFTP work; unknown keys are refused like everywhere else."""
