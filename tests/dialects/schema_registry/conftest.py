"""The schema registry API mounted on the gateway app, in-process and on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import uvicorn

from sluicegate.app import GatewayApp
from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.dialects.schema_registry.routes import routes
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import Log, running
from sluicegate.storage.factory import open_log
from tests.helpers import serving_in_loop


@pytest.fixture
async def log(stored_settings: Settings) -> AsyncIterator[Log]:
    async with running(open_log(stored_settings)) as log:
        yield log


@pytest.fixture
async def registry(log: Log) -> SchemaRegistry:
    registry = SchemaRegistry(log)
    await registry.load()
    return registry


@pytest.fixture
def app(settings: Settings, log: Log, registry: SchemaRegistry, metrics: Metrics) -> GatewayApp:
    """The gateway app with only this dialect, at the root and under ``/registry``.

    The gateway is not started: this dialect needs only the registry, loaded above.
    """
    mounted = [*routes(registry), *routes(registry, prefix="/registry")]
    return GatewayApp(Gateway(settings, log), mounted, metrics=metrics)


@pytest.fixture
async def server_url(app: GatewayApp) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1, on a port the OS picked (see
    ``serving_in_loop`` for how to call it)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="none"
    )
    async with serving_in_loop(config) as port:
        yield f"http://127.0.0.1:{port}"
