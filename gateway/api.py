"""The HTTP API on the admin server: submit a flow for Chorus Pro, follow a message.

`POST /v1/flows?interface=FSO1100A&environment=qual[&filename=invoice.xml]` with the payload as
the body (streamed to disk, never held in memory), `Authorization: Bearer <token>` and an
optional `Idempotency-Key` header. Answers, in JSON:

* 201 `{"message_id", "state", "connection", "file_name", …}` once the file is durable and routed;
* 200 with `"duplicate": true` and the *original* message id when the same file (or the same
  Idempotency-Key) was submitted before — nothing is sent twice;
* 4xx `{"error": <refusal kind>, "reason", "message_id"}`: unknown code or no subscribed
  connection 422, wrong format 415, connection not open (inactive, outside validity,
  certificate expired) 409, too large 413, truncated or invalid 400; 503 when our side failed.

`GET /v1/messages/{id}`: the message, its events and the messages correlated with it.
Without a valid token every route answers 401 (403 when no token is configured at all); the
token is compared in constant time (digests compared with `hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import warnings
from pathlib import Path

from aiohttp import web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from gateway import metrics
from gateway.admin import current_context
from gateway.chain import chain_json, message_chain, message_json
from gateway.config import Config
from gateway.logging import get_logger
from gateway.offload import run_blocking
from gateway.services import GatewayContext
from gateway.store import UnknownMessage
from protocols.ports import Incoming, RefusalKind, TransferRefused

__all__ = ["API_SOURCE", "TokenSource", "add_routes", "refusal_status", "token_matches"]

log = get_logger(__name__)
API_SOURCE = "api"
_CHUNK = 1 << 16
_MAX_ID = 64
STATUS_OF: dict[RefusalKind, int] = {
    RefusalKind.UNKNOWN_CODE: 422,
    RefusalKind.NOT_SUBSCRIBED: 422,
    RefusalKind.WRONG_FORMAT: 415,
    RefusalKind.CONNECTION_CLOSED: 409,
    RefusalKind.TOO_LARGE: 413,
    RefusalKind.TRUNCATED: 400,
    RefusalKind.INVALID: 400,
    RefusalKind.UNAVAILABLE: 503,
}


def refusal_status(kind: RefusalKind) -> int:
    """The HTTP status answering a refusal of that kind."""
    return STATUS_OF.get(kind, 400)


def token_matches(given: bytes, expected: bytes) -> bool:
    """Constant time in the content *and* the length of `given`: digests are compared."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


class TokenSource:
    """The token of the configuration in force; a token file is read once per configuration."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._token: bytes | None = None

    async def token(self, config: Config) -> bytes | None:
        if config is not self._config:
            self._token = await run_blocking(_read_token, config)
            self._config = config
        return self._token


def _read_token(config: Config) -> bytes | None:
    admin = config.gateway.admin
    if admin.api_token is not None:
        token = admin.api_token.get_secret_value().encode()
    elif admin.api_token_file is not None:
        try:
            token = Path(admin.api_token_file).read_bytes().strip()
        except OSError as exc:
            log.error("api_token_unreadable", path=str(admin.api_token_file), error=str(exc))
            return None
    else:
        return None
    return token or None


TOKENS: web.AppKey[TokenSource] = web.AppKey("api_tokens", TokenSource)


def _error(status: int, error: str, reason: str, **extra: object) -> web.Response:
    return web.json_response({"error": error, "reason": reason, **extra}, status=status)


async def _denied(request: web.Request, context: GatewayContext) -> web.Response | None:
    """None when the bearer token is right; else the 401/403 answer (counted)."""
    expected = await request.app[TOKENS].token(context.config)
    if expected is None:
        metrics.AUTH_FAILURES.labels("api", "disabled").inc()
        return _error(403, "api-disabled", "no API token is configured (gateway.admin.api_token)")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    reason = None
    if scheme.lower() != "bearer" or not given.strip():
        reason = "missing-token"
    elif not token_matches(given.strip().encode("utf-8", "surrogateescape"), expected):
        reason = "wrong-token"
    if reason is None:
        return None
    metrics.AUTH_FAILURES.labels("api", reason).inc()
    log.warning("api_unauthorised", reason=reason, peer=request.remote)
    response = _error(401, "unauthorized", "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="raccord"'
    return response


def _file_name(request: web.Request) -> str | None:
    name = request.query.get("filename")
    if name:
        return name
    header = request.headers.get("Content-Disposition")
    if not header:
        return None
    with warnings.catch_warnings():  # a malformed header is the client's: no name, no noise
        warnings.simplefilter("ignore")
        _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "filename")


def _incoming(request: web.Request) -> Incoming:
    environment = request.query.get("environment", "").strip().lower()
    return Incoming(
        protocol=API_SOURCE,
        direction="emission",
        # per environment: the same file sent to QUAL, then to PROD, is two deliveries
        source=f"{API_SOURCE}:{environment}",
        interface_code=request.query.get("interface", "").strip(),
        environment=environment or None,
        peer_message_id=request.headers.get("Idempotency-Key") or None,
        file_name=_file_name(request),
        expected_size=request.content_length,
    )


async def post_flow(request: web.Request) -> web.Response:
    """Durable acceptance and routing of one flow; the answer carries the message id."""
    context: GatewayContext = current_context(request)
    denied = await _denied(request, context)
    if denied is not None:
        return denied
    incoming = _incoming(request)
    if not incoming.interface_code:
        return _error(400, RefusalKind.INVALID.value, "the interface query parameter is required")
    started = time.perf_counter()
    try:
        accepted = await context.inbox_port.accept(request.content.iter_chunked(_CHUNK), incoming)
    except TransferRefused as exc:
        metrics.REFUSED.labels(API_SOURCE, "emission", exc.kind.value).inc()
        log.info("api_refused", kind=exc.kind.value, reason=exc.reason, message_id=exc.message_id)
        return _error(
            refusal_status(exc.kind), exc.kind.value, exc.reason, message_id=exc.message_id
        )
    metrics.PROCESSING_SECONDS.labels(API_SOURCE, "emission").observe(time.perf_counter() - started)
    message = await context.store.get(accepted.message_id)
    body = {**message_json(message), "message_id": message.id, "duplicate": accepted.duplicate}
    status = 200 if accepted.duplicate else 201
    response = web.json_response(body, status=status)
    response.headers["Location"] = f"/v1/messages/{message.id}"
    return response


async def get_message(request: web.Request) -> web.Response:
    """The message, its events and the messages it is correlated with."""
    context: GatewayContext = current_context(request)
    denied = await _denied(request, context)
    if denied is not None:
        return denied
    message_id = request.match_info["message_id"]
    if len(message_id) > _MAX_ID or not message_id.isalnum():
        return _error(404, "not-found", "no such message")
    try:
        chain = await message_chain(context.store, message_id)
    except UnknownMessage:
        return _error(404, "not-found", "no such message")
    return web.json_response(chain_json(chain))


def add_routes(app: web.Application) -> None:
    """The API routes, on the admin application (they read the context in force)."""
    app[TOKENS] = TokenSource()
    app.router.add_post("/v1/flows", post_flow)
    app.router.add_get("/v1/messages/{message_id}", get_message)
