"""`raccord serve`: start listeners and workers from the config, reload on SIGHUP, drain on SIGTERM.

Start-up order matters for the durability promise: the store is opened and recovered (messages a
crash left `sending` are due again) before any listener accepts a byte, and on shutdown the
listeners stop accepting first, in-flight work finishes within `shutdown_timeout`, and the store
closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway import metrics, offload
from gateway.admin import AdminServer, build_app
from gateway.config import Config
from gateway.config_load import ConfigErrors, load
from gateway.config_rules import catalogue_for, check_material
from gateway.connections import synchronise
from gateway.credentials import LoadedCredentials, credential_warnings
from gateway.endpoints import admin_extensions, endpoint_factories
from gateway.housekeeping import Housekeeping
from gateway.inbox import StoreInbox
from gateway.intake import GatewayInbox
from gateway.logging import configure, get_logger
from gateway.router import Router
from gateway.runtime import FileState, file_state, raise_open_files_limit
from gateway.services import AdminExtension, EndpointFactory, GatewayContext, Service
from gateway.start_retry import StartRetry
from gateway.store import Store
from gateway.store.sqlite import open_store
from gateway.wakeups import Wakeups

log = get_logger(__name__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Daemon:
    """One gateway process: config, store, admin server, services."""

    def __init__(
        self,
        config_path: Path,
        *,
        factories: Sequence[EndpointFactory] | None = None,
        extensions: Sequence[AdminExtension] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        install_signals: bool = True,
    ) -> None:
        self._path = config_path
        self._factories = list(endpoint_factories() if factories is None else factories)
        self._clock = clock
        self._install_signals = install_signals
        self._stopping = asyncio.Event()
        self._reloading = asyncio.Lock()
        self._services: list[Service] = []
        self._starting = False  # services are being (re)started: not ready yet
        self._wakeups = Wakeups()
        self._extensions = list(admin_extensions() if extensions is None else extensions)
        self._store: Store | None = None
        self._context: GatewayContext | None = None
        self._crls_seen: FileState = ()  # the CRL files as the last (re)load found them
        self.admin: AdminServer | None = None

    @property
    def context(self) -> GatewayContext | None:
        """The running context (tests and admin routes read it)."""
        return self._context

    def _load(self) -> tuple[Config, LoadedCredentials, FileState]:
        """Blocking: the configuration and the credentials its check loaded, each file parsed
        once (`load` would check the material, then the context load it all again), and the
        state of the CRL files, looked at before they are read (a change after is seen)."""
        config = load(self._path, check_files=False)
        crls = file_state(config.gateway.crls)
        credentials, problems = check_material(config, now=self._clock())
        if problems:
            raise ConfigErrors(problems)
        return config, credentials, crls

    async def _build_context(
        self, config: Config, credentials: LoadedCredentials, store: Store
    ) -> GatewayContext:
        for warning in credential_warnings(credentials):
            log.warning("certificate_warning", detail=warning)
        registry = await synchronise(config, store, actor="config", credentials=credentials)
        catalogue = catalogue_for(config)
        inbox = StoreInbox(store, known_codes=catalogue)
        router = Router(
            store=store,
            registry=registry,
            catalogue=catalogue,
            wakeups=self._wakeups,
            clock=self._clock,
        )
        port = GatewayInbox(
            inbox=inbox,
            store=store,
            registry=registry,
            catalogue=catalogue,
            router=router,
            clock=self._clock,
        )
        return GatewayContext(
            config=config,
            registry=registry,
            catalogue=catalogue,
            credentials=credentials,
            store=store,
            inbox=inbox,
            inbox_port=port,
            router=router,
            wakeups=self._wakeups,
            clock=self._clock,
        )

    async def _start_services(self, context: GatewayContext) -> None:
        self._starting = True
        try:
            await self._start_each(context)
        finally:
            self._starting = False

    async def _start_each(self, context: GatewayContext) -> None:
        services: list[Service] = [
            Housekeeping(context, interval=context.config.gateway.housekeeping_interval)
        ]
        for factory in self._factories:
            services.extend(factory(context))
        for service in services:
            retrying = StartRetry(service)  # one that cannot start yet is retried, not fatal
            await retrying.start()
            self._services.append(retrying)
            if retrying.started:
                log.info("service_started", service=service.name)

    async def _stop_services(self, timeout: float) -> None:
        services, self._services = self._services, []
        for service in reversed(services):
            try:
                await service.stop(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - one failing stop must not block the others
                log.error("service_stop_failed", service=service.name, error=repr(exc))
            else:
                log.info("service_stopped", service=service.name)

    async def readiness(self) -> dict[str, bool]:
        """The checks behind /readyz."""
        return {
            "config": self._context is not None,
            "store": await self._store_writable(),
            "listeners": not self._starting
            and bool(self._services)
            and all(s.ready for s in self._services),
        }

    async def _store_writable(self) -> bool:
        if self._context is None:
            return False
        probe = self._context.config.gateway.data_dir / ".ready-probe"
        try:
            await offload.run_blocking(probe.write_bytes, b"ok")
        except OSError:
            return False
        return True

    def request_stop(self) -> None:
        """Ask the daemon to drain and exit (SIGTERM/SIGINT, or tests)."""
        self._stopping.set()

    async def reload(self) -> bool:
        """SIGHUP: switch to the new configuration if valid; keep the old one and say why if not."""
        async with self._reloading:
            assert self._store is not None
            assert self._context is not None
            before = await self._crl_state(self._context.config)
            try:
                config, credentials, crls = await offload.run_blocking(self._load)
                context = await self._build_context(config, credentials, self._store)
            except ConfigErrors as exc:
                metrics.CONFIG_RELOADS.labels("rejected").inc()
                log.error("config_reload_rejected", problems=[str(e) for e in exc.errors])
                self._crls_seen = before  # refused as they are: not tried again until changed
                return False
            self._crls_seen = crls
            await self._stop_services(self._context.config.gateway.shutdown_timeout)
            self._context = context
            await self._start_services(context)
            metrics.CONFIG_RELOADS.labels("applied").inc()
            log.info("config_reloaded", connections=len(context.registry))
            return True

    @staticmethod
    async def _crl_state(config: Config) -> FileState:
        return await offload.run_blocking(file_state, config.gateway.crls)

    async def _watch_crls(self) -> None:
        """Reload when a CRL file changes: the CA's new list takes effect without SIGHUP.

        A PKI's tooling or a cron job replaces the files; every `crl_check_interval` seconds
        they are looked at (not read). A change reloads the whole configuration, exactly as
        SIGHUP does: a valid new list is applied, a broken one is refused once and logged, and
        the running configuration stays.
        """
        while True:
            assert self._context is not None
            gateway = self._context.config.gateway
            await asyncio.sleep(gateway.crl_check_interval)
            if not gateway.crls or await self._crl_state(self._context.config) == self._crls_seen:
                continue
            log.info("crl_files_changed", files=[str(p) for p in gateway.crls])
            try:
                await self.reload()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive one failed reload
                log.error("crl_reload_failed", error=repr(exc))

    def _signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))

    async def run(self) -> int:
        """Serve until asked to stop; 0 on a clean stop, 2 when the config is invalid."""
        try:
            config, credentials, self._crls_seen = await offload.run_blocking(self._load)
        except ConfigErrors as exc:
            configure(level="info")
            log.error("config_invalid", problems=[str(e) for e in exc.errors])
            return 2
        configure(level=config.gateway.log_level)
        soft, hard = raise_open_files_limit()
        log.info("open_files_limit", soft=soft, hard=hard)
        config.gateway.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = await open_store(config.gateway.data_dir)
        try:
            requeued = await self._store.recover()
            log.info("store_recovered", requeued=requeued)
            try:  # the sheets against their history in the store (immutable fields...)
                self._context = await self._build_context(config, credentials, self._store)
            except ConfigErrors as exc:
                log.error("config_invalid", problems=[str(e) for e in exc.errors])
                return 2
            routed = await self._context.router.sweep()
            log.info("router_swept", routed=routed)
            app = build_app(self.readiness, lambda: self._context)
            for extend in self._extensions:
                extend(app)
            self.admin = AdminServer(
                app,
                host=config.gateway.admin.host,
                port=config.gateway.admin.port,
            )
            await self.admin.start()
            await self._start_services(self._context)
            if self._install_signals:
                self._signals(asyncio.get_running_loop())
            log.info(
                "gateway_started",
                admin_port=self.admin.bound_port,
                connections=len(self._context.registry),
            )
            watching = asyncio.create_task(self._watch_crls(), name="crl-watch")
            try:
                await self._stopping.wait()
            finally:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            log.info("gateway_stopping")
            await self._stop_services(self._context.config.gateway.shutdown_timeout)
            return 0
        finally:
            if self.admin is not None:
                await self.admin.stop()
            await self._store.close()
            with contextlib.suppress(Exception):
                offload.shutdown()
            log.info("gateway_stopped")
