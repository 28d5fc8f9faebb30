"""End-to-end tests run on every storage backend and under each HTTP server: a real server
on SQLite and on Kafka, uvicorn and Hypercorn (``[server] http2``).

Tests whose subject is one backend (the SQLite commit process, crash recovery, the WAL)
start their own server and do not take the backend fixtures. The server does not depend
on the backend, so Hypercorn runs the backend-parametrized tests on SQLite only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec
import pytest

from sluicegate.config import Settings
from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import E2E_ADMIN_KEY, backend_env

#: The HTTP servers; ``hypercorn`` is ``[server] http2 = true``.
SERVERS = ["uvicorn", "hypercorn"]
_HTTP2_VARIABLE = "SLUICEGATE_SERVER__HTTP2"


@pytest.fixture(scope="module", params=SERVERS, autouse=True)
def http_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The HTTP server of every gateway a test here starts.

    ``sluicegate serve`` processes inherit it from the environment; a gateway served in the
    test's own event loop takes it through ``on_server``.
    """
    name = str(request.param)
    previous = os.environ.get(_HTTP2_VARIABLE)
    os.environ[_HTTP2_VARIABLE] = "true" if name == "hypercorn" else "false"
    try:
        yield name
    finally:
        if previous is None:
            del os.environ[_HTTP2_VARIABLE]
        else:
            os.environ[_HTTP2_VARIABLE] = previous


def on_server(settings: Settings, http_server: str) -> Settings:
    """``settings`` served by ``http_server``."""
    server = msgspec.structs.replace(settings.server, http2=http_server == "hypercorn")
    return msgspec.structs.replace(settings, server=server)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the Kafka backend under Hypercorn: uvicorn runs those tests.

    Left out at collection, not skipped: nothing here is a test that could not run.
    """
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_kafka = "kafka" in params.values() or "kafka_bootstrap" in getattr(
            item, "fixturenames", ()
        )
        under_hypercorn = params.get("http_server") == "hypercorn"
        (left_out if on_kafka and under_hypercorn else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of the ``gateway`` these tests serve over a real socket."""
    return str(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def admin_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http_server: str
) -> Iterator[ServerProcess]:
    """``sluicegate serve`` on a fresh store of each backend, its admin key ``E2E_ADMIN_KEY``."""
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY, **backend_env(request, request.param)}
    with serve_in_subprocess(tmp_path_factory.mktemp("data"), args=(), env=env) as server:
        yield server
