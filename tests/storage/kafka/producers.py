"""Producers that count what the gateway acknowledged, and the check that Kafka holds it
all once: the fault tests' and the failover tests' common ground."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from sluicegate.app import build_app
from sluicegate.core.gateway import Gateway
from sluicegate.observability.metrics import Metrics
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from tests.conftest import make_settings, on_kafka
from tests.storage.kafka.conftest import consume_all_async

#: Records v2's single-record produce: the idempotent producer.
URL = "/v2/topics/faults/records"
#: The topic admin API's multi-record produce: all or nothing, a Kafka transaction.
BATCH_URL = "/admin/v1/topics/faults/records"
BATCH = 5


@contextlib.asynccontextmanager
async def gateway_client(
    tmp_path: Path, bootstrap: str, *, append_timeout: float, request_timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway (in process, authentication off) stored on the cluster at
    ``bootstrap``, in a namespace of its own, whose ``x-topic-prefix`` header names it."""
    settings = on_kafka(
        make_settings(
            tmp_path,
            auth={"enabled": False},
            storage={"append_timeout": append_timeout},
            kafka={"request_timeout": request_timeout},
        ),
        bootstrap,
    )
    async with running(open_log(settings)) as log:
        gateway = Gateway(settings, log)
        await gateway.start()
        transport = httpx.ASGITransport(app=build_app(gateway, metrics=Metrics()))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["x-topic-prefix"] = settings.kafka.topic_prefix
            yield client


class Producers:
    """Concurrent producers, each sending unique values, counting outcomes: records-v2
    single records, and (``batch_workers``) all-or-nothing batches of ``BATCH``."""

    def __init__(self, http: httpx.AsyncClient, workers: int = 4, batch_workers: int = 0) -> None:
        self.http = http
        self.workers = workers
        self.batch_workers = batch_workers
        self.acked: list[str] = []
        #: Every batch sent, whatever its answer.
        self.batches: list[list[str]] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        #: The bodies of the answers that were not 200, to say what refused.
        self.refusals: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for worker in range(self.workers):
                tg.create_task(self._produce(worker))
            for worker in range(self.batch_workers):
                tg.create_task(self._produce_batches(worker))

    async def _produce_batches(self, worker: int) -> None:
        sent = 0
        while not self.stop.is_set():
            values = [f"b{worker}-{sent}-{i}" for i in range(BATCH)]
            sent += 1
            self.batches.append(values)
            body = {"records": [{"value": value} for value in values]}
            if await self._post(BATCH_URL, body):
                self.acked.extend(values)

    async def _produce(self, worker: int) -> None:
        sent = 0
        while not self.stop.is_set():
            value = f"w{worker}-{sent}"
            sent += 1
            body = {"value": {"type": "text", "data": value}}
            if await self._post(URL, body):
                self.acked.append(value)

    async def _post(self, url: str, body: dict[str, Any]) -> bool:
        """Send ``body``, count its status; whether it was acknowledged (200). A refusal
        is followed by a short pause: an outage answers at once, and so would the retry."""
        response = await self.http.post(url, json=body)
        self.statuses[response.status_code] += 1
        if response.status_code != 200:
            self.refusals.append(response.text)
            await asyncio.sleep(0.05)
        return response.status_code == 200

    async def until_acked(self, count: int, timeout: float) -> None:
        target = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks: {self.statuses}"
            await asyncio.sleep(0.05)


async def stored_values(bootstrap: str, topic: str) -> list[str]:
    messages = await consume_all_async(bootstrap, topic)
    return [message.value().decode() for message in messages]


async def check_stored(http: httpx.AsyncClient, bootstrap: str, producers: Producers) -> None:
    """Every acknowledged record is stored once, no record twice, no batch in part, and
    every answer was one an outage may give."""
    assert set(producers.statuses) <= {200, 408, 503}, producers.statuses
    topic = http.headers["x-topic-prefix"] + "faults"
    stored = await stored_values(bootstrap, topic)
    duplicates = [v for v, n in collections.Counter(stored).items() if n > 1]
    assert duplicates == []
    assert set(producers.acked) <= set(stored)
    # A batch is stored whole or not at all, whatever it was answered.
    kept = set(stored)
    partial = [b for b in producers.batches if 0 < len(kept.intersection(b)) < len(b)]
    assert partial == []
