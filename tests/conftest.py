"""Fixtures shared by the whole suite: a running gateway and an in-process client.

The gateway stores on the backend the ``backend`` fixture names: SQLite unless a
directory's ``conftest.py`` parametrizes it over ``BACKENDS`` (the dialects' tests do), so
unit tests that never touch storage run once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from sluicegate.app import GatewayApp, build_app
from sluicegate.config import Settings, load_settings
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.testing.kafka_broker import KafkaBroker

#: Every storage backend; dialect tests run on each.
BACKENDS = ["sqlite", "kafka"]


#: Names an existing Kafka cluster for the tests (see ``kafka_bootstrap``).
KAFKA_BOOTSTRAP_VARIABLE = "SLUICEGATE_TEST_KAFKA_BOOTSTRAP"
_SHARED_BROKER = pytest.StashKey[KafkaBroker]()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``), start the run's Kafka broker once, before the workers,
    which inherit its address: one broker for all of them, not one each."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or hasattr(config, "workerinput") or os.environ.get(KAFKA_BOOTSTRAP_VARIABLE):
        return
    broker = KafkaBroker(Path(tempfile.mkdtemp(prefix="sluicegate-test-kafka-")))
    broker.start()
    config.stash[_SHARED_BROKER] = broker
    os.environ[KAFKA_BOOTSTRAP_VARIABLE] = broker.bootstrap_servers


def pytest_unconfigure(config: pytest.Config) -> None:
    broker = config.stash.get(_SHARED_BROKER, None)
    if broker is not None:
        del os.environ[KAFKA_BOOTSTRAP_VARIABLE]
        broker.stop()
        shutil.rmtree(broker.directory, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        help="run many more fuzz examples per route (also: SLUICEGATE_FUZZ_LONG=1)",
    )


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
def backend() -> str:
    """The storage backend of the test gateway (see the module docstring)."""
    return "sqlite"


def commit_markers(backend: str) -> int:
    """Offsets a multi-record batch takes beyond its records, per partition it wrote.

    Kafka stores such a batch in a transaction, whose commit marker takes an offset.
    """
    return 1 if backend == "kafka" else 0


def on_kafka(settings: Settings, bootstrap: str) -> Settings:
    """``settings`` on the Kafka cluster at ``bootstrap``, in a namespace of their own."""
    kafka = msgspec.structs.replace(
        settings.kafka, bootstrap_servers=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}."
    )
    storage = msgspec.structs.replace(settings.storage, backend="kafka")
    return msgspec.structs.replace(settings, storage=storage, kafka=kafka)


@pytest.fixture
def stored_settings(settings: Settings, backend: str, request: pytest.FixtureRequest) -> Settings:
    """``settings`` on the ``backend`` of this test."""
    if backend == "kafka":
        return on_kafka(settings, request.getfixturevalue("kafka_bootstrap"))
    return settings


@pytest.fixture
async def gateway(stored_settings: Settings, metrics: Metrics) -> AsyncIterator[Gateway]:
    settings = stored_settings
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
    existing = os.environ.get(KAFKA_BOOTSTRAP_VARIABLE)
    if existing:
        yield existing
        return
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap_servers


#: The 3.x line's last version: clusters in use are often 3.x, so the storage contract
#: runs on it too (``tests/storage/conftest.py``).
KAFKA_3_VERSION = "3.9.1"


@pytest.fixture(scope="session")
def kafka_3_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Kafka ``KAFKA_3_VERSION`` broker's bootstrap servers, started for the run unless
    ``$SLUICEGATE_TEST_KAFKA_3_BOOTSTRAP`` names one."""
    existing = os.environ.get("SLUICEGATE_TEST_KAFKA_3_BOOTSTRAP")
    if existing:
        yield existing
        return
    with KafkaBroker(tmp_path_factory.mktemp("kafka-3"), version=KAFKA_3_VERSION) as broker:
        yield broker.bootstrap_servers
