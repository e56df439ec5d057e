"""The TLS listener of one connection's PeSIT server (pesit.md §2: TLS from the first byte).

The TLS handshake runs in our own code (`start_tls`) rather than inside `create_server`, so a
refused client is counted and logged with the reason instead of disappearing in asyncio's
exception handler. After the handshake the client's certificate must be one of this
connection's partner certificates: chaining to a trusted CA is not enough, another
connection's (valid) certificate is refused the same way as an unknown one.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from protocols.pesit.endpoint.ports import (
    Admission,
    NullObserver,
    Observer,
    Offload,
    OutgoingFiles,
    ServerProfile,
    to_thread,
)
from protocols.pesit.endpoint.served import ServedLog
from protocols.pesit.endpoint.server import ServerApp
from protocols.pesit.endpoint.serving import ServerShared
from protocols.pesit.endpoint.session import Session
from protocols.pesit.endpoint.spool import Spool
from protocols.pesit.endpoint.wire import Wire
from protocols.pesit.server import PesitServer
from protocols.ports import InboxPort

__all__ = ["PesitListener"]

_HANDSHAKE_ERRORS = (ssl.SSLError, OSError, TimeoutError, EOFError)
SPOOL_MAX_AGE = 7 * 86400.0  # a partner restarts within hours; a week-old spool is litter


class PesitListener:
    """Accepts AIFE's TLS connections for one connection sheet and serves each in a session."""

    def __init__(
        self,
        profile: ServerProfile,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        pins: frozenset[bytes],
        inbox: InboxPort,
        admission: Admission,
        outgoing: OutgoingFiles,
        max_sessions: int = 16,
        offload: Offload = to_thread,
        observer: Observer | None = None,
    ) -> None:
        self.profile = profile
        self.name = f"pesit-listener-{profile.connection}"
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._pins = pins
        self._inbox = inbox
        self._admission = admission
        self._outgoing = outgoing
        self._max_sessions = max_sessions
        self._offload = offload
        self._observer = observer or NullObserver()
        self._shared = ServerShared()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._log: Any = structlog.get_logger(module=__name__).bind(connection=profile.connection)

    @property
    def ready(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; a port that cannot be bound is logged and raised (OSError), not ready.

        Transfers spooled (and pulls served) long ago and never restarted are forgotten first.
        """
        spool = Spool(self.profile.spool_dir)
        pruned = await self._offload(spool.prune, older_than=SPOOL_MAX_AGE, now=time.time())
        if self.profile.served_dir is not None:
            served = ServedLog(self.profile.served_dir)
            pruned += await self._offload(served.prune, older_than=SPOOL_MAX_AGE, now=time.time())
        if pruned:
            self._log.warning("pesit.spool_pruned", transfers=pruned)
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._incoming, self._host, self._port)
        except OSError as exc:
            self._log.error(
                "pesit.listen_failed", host=self._host, port=self._port, reason=str(exc)
            )
            raise  # the daemon tries again later (gateway.start_retry)
        self._log.info("pesit.listening", host=self._host, port=self.port)

    async def stop(self, *, timeout: float) -> None:
        """Stop accepting; give running sessions `timeout` seconds, then cut them."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def _incoming(self) -> _Incoming:
        return _Incoming(self._accept)

    async def _accept(self, wire: Wire) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = None if wire.transport is None else wire.transport.get_extra_info("peername")
        log = self._log.bind(peer=f"{peer[0]}:{peer[1]}" if peer else "?")
        try:
            if len(self._handlers) > self._max_sessions:
                log.warning("pesit.too_many_sessions", limit=self._max_sessions)
                return
            if not await self._authenticate(wire, log):
                return
            await self._serve(wire)
        except Exception:  # a bug in one session must not stop the listener
            log.exception("pesit.session_crashed")
        finally:
            self._handlers.discard(task)
            await wire.close()

    async def _authenticate(self, wire: Wire, log: Any) -> bool:
        timeout = self.profile.settings.timers.tc
        loop = asyncio.get_running_loop()
        plain = wire.transport
        assert isinstance(plain, asyncio.WriteTransport)
        try:
            tls = await loop.start_tls(
                plain, wire, self._ssl, server_side=True, ssl_handshake_timeout=timeout
            )
        except _HANDSHAKE_ERRORS as exc:
            wire.forget()  # start_tls closed the transport; nothing will report its end
            self._observer.auth_failure("tls")
            log.warning("pesit.tls_refused", error=type(exc).__name__, reason=str(exc))
            return False
        wire.transport = tls
        certificate = wire.peer_certificate()
        if certificate is None or certificate not in self._pins:
            self._observer.auth_failure("certificate")
            log.warning("pesit.certificate_refused", reason="not this connection's partner")
            return False
        return True

    async def _serve(self, wire: Wire) -> None:
        settings = self.profile.settings
        loop = asyncio.get_running_loop()
        core = PesitServer(
            now=loop.time(), timers=settings.timers, connection_id=settings.connection_id
        )
        session = Session(core, wire)
        app = ServerApp(
            session,
            core,
            profile=self.profile,
            inbox=self._inbox,
            admission=self._admission,
            outgoing=self._outgoing,
            shared=self._shared,
            offload=self._offload,
            observer=self._observer,
        )
        self._observer.session("server", 1)
        try:
            await session.run(app.on_event)
        finally:
            self._observer.session("server", -1)
            await app.close()


class _Incoming(Wire):
    """A fresh TCP connection: its handler starts at once, before a byte is read (the first
    bytes are the TLS handshake, which `start_tls` must see, not this protocol)."""

    def __init__(self, accept: Callable[[Wire], Coroutine[Any, Any, None]]) -> None:
        super().__init__()
        self._accept = accept
        self.handler: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.handler = asyncio.get_running_loop().create_task(self._accept(self))
