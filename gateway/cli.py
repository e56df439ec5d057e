"""`raccord`: the operator's command line (serve, check-config, connections, certs, messages)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import cli_flows, cli_sandbox, cli_sftp
from gateway.cli_certs import certs_export_p7b, certs_inspect, certs_new, certs_sandbox
from gateway.cli_commands import (
    check_config,
    connections_history,
    connections_list,
    connections_set_status,
    connections_show,
    messages_list,
    messages_retry,
    messages_show,
    serve,
)
from gateway.logging import configure
from gateway.model import ConnectionStatus, MessageState

DEFAULT_CONFIG = Path(os.environ.get("RACCORD_CONFIG", "config/sandbox/raccord.yaml"))
Handler = Callable[[argparse.Namespace], int]


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML configuration")


def _sub(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    help_text: str,
    *,
    config: bool = True,
) -> argparse.ArgumentParser:
    parser = parent.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if config:
        _config_arg(parser)
    return parser


def _connections(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("connections", help="connection sheets and their lifecycle")
    sub = group.add_subparsers(dest="action", required=True)
    _sub(sub, "list", connections_list, "list the connections with their status")
    _sub(sub, "show", connections_show, "show one sheet").add_argument("name")
    _sub(sub, "history", connections_history, "every recorded change").add_argument("name")
    status = _sub(
        sub, "set-status", connections_set_status, "record the status the portal answered"
    )
    status.add_argument("name")
    status.add_argument("status", choices=[s.value for s in ConnectionStatus])


def _certs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("certs", help="certificate inspection, export and requests")
    sub = group.add_subparsers(dest="action", required=True)
    _sub(sub, "inspect", certs_inspect, "describe a certificate file", config=False).add_argument(
        "file", type=Path
    )
    export = _sub(
        sub, "export-p7b", certs_export_p7b, "a connection's public chain as PKCS#7 for the portal"
    )
    export.add_argument("connection")
    export.add_argument("--role", choices=["client", "server"], default="client")
    export.add_argument("--output", type=Path, help="file to write (default: stdout, PEM)")
    export.add_argument("--der", action="store_true", help="DER instead of PEM")
    new = _sub(sub, "new", certs_new, "a new private key and CSR for a connection")
    new.add_argument("connection")
    new.add_argument("--role", choices=["client", "server"], required=True)
    new.add_argument("--output-dir", type=Path, help="where to write NAME-ROLE.key/.csr")
    _sub(sub, "sandbox", certs_sandbox, "create the sandbox CA and certificates (make run)")


def _messages(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("messages", help="messages and their event history")
    sub = group.add_subparsers(dest="action", required=True)
    listing = _sub(sub, "list", messages_list, "list messages")
    listing.add_argument("--state", choices=[s.value for s in MessageState])
    listing.add_argument("--interface")
    listing.add_argument("--connection")
    listing.add_argument("--limit", type=int, default=50)
    _sub(sub, "show", messages_show, "one message and its events").add_argument("id")
    _sub(sub, "retry", messages_retry, "send a dead message again").add_argument("id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raccord", description="Raccord EDI gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    _sub(commands, "serve", serve, "run the gateway")
    check = _sub(
        commands, "check-config", check_config, "validate a configuration file", config=False
    )
    check.add_argument("path", type=Path)
    check.add_argument("--no-files", action="store_true", help="skip loading certificate files")
    _connections(commands)
    _certs(commands)
    _messages(commands)
    cli_sftp.register(commands)
    cli_flows.register(commands)
    cli_sandbox.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `raccord` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    if args.command != "serve":  # stdout carries tables and exports; logs go to stderr
        configure(level="warning", stream=sys.stderr)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
