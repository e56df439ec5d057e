"""The admin HTTP server: liveness, readiness and Prometheus metrics (more routes plug in later)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway import metrics

ReadinessProbe = Callable[[], Awaitable[dict[str, bool]]]

ContextGetter = Callable[[], Any]
PROBE_KEY: web.AppKey[ReadinessProbe] = web.AppKey("readiness_probe")
CONTEXT_KEY: web.AppKey[ContextGetter] = web.AppKey("gateway_context")
CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


async def healthz(_request: web.Request) -> web.Response:
    """Alive: the event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: config loaded, store writable, every listener up. 503 names what is not."""
    checks = await request.app[PROBE_KEY]()
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics_handler(_request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def current_context(request: web.Request) -> Any:
    """The gateway context in force (changes on reload); 503 while there is none."""
    context = request.app[CONTEXT_KEY]()
    if context is None:
        raise web.HTTPServiceUnavailable(reason="gateway starting")
    return context


def build_app(probe: ReadinessProbe, context: ContextGetter) -> web.Application:
    """The admin application; extensions add their routes to it before it starts."""
    app = web.Application(client_max_size=1 << 20)
    app[PROBE_KEY] = probe
    app[CONTEXT_KEY] = context
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


class AdminServer:
    """Runs the admin application on host:port; port 0 picks a free one (tests)."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.bound_port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
