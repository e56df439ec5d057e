"""Wires intake and return flows into the daemon: drop folder, correlation, delivery, HTTP API.

Correlation always runs (it indexes emitted invoices and links return flows to them); the drop
folder runs when `intake.drop_dir` is set; delivery when `intake.delivery` has a folder or a
webhook. The settings come from the `intake:` section of the configuration, read defensively
until that section is part of `Config` (see `gateway.intake_settings`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway import api
from gateway.config import Config
from gateway.correlation import CorrelationService
from gateway.delivery import DeliveryService, FolderTarget, Target, WebhookTarget
from gateway.dropfolder import DropFolder
from gateway.intake_settings import IntakeSettings
from gateway.services import EndpointFactory, GatewayContext, Service

__all__ = ["admin_routes", "build_services", "factory", "factory_for", "intake_settings"]


def intake_settings(config: Config) -> IntakeSettings:
    """The `intake:` section (everything off when absent)."""
    return config.intake


def build_services(context: GatewayContext, settings: IntakeSettings) -> list[Service]:
    """The services `settings` ask for, over the context in force."""
    services: list[Service] = [
        CorrelationService(
            store=context.store,
            catalogue=context.catalogue,
            registry=context.registry,
            wakeups=context.wakeups,
            interval=settings.correlation_interval,
        )
    ]
    if settings.drop_dir is not None:
        services.append(
            DropFolder(
                settings.drop_dir,
                port=context.inbox_port,
                store=context.store,
                poll_interval=settings.poll_interval,
                settle_seconds=settings.settle_seconds,
            )
        )
    delivery = settings.delivery
    if delivery.enabled:
        targets: list[Target] = []
        if delivery.folder is not None:
            targets.append(FolderTarget(delivery.folder))
        if delivery.webhook is not None:
            targets.append(WebhookTarget(delivery.webhook, clock=context.clock))
        services.append(
            DeliveryService(
                store=context.store,
                catalogue=context.catalogue,
                wakeups=context.wakeups,
                settings=delivery,
                targets=targets,
                clock=context.clock,
            )
        )
    return services


def factory(context: GatewayContext) -> Sequence[Service]:
    """The intake workers the configuration in force asks for."""
    return build_services(context, intake_settings(context.config))


def factory_for(settings: IntakeSettings) -> EndpointFactory:
    """A factory with explicit settings (tests, or before `intake:` is part of `Config`)."""

    def make(context: GatewayContext) -> Sequence[Service]:
        return build_services(context, settings)

    return make


def admin_routes(app: web.Application) -> None:
    """The HTTP API: `POST /v1/flows`, `GET /v1/messages/{id}`."""
    api.add_routes(app)
