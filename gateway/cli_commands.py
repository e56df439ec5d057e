"""What each `raccord` sub-command does; `cli.py` only parses arguments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.errors import RaccordError
from gateway.model import ConnectionStatus, MessageState
from gateway.store import Store
from gateway.tables import render

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"raccord: {message}", file=sys.stderr)
    return code


def _load(path: Path, *, check_files: bool = False) -> Config:
    return load(path, check_files=check_files)


@contextlib.asynccontextmanager
async def _store(config: Config) -> AsyncIterator[Store]:
    from gateway.store.sqlite import open_store

    config.gateway.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(config.gateway.data_dir, allow_shared=True)
    try:
        yield store
    finally:
        await store.close()


def serve(args: argparse.Namespace) -> int:
    from gateway.daemon import Daemon

    return asyncio.run(Daemon(args.config).run())


def check_config(args: argparse.Namespace) -> int:
    """Exit 0 with a table of the connections, or 2 with every problem, one per line."""
    try:
        config = _load(args.path, check_files=not args.no_files)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error)
        return EXIT_INVALID
    if not args.no_files:
        from gateway.credentials import credential_warnings, load_credentials

        credentials, _ = load_credentials(config, now=_now())
        for warning in credential_warnings(credentials):
            print(f"warning: {warning}")
    rows = [
        (
            c.name,
            c.environment.value,
            c.circuit.value,
            c.protocol.value,
            c.status.value,
            f"{c.validity.start}..{c.validity.end}",
            " ".join(c.subscriptions.emission) or "-",
            " ".join(c.subscriptions.reception) or "-",
        )
        for c in config.connections
    ]
    print(
        render(
            [
                "connection",
                "env",
                "circuit",
                "protocol",
                "status",
                "validity",
                "emission",
                "reception",
            ],
            rows,
        )
    )
    print(f"\n{args.path}: valid, {len(rows)} connection(s)")
    return EXIT_OK


def _run(coro: object) -> int:
    try:
        result: int = asyncio.run(coro)  # type: ignore[arg-type]
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return EXIT_INVALID
    except RaccordError as exc:
        return _fail(str(exc))
    return result


async def _statuses(config: Config, store: Store) -> dict[str, ConnectionStatus | None]:
    return {c.name: await store.connection_status(c.name) for c in config.connections}


def connections_list(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _load(args.config)
        async with _store(config) as store:
            statuses = await _statuses(config, store)
        rows = [
            (
                c.name,
                c.environment.value,
                c.circuit.value,
                c.protocol.value,
                (statuses[c.name] or c.status).value
                + ("" if statuses[c.name] else " (not recorded)"),
                f"{c.validity.start}..{c.validity.end}",
            )
            for c in config.connections
        ]
        print(render(["connection", "env", "circuit", "protocol", "status", "validity"], rows))
        return EXIT_OK

    return _run(run())


def connections_show(args: argparse.Namespace) -> int:
    config = _load(args.config)
    conn = config.connection(args.name)
    if conn is None:
        return _fail(f"no connection named {args.name!r}")
    print(json.dumps(conn.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return EXIT_OK


def connections_history(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _load(args.config)
        if config.connection(args.name) is None:
            return _fail(f"no connection named {args.name!r}")
        async with _store(config) as store:
            history = await store.connection_history(args.name)
        rows = [
            (
                h.seq,
                h.at.isoformat(timespec="seconds"),
                h.actor,
                h.old_status.value if h.old_status else "-",
                h.new_status.value,
                h.change.get("event", "-"),
                _changed_fields(h.change),
            )
            for h in history
        ]
        print(render(["seq", "at", "actor", "from", "to", "event", "fields changed"], rows))
        return EXIT_OK

    return _run(run())


def _changed_fields(change: Mapping[str, object]) -> str:
    changes = change.get("changes")
    return ", ".join(sorted(changes)) if isinstance(changes, dict) and changes else "-"


def connections_set_status(args: argparse.Namespace) -> int:
    from gateway.connections import set_status, synchronise

    async def run() -> int:
        config = _load(args.config)
        async with _store(config) as store:
            registry = await synchronise(config, store, actor="cli")
            reason = await set_status(
                registry, store, args.name, ConnectionStatus(args.status), actor="cli", now=_now()
            )
        print(f"{args.name}: {args.status} ({reason})")
        return EXIT_OK

    return _run(run())


def messages_list(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _load(args.config)
        async with _store(config) as store:
            found = await store.list_messages(
                state=MessageState(args.state) if args.state else None,
                interface_code=args.interface,
                connection=args.connection,
                limit=args.limit,
            )
        rows = [
            (
                m.id,
                m.created_at.isoformat(timespec="seconds"),
                m.direction.value,
                m.interface_code,
                m.connection or "-",
                m.state.value,
                m.attempts,
                m.size,
                m.file_name or "-",
            )
            for m in found
        ]
        print(
            render(
                [
                    "id",
                    "created",
                    "direction",
                    "interface",
                    "connection",
                    "state",
                    "attempts",
                    "size",
                    "file",
                ],
                rows,
            )
        )
        return EXIT_OK

    return _run(run())


def messages_show(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _load(args.config)
        async with _store(config) as store:
            message = await store.get(args.id)
            events = await store.events(args.id)
        for field in (
            "id",
            "direction",
            "source",
            "connection",
            "interface_code",
            "protocol",
            "peer_message_id",
            "file_name",
            "sha256",
            "size",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "updated_at",
        ):
            value = getattr(message, field)
            print(f"{field:16} {getattr(value, 'value', value) if value is not None else '-'}")
        print()
        rows = [
            (
                e.seq,
                e.at.isoformat(timespec="milliseconds"),
                e.kind,
                e.state.value if e.state else "-",
                json.dumps(dict(e.detail), default=str),
            )
            for e in events
        ]
        print(render(["seq", "at", "event", "state", "detail"], rows))
        return EXIT_OK

    return _run(run())


def messages_retry(args: argparse.Namespace) -> int:
    async def run() -> int:
        config = _load(args.config)
        async with _store(config) as store:
            message = await store.retry(args.id)
        print(f"{message.id}: {message.state.value}")
        return EXIT_OK

    return _run(run())
