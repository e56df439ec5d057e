"""Fixtures: a sandbox per session, a real store and gateway inbox per test, a live listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.credentials import LoadedCredentials
from protocols.sftp.server import SftpListener
from tests.sandbox import make_sandbox
from tests.sftp.harness import (
    Accounts,
    GatewayEnv,
    gateway_env,
    loaded,
    make_key,
    start_listener,
)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sandbox(tmp_path_factory.mktemp("sftp-sandbox"))


@pytest.fixture(scope="session")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    keys = tmp_path_factory.mktemp("sftp-keys")
    return Accounts(
        backoffice=make_key(keys, "backoffice"),
        aife=make_key(keys, "aife"),
        stranger=make_key(keys, "stranger"),
    )


@pytest.fixture(scope="session")
def sandbox_loaded(sandbox: Path) -> tuple[Config, LoadedCredentials]:
    return loaded(sandbox)


@pytest.fixture
async def env(
    sandbox: Path, sandbox_loaded: tuple[Config, LoadedCredentials], tmp_path: Path
) -> AsyncIterator[GatewayEnv]:
    built = await gateway_env(sandbox, tmp_path / "data", preloaded=sandbox_loaded)
    yield built
    await built.store.close()


@pytest.fixture
async def listener(
    env: GatewayEnv, accounts: Accounts, tmp_path: Path
) -> AsyncIterator[SftpListener]:
    started = await start_listener(env, accounts.build(), tmp_path / "host_key")
    yield started
    await started.stop(timeout=5)
