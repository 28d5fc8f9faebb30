"""A real server with authentication on, for the tests that drive it as a client would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.helpers import E2E_ADMIN_KEY


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``sluicegate serve`` on a fresh data directory, its admin key ``E2E_ADMIN_KEY``."""
    with serve_in_subprocess(
        tmp_path_factory.mktemp("data"), args=(), env={"SLUICEGATE_ADMIN_KEY": E2E_ADMIN_KEY}
    ) as server:
        yield server
