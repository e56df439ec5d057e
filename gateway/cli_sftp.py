"""`raccord sftp host-key`: the fingerprints partners and AIFE pin for each of our listeners.

The host key is created on first use (0600, Ed25519), so the fingerprint can be handed over
before the gateway first starts; `serve` then finds and keeps the same key.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.model import Protocol
from gateway.settings.sftp import default_host_key, server_block, sftp_settings
from protocols.sftp.keys import KeyFileError, fingerprint, load_or_create_host_key

DEFAULT_CONFIG = Path(os.environ.get("RACCORD_CONFIG", "config/sandbox/raccord.yaml"))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `raccord sftp host-key`."""
    group = commands.add_parser("sftp", help="SFTP listeners and clients")
    sub = group.add_subparsers(dest="action", required=True)
    text = "print each SFTP listener's host key fingerprint (created if missing)"
    parser = sub.add_parser("host-key", help=text, description=text)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML configuration")
    parser.set_defaults(handler=host_key)


def listener_keys(config: Config) -> dict[tuple[str, int], Path]:
    """Every listener address the configuration implies, with its host key file."""
    found: dict[tuple[str, int], Path] = {}
    data_dir = config.gateway.data_dir
    for conn in config.connections:
        if conn.protocol is not Protocol.SFTP:
            continue
        settings = sftp_settings(conn)
        if not settings.listen:
            continue
        host = settings.listen_host or conn.network.partner.host
        port = (
            settings.listen_port if settings.listen_port is not None else conn.network.partner.port
        )
        found.setdefault((host, port), settings.host_key or default_host_key(data_dir, port))
    server = server_block(config)
    if server is not None:
        where = (server.listen.host, server.listen.port)
        found[where] = server.host_key or default_host_key(data_dir, server.listen.port)
    return found


def host_key(args: argparse.Namespace) -> int:
    """One line per listener: address, fingerprint, public key, file."""
    try:
        config = load(args.config, check_files=False)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"raccord: {error}", file=sys.stderr)
        return 2
    keys = listener_keys(config)
    if not keys:
        print("raccord: no SFTP listener is configured", file=sys.stderr)
        return 1
    for (host, port), path in sorted(keys.items()):
        try:
            key = load_or_create_host_key(path)
        except KeyFileError as exc:
            print(f"raccord: {exc}", file=sys.stderr)
            return 1
        public = key.export_public_key("openssh").decode().strip()
        print(f"{host}:{port}  {fingerprint(key)}  {public}  ({path})")
    return 0
