"""Every produce answers within the append deadline when the broker goes away, on every
dialect: CloudEvents raw and batch, topics v1 single and batch publish.

Their appends take other ways through the Kafka backend than records v2's
(``test_faults``): a CloudEvents event is stored with its identity marker, so even one
event is a Kafka transaction, and topics v1's single publishes meet its batches on one
partition, each waiting for the other's producer. An earlier transaction's commit and
abort, a retry, a wait behind the other producer: each once took a timeout of its own,
and a request waited for their sum. On a broker of this module's own, stopped and killed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from sluicegate.testing.kafka_broker import KafkaBroker
from tests.storage.kafka.conftest import consume_all_async
from tests.storage.kafka.producers import gateway_client

APPEND_TIMEOUT = 4.0
#: A correctness bound, not a measurement: what an answer may take beyond the deadline.
SLACK = 3.0
TOPIC = "deadline"
#: Every value is stored as ``{"v": value}``.
#: Each kind of produce: (the Kafka topic it stores in, without the prefix, and its 2xx).
KINDS = {
    "ce_raw": ("ce.Deadline.Raw", 202),
    "ce_batch": ("ce.Deadline.Batch", 202),
    "v1_single": (TOPIC, 200),
    "v1_batch": (TOPIC, 200),
}
_Request = dict[str, Any]


@pytest.fixture
async def http(broker: KafkaBroker, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    client = gateway_client(
        tmp_path, broker.bootstrap_servers, append_timeout=APPEND_TIMEOUT, request_timeout=2.0
    )
    async with client as http:
        http.timeout = httpx.Timeout(60.0)
        yield http


def _ce_raw(value: str) -> tuple[_Request, list[str]]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": value,
        "ce-source": "urn:deadline",
        "ce-type": "Deadline.Raw",
        "content-type": "application/json",
    }
    return {"url": "/ce/produce/raw", "content": json.dumps({"v": value}), "headers": headers}, [
        value
    ]


def _ce_batch(value: str) -> tuple[_Request, list[str]]:
    values = [f"{value}-{n}" for n in range(3)]
    events = [
        {
            "specversion": "1.0",
            "id": one,
            "source": "urn:deadline",
            "type": "Deadline.Batch",
            "datacontenttype": "application/json",
            "data": {"v": one},
        }
        for one in values
    ]
    headers = {"content-type": "application/cloudevents-batch+json"}
    return {"url": "/ce/produce/events", "content": json.dumps(events), "headers": headers}, values


def _v1_single(topic_id: int) -> Callable[[str], tuple[_Request, list[str]]]:
    def request(value: str) -> tuple[_Request, list[str]]:
        return {"url": f"/api/v1/topics/{topic_id}/publish", "json": {"v": value}}, [value]

    return request


def _v1_batch(topic_id: int) -> Callable[[str], tuple[_Request, list[str]]]:
    def request(value: str) -> tuple[_Request, list[str]]:
        values = [f"{value}-{n}" for n in range(3)]
        url = f"/api/v1/batch/topics/{topic_id}/publish"
        return {"url": url, "json": {"payloads": [{"v": one} for one in values]}}, values

    return request


@dataclass
class Answer:
    kind: str
    sent: float
    answered: float
    status: int
    values: list[str]


class Clients:
    """Two clients per kind of produce, sending unique values until stopped."""

    def __init__(self, http: httpx.AsyncClient, topic_id: int) -> None:
        self.http = http
        self.requests = {
            "ce_raw": _ce_raw,
            "ce_batch": _ce_batch,
            "v1_single": _v1_single(topic_id),
            "v1_batch": _v1_batch(topic_id),
        }
        self.answers: list[Answer] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for kind in self.requests:
                for client in range(2):
                    tg.create_task(self._send(kind, f"{kind}-{client}"))

    async def _send(self, kind: str, name: str) -> None:
        sent = 0
        while not self.stop.is_set():
            request, values = self.requests[kind](f"{name}-{sent}")
            sent += 1
            started = time.monotonic()
            response = await self.http.post(**request)
            answer = Answer(kind, started, time.monotonic(), response.status_code, values)
            self.answers.append(answer)
            if response.status_code >= 300:
                await asyncio.sleep(0.05)  # an outage answers at once, and so would a retry

    async def until_each_acked(self, count: int, timeout: float) -> None:
        """Until every kind had ``count`` more requests acknowledged."""
        before = self.acked()
        deadline = time.monotonic() + timeout
        while any(self.acked()[kind] < before[kind] + count for kind in KINDS):
            assert time.monotonic() < deadline, (self.acked(), self.statuses())
            await asyncio.sleep(0.05)

    def acked(self) -> collections.Counter[str]:
        return collections.Counter(a.kind for a in self.answers if a.status == KINDS[a.kind][1])

    def statuses(self) -> dict[str, collections.Counter[int]]:
        return {
            kind: collections.Counter(a.status for a in self.answers if a.kind == kind)
            for kind in KINDS
        }


async def _stored(bootstrap: str, prefix: str) -> collections.Counter[str]:
    """Every value stored in the topics of ``KINDS``, with how often."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = (await asyncio.to_thread(admin.list_topics, timeout=10)).topics
    stored: collections.Counter[str] = collections.Counter()
    for topic in {topic for topic, _ in KINDS.values()}:
        name = prefix + topic
        for message in await consume_all_async(bootstrap, name, len(listed[name].partitions)):
            stored[json.loads(message.value())["v"]] += 1
    return stored


@pytest.mark.parametrize("how", ["stop", "kill -9"])
async def test_every_dialect_answers_within_the_append_deadline_when_the_broker_goes(
    http: httpx.AsyncClient, broker: KafkaBroker, how: str
) -> None:
    schema = [{"name": "v", "type": "string"}]
    made = await http.post("/api/event_streams/topics", json={"name": TOPIC, "schema": schema})
    assert made.status_code == 200, made.text
    clients = Clients(http, made.json()["data"]["id"])
    sending = asyncio.create_task(clients.run())
    try:
        await clients.until_each_acked(3, timeout=30)
        gone = time.monotonic()
        await asyncio.to_thread(broker.stop if how == "stop" else broker.kill)
        # Requests in flight when the broker went, and those sent since, all answered.
        await asyncio.sleep(APPEND_TIMEOUT + SLACK + 1)
        back = time.monotonic()
        await asyncio.to_thread(broker.start)
        await clients.until_each_acked(3, timeout=60)  # the same gateway, recovered
    finally:
        clients.stop.set()
        await sending
    during = [a for a in clients.answers if a.answered > gone and a.sent < back]
    refused = [a for a in during if a.status != KINDS[a.kind][1]]
    assert {a.status for a in refused} <= {408, 503}, clients.statuses()
    for kind in KINDS:
        assert any(a.kind == kind for a in refused), (kind, clients.statuses())
    late = [
        (a.kind, round(a.sent - gone, 1), round(a.answered - a.sent, 1), a.status)
        for a in clients.answers
        if a.sent < back and a.answered - a.sent > APPEND_TIMEOUT + SLACK
    ]
    assert late == []
    # Never a 2xx for a record not stored; none stored twice, no batch in part.
    stored = await _stored(broker.bootstrap_servers, http.headers["x-topic-prefix"])
    assert [value for value, times in stored.items() if times > 1] == []
    acked = [a for a in clients.answers if a.status == KINDS[a.kind][1]]
    assert [a.values for a in acked if not set(a.values) <= set(stored)] == []
    kept = set(stored)
    assert [
        a.values for a in clients.answers if 0 < len(kept & set(a.values)) < len(a.values)
    ] == []
