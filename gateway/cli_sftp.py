"""`raccord` sub-commands of the sftp work, registered by `cli.build_parser`."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's sub-commands (none yet)."""
    del commands
