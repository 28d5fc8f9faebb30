"""End-to-end tests run on every storage backend: a real server on SQLite and on Kafka.

Tests whose subject is one backend (the SQLite commit process, crash recovery, the WAL)
start their own server and do not take these fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.helpers import E2E_ADMIN_KEY, backend_env


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of the ``gateway`` these tests serve over a real socket."""
    return str(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def admin_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``sluicegate serve`` on a fresh store of each backend, its admin key ``E2E_ADMIN_KEY``."""
    env = {"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY, **backend_env(request, request.param)}
    with serve_in_subprocess(tmp_path_factory.mktemp("data"), args=(), env=env) as server:
        yield server
