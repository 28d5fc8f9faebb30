"""Fixtures shared by the whole suite: a running gateway and an in-process client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.app import GatewayApp, build_app
from sluicegate.config import Settings, load_settings
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.testing.kafka_broker import KafkaBroker


def make_settings(data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a test gateway: defaults, ``data_dir``, and ``sections`` on top."""
    overrides: dict[str, Any] = {"storage": {"data_dir": str(data_dir)}, **sections}
    return load_settings(environ={}, overrides=overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Override in a module to change the gateway's settings."""
    return make_settings(tmp_path, auth={"enabled": False})


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def gateway(settings: Settings, metrics: Metrics) -> AsyncIterator[Gateway]:
    log = open_log(settings, observe_commit=metrics.observe_commit)
    async with running(log):
        gateway = Gateway(settings, log)
        await gateway.start()
        yield gateway


@pytest.fixture
def app(gateway: Gateway, metrics: Metrics) -> GatewayApp:
    return build_app(gateway, metrics=metrics)


@pytest.fixture
async def client(app: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sluicegate.test") as client:
        yield client


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka cluster's bootstrap servers, for the whole run.

    ``$SLUICEGATE_TEST_KAFKA_BOOTSTRAP`` names an existing cluster; otherwise a single-node
    broker is started for the run (Java and Maven are all it needs) and stopped at the end.
    Kafka tests never skip: a missing Java or Maven fails them, saying which.
    """
    existing = os.environ.get("SLUICEGATE_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap_servers
