"""One real server for the fuzz suite, with an admin key and the resources valid requests
name, and the suite's budget: bounded for CI, many more examples with ``--fuzz-long``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.app import GatewayApp, build_app
from sluicegate.config import load_settings
from sluicegate.core.gateway import Gateway
from sluicegate.storage.factory import open_log
from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.conftest import BACKENDS
from tests.fuzz.catalogue import (
    AVRO_SCHEMA,
    CLIENT,
    CONSUMER_INSTANCE,
    SUBJECT,
    TOPIC,
    TOPIC_PARAMS,
)
from tests.helpers import backend_env

ADMIN_KEY = secrets.token_urlsafe(32)
AUTHORIZATION = f"Bearer {ADMIN_KEY}".encode()
#: Examples per route and method: in CI, and for a local hunt (``--fuzz-long``).
EXAMPLES_CI = 20
EXAMPLES_LONG = 1_000


def served_app() -> GatewayApp:
    """The app as the server builds it, for its routes: never started, it opens nothing."""
    settings = load_settings(environ={})
    return build_app(Gateway(settings, open_log(settings)))


@dataclass(frozen=True)
class FuzzServer:
    process: ServerProcess
    address: tuple[str, int]


def _seed(url: str) -> None:
    """The topic, client and subject the examples name, so valid requests succeed."""
    with httpx.Client(base_url=url, headers={"authorization": AUTHORIZATION.decode()}) as http:
        for method, path, body in [
            ("POST", "/admin/v1/topics", {"name": TOPIC}),
            ("POST", f"/admin/v1/topics/{TOPIC}/records", {"records": [{"value": "v"}]}),
            ("POST", "/admin/v1/clients", {"name": CLIENT, "produce": ["fuzz*"]}),
            ("POST", f"/subjects/{SUBJECT}/versions", {"schema": AVRO_SCHEMA}),
        ]:
            response = http.request(method, path, json=body)
            assert response.status_code < 300, response.text
            if path == "/admin/v1/topics":
                # The topics v1 examples address the topic by this id.
                TOPIC_PARAMS["topic_id"] = str(response.json()["id"])
        # The consumer instance the consumer routes' examples name.
        created = http.post("/ce/consumers")
        assert created.status_code == 201, created.text
        CONSUMER_INSTANCE["instance"] = created.headers["location"].rsplit("/", 1)[1]


@pytest.fixture(scope="session", params=BACKENDS)
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzServer]:
    """A server on each backend: the same bad input must get the same answers from both."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    # The legacy topics v1 paths allow 1,000 requests a minute; a long hunt sends more.
    config = data_dir / "sluicegate.toml"
    # Consumers' polls answer at once: a fuzzed poll must not wait for events.
    config.write_text(
        "[limits.dialect_rates.topics_v1_legacy]\nrate_per_second = 1000000.0\nburst = 0\n"
        "[cloudevents]\npoll_timeout = 0.0\n"
    )
    env = {"SLUICEGATE_ADMIN_KEY": ADMIN_KEY, **backend_env(request, request.param)}
    with serve_in_subprocess(data_dir / "data", args=("--config", str(config)), env=env) as server:
        _seed(server.url)
        parts = urlsplit(server.url)
        assert parts.hostname is not None
        assert parts.port is not None
        yield FuzzServer(server, (parts.hostname, parts.port))
        # Whatever the clients saw: the server logged no error of its own.
        errors = [line for line in server.log if "unhandled error" in line or "Exception" in line]
        assert not errors, "\n".join(errors[:5])


@pytest.fixture(scope="session")
def fuzz_examples(pytestconfig: pytest.Config) -> int:
    long = pytestconfig.getoption("fuzz_long") or os.environ.get("SLUICEGATE_FUZZ_LONG") == "1"
    return EXAMPLES_LONG if long else EXAMPLES_CI
