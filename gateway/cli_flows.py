"""`raccord send` and `raccord messages chain`, registered by `cli.build_parser`.

`send` goes through the HTTP API of the running gateway (the same door as the back office), so
the file is routed, sniffed and made durable exactly as any other submission; it prints the
message id on stdout (scripts capture it) and a progress bar on stderr for large files.
`messages chain` reads the store directly when the gateway is stopped, and asks the running
gateway's API when it holds the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.errors import StoreError
from gateway.tables import render

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
PROGRESS_FROM = 1 << 20  # files at least this large show a progress bar
_CHUNK = 1 << 20
_DETAIL_WIDTH = 110


def _default_config() -> Path:
    return Path(os.environ.get("RACCORD_CONFIG", "config/sandbox/raccord.yaml"))


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"raccord: {message}", file=sys.stderr)
    return code


def api_url(config: Config, override: str | None) -> str:
    """The running gateway's admin server, as its configuration says (or `--url`)."""
    if override:
        return override.rstrip("/")
    host = config.gateway.admin.host
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 - a listen-all address is reached on loopback
    return f"http://{host}:{config.gateway.admin.port}"


def api_token(config: Config, token_file: Path | None) -> str | None:
    """`--token-file`, then $RACCORD_API_TOKEN, then the configuration's token."""
    if token_file is not None:
        return token_file.read_text(encoding="utf-8").strip()
    if os.environ.get("RACCORD_API_TOKEN"):
        return os.environ["RACCORD_API_TOKEN"]
    admin = config.gateway.admin
    if admin.api_token is not None:
        return admin.api_token.get_secret_value()
    if admin.api_token_file is not None:
        return Path(admin.api_token_file).read_text(encoding="utf-8").strip()
    return None


class Progress:
    """A one-line bar on stderr, redrawn only when the percentage changes."""

    def __init__(self, total: int, *, label: str, enabled: bool) -> None:
        self._total = max(total, 1)
        self._label = label
        self._enabled = enabled
        self._shown = -1

    def __call__(self, done: int) -> None:
        percent = min(100, done * 100 // self._total)
        if not self._enabled or percent == self._shown:
            return
        self._shown = percent
        bar = "#" * (percent // 5) + "-" * (20 - percent // 5)
        megabytes = f"{done / 1e6:.1f}/{self._total / 1e6:.1f} MB"
        sys.stderr.write(f"\r{self._label} [{bar}] {percent:3d}% {megabytes}")
        if percent == 100:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def _chunks(stream: BinaryIO, progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    sent = 0
    while chunk := await asyncio.to_thread(stream.read, _CHUNK):
        sent += len(chunk)
        progress(sent)
        yield chunk


async def post_file(
    url: str,
    token: str,
    path: Path,
    *,
    size: int,
    params: dict[str, str],
    headers: dict[str, str],
    progress: Callable[[int], None],
) -> tuple[int, dict[str, Any]]:
    """POST the file, streamed with its length; the API's status and JSON answer."""
    sent_headers = {
        **headers,
        "Authorization": f"Bearer {token}",
        "Content-Length": str(size),
        "Content-Type": "application/octet-stream",
    }
    stream: BinaryIO = await asyncio.to_thread(path.open, "rb")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/v1/flows",
                params=params,
                data=_chunks(stream, progress),
                headers=sent_headers,
            ) as response,
        ):
            return response.status, _json_answer(await response.read())
    finally:
        await asyncio.to_thread(stream.close)


def _json_answer(raw: bytes) -> dict[str, Any]:
    """The API answers JSON; a proxy in between may not: keep its first words as the reason."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {"reason": raw[:200].decode("utf-8", "replace").strip()}
    return body if isinstance(body, dict) else {"reason": str(body)[:200]}


def send(args: argparse.Namespace) -> int:
    """Submit FILE for Chorus Pro; prints the message id."""
    path: Path = args.file
    if not path.is_file():
        return _fail(f"{path}: not a file", EXIT_INVALID)
    try:
        config = load(args.config, check_files=False)
        token = api_token(config, args.token_file)
    except ConfigErrors as exc:
        return _fail("\n".join(str(e) for e in exc.errors), EXIT_INVALID)
    except OSError as exc:
        return _fail(f"cannot read the API token: {exc.strerror}", EXIT_INVALID)
    if not token:
        return _fail("no API token: set gateway.admin.api_token or RACCORD_API_TOKEN", EXIT_INVALID)
    params = {"interface": args.interface, "environment": args.environment}
    params |= {"filename": args.filename or path.name}
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    size = path.stat().st_size
    show = not args.quiet and size >= PROGRESS_FROM
    progress = Progress(size, label=f"sending {path.name}", enabled=show)
    try:
        status, body = asyncio.run(
            post_file(
                api_url(config, args.url),
                token,
                path,
                size=size,
                params=params,
                headers=headers,
                progress=progress,
            )
        )
    except (aiohttp.ClientError, OSError) as exc:
        return _fail(f"cannot reach the gateway: {exc}")
    return _report(status, body)


def _report(status: int, body: dict[str, Any]) -> int:
    if status in (200, 201):
        print(body.get("message_id"))
        if body.get("duplicate"):
            print(
                f"raccord: already submitted as {body.get('message_id')} "
                f"(state {body.get('state')})",
                file=sys.stderr,
            )
        return EXIT_OK
    where = f" (message {body['message_id']})" if body.get("message_id") else ""
    return _fail(f"refused, {body.get('error', status)}: {body.get('reason', '')}{where}")


async def _chain_from_store(config: Config, message_id: str) -> dict[str, Any]:
    from gateway.chain import chain_json, message_chain
    from gateway.store.sqlite import open_store

    config.gateway.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(config.gateway.data_dir)
    try:
        return chain_json(await message_chain(store, message_id))
    finally:
        await store.close()


async def _chain_from_api(url: str, token: str, message_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/messages/{message_id}", headers=headers) as response,
    ):
        body = _json_answer(await response.read())
        if response.status != 200:
            raise LookupError(f"HTTP {response.status}: {body.get('reason', '')}")
        return body


def chain(args: argparse.Namespace) -> int:
    """The correlated chain of a message, as a timeline (or JSON)."""
    try:
        config = load(args.config, check_files=False)
        try:
            data = asyncio.run(_chain_from_store(config, args.id))
        except StoreError as exc:
            if "in use" not in str(exc):
                return _fail(str(exc))
            token = api_token(config, args.token_file) or ""
            data = asyncio.run(_chain_from_api(api_url(config, args.url), token, args.id))
    except ConfigErrors as exc:
        return _fail("\n".join(str(e) for e in exc.errors), EXIT_INVALID)
    except (LookupError, aiohttp.ClientError, OSError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(render_chain(data))
    return EXIT_OK


def render_chain(data: dict[str, Any]) -> str:
    """Each message on one line, then every event of the chain in time order."""
    links = [data, *data.get("related", [])]
    heads = [
        (m["id"], m["direction"], m["interface_code"], m["connection"] or "-", m["state"])
        for m in (link["message"] for link in links)
    ]
    rows = []
    for link in links:
        message = link["message"]
        for event in link["events"]:
            detail = json.dumps(event["detail"], ensure_ascii=False, separators=(",", ":"))
            rows.append(
                (
                    event["at"][:23],
                    message["id"],
                    message["interface_code"],
                    event["kind"],
                    event["state"] or "-",
                    detail[:_DETAIL_WIDTH],
                )
            )
    rows.sort(key=lambda row: row[0])
    top = render(["message", "direction", "interface", "connection", "state"], heads)
    timeline = render(["at", "message", "interface", "event", "state", "detail"], rows)
    return f"{top}\n\n{timeline}"


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=_default_config(), help="YAML config")
    parser.add_argument("--url", help="the gateway's admin URL (default: from the config)")
    parser.add_argument("--token-file", type=Path, help="file holding the API token")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`raccord send` and `raccord messages chain`."""
    sender = commands.add_parser(
        "send", help="submit a file for Chorus Pro", description=send.__doc__
    )
    sender.set_defaults(handler=send)
    sender.add_argument("file", type=Path)
    sender.add_argument("--interface", required=True, help="interface code, e.g. FSO1100A")
    sender.add_argument("--environment", required=True, choices=["qual", "prod"])
    sender.add_argument("--filename", help="file name to record (default: the file's)")
    sender.add_argument("--idempotency-key", help="resubmitting with the same key is a no-op")
    sender.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(sender)
    messages = commands.choices.get("messages")
    group = _subcommands(messages) if messages is not None else None
    if group is None:
        return
    chained = group.add_parser("chain", help="a message and the messages correlated with it")
    chained.description = chain.__doc__
    chained.set_defaults(handler=chain)
    chained.add_argument("id")
    chained.add_argument("--json", action="store_true", help="print the chain as JSON")
    _common(chained)
