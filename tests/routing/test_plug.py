"""The `intake:` settings and what the plug builds from them (everything off by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from gateway import plug_intake
from gateway.correlation import CorrelationService
from gateway.delivery import DeliveryService
from gateway.dropfolder import DropFolder
from gateway.intake_settings import IntakeSettings, WebhookSettings
from tests.routing.conftest import World


@pytest.mark.parametrize(
    ("webhook", "why"),
    [
        ({"url": "https://bo.example/x"}, "exactly one of secret or secret_file"),
        ({"url": "https://bo.example/x", "secret": "a", "secret_file": "f"}, "exactly one"),
        ({"url": "ftp://bo.example/x", "secret": "a"}, "http:// or https://"),
        ({"url": "https:///nohost", "secret": "a"}, "with a host"),
        ({"url": "http://[::1/x", "secret": "a"}, "not a URL"),
        ({"url": "https://bo.example/x", "secret": "a", "timeout": 0}, "greater than 0"),
        ({"url": "https://bo.example/x", "secret": "a", "retries": 3}, "Extra inputs"),
    ],
)
def test_hostile_webhook_settings_are_refused_with_the_field(
    webhook: dict[str, Any], why: str
) -> None:
    with pytest.raises(ValidationError) as info:
        IntakeSettings.model_validate({"delivery": {"webhook": webhook}})
    assert why in str(info.value)


def test_a_malformed_code_filter_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"delivery\.codes\.0"):
        IntakeSettings.model_validate({"delivery": {"codes": ["../x"]}})


def test_everything_is_off_by_default() -> None:
    settings = IntakeSettings()
    assert (settings.drop_dir, settings.delivery.enabled) == (None, False)
    assert WebhookSettings(url="http://127.0.0.1:1/x", secret="s").timeout == 30.0


def test_the_intake_section_is_part_of_the_config(world: World) -> None:
    context = world.context()
    assert plug_intake.intake_settings(context.config) is context.config.intake


def test_the_plug_builds_only_what_is_configured(world: World, tmp_path: Path) -> None:
    context = world.context()
    [alone] = plug_intake.build_services(context, IntakeSettings())
    assert isinstance(alone, CorrelationService)
    settings = IntakeSettings.model_validate(
        {"drop_dir": tmp_path / "drop", "delivery": {"folder": tmp_path / "out"}}
    )
    built = plug_intake.factory_for(settings)(context)
    assert [type(s) for s in built] == [CorrelationService, DropFolder, DeliveryService]
    assert [s.name for s in built] == ["correlation", "drop-folder", "delivery"]
    assert [type(s) for s in plug_intake.factory(context)] == [CorrelationService]


def test_the_api_routes_are_added_to_the_admin_app() -> None:
    app = web.Application()
    plug_intake.admin_routes(app)
    paths = {route.resource.canonical for route in app.router.routes() if route.resource}
    assert {"/v1/flows", "/v1/messages/{message_id}"} <= paths
