"""Faults between the gateway and Kafka, on brokers of their own: stopped, killed, and
behind a proxy that delays, stalls and cuts connections.

What must hold: no 200 for a record not stored, every acknowledged record stored exactly
once, no record of a failed batch visible, and recovery without restarting the gateway.
Each test is bounded in records and seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.config import CloudEventSettings, KafkaSettings
from sluicegate.core import state_topic
from sluicegate.core.cloudevents import types as event_types
from sluicegate.core.cloudevents.dedup import EventIds
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord, TopicPartition
from sluicegate.core.schemas.state import STATE_TOPIC
from sluicegate.core.topics import INTERNAL_PREFIX, TopicSpec
from sluicegate.errors import SluicegateError, StorageTimeout
from sluicegate.storage import outages
from sluicegate.storage.base import running
from sluicegate.storage.factory import open_log
from sluicegate.storage.kafka import KafkaLog
from sluicegate.testing.kafka_broker import KafkaBroker
from tests.conftest import make_settings, on_kafka
from tests.storage.kafka.conftest import consume_all_async, free_port, serve_at
from tests.storage.kafka.fault_proxy import FaultProxy
from tests.storage.kafka.producers import (
    BATCH,
    Producers,
    check_stored,
    gateway_client,
    stored_values,
)

SCHEMAS_TOPIC = f"{INTERNAL_PREFIX}_{STATE_TOPIC}"


@pytest.fixture
async def http(broker: KafkaBroker, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Records v2 on a gateway stored on ``broker``, with short deadlines."""
    client = gateway_client(
        tmp_path, broker.bootstrap_servers, append_timeout=4.0, request_timeout=2.0
    )
    async with client as http:
        yield http


@pytest.mark.parametrize("how", ["stop", "kill -9"])
async def test_broker_down_during_produce_never_200_and_recovers(
    http: httpx.AsyncClient, broker: KafkaBroker, how: str
) -> None:
    # Single records (the idempotent producer) and batches (the transactional one), both
    # through the outage and after it.
    producers = Producers(http, batch_workers=2)
    running_producers = asyncio.create_task(producers.run())
    try:
        await producers.until_acked(50, timeout=30)
        if how == "stop":
            await asyncio.to_thread(broker.stop)
        else:
            await asyncio.to_thread(broker.kill)
        acked_before = len(producers.acked)
        # Every request answers within the append deadline (4 s): 503 at once once the
        # producer knows no broker is reachable, 408 for records it was still sending.
        await asyncio.sleep(6)
        failures = producers.statuses[503] + producers.statuses[408]
        assert failures > 0
        assert (await http.get("/readyz")).status_code == 503
        # Requests in flight when the broker went may have been acked; none after that.
        in_flight = producers.workers + producers.batch_workers * BATCH
        assert len(producers.acked) - acked_before <= in_flight
        await asyncio.to_thread(broker.start)
        await producers.until_acked(50, timeout=60)  # the same gateway, recovered
        batches_before = len(producers.batches)
        await producers.until_acked(50, timeout=60)
        assert len(producers.batches) > batches_before  # batches went on too
        assert (await http.get("/readyz")).status_code == 200
    finally:
        producers.stop.set()
        await running_producers
    await check_stored(http, broker.bootstrap_servers, producers)


async def test_long_polls_in_an_outage_are_503_not_nothing_new(
    http: httpx.AsyncClient, broker: KafkaBroker
) -> None:
    # A CloudEvents consumer instance's poll, and a topics v1 cursor's, both made and
    # answered "nothing new" while the broker is up.
    created = await http.post("/ce/consumers", params={"group": "outage"})
    assert created.status_code == 201, created.text
    events = urlsplit(created.headers["location"]).path + "/events"
    schema = [{"name": "n", "type": "integer"}]
    topic = await http.post("/api/event_streams/topics", json={"name": "outage", "schema": schema})
    assert topic.status_code == 200, topic.text
    topic_id = topic.json()["data"]["id"]
    published = await http.post(f"/api/v1/topics/{topic_id}/publish", json={"n": 1})
    assert published.status_code == 200, published.text
    cursor = {"after_message_id": published.json()["message_id"], "timeout_secs": 1}
    consume = f"/api/v1/topics/{topic_id}/consume"

    async def poll_ce() -> httpx.Response:
        return await http.get(events, params={"timeout": "1"})

    async def poll_v1() -> httpx.Response:
        return await http.post(consume, json=cursor)

    nothing_new = {poll_ce: 204, poll_v1: 200}
    for poll, status in nothing_new.items():
        response = await poll()
        assert response.status_code == status, response.text
    # Polls waiting when the broker goes: they end at their timeout, with 503.
    waiting = [
        asyncio.create_task(http.get(events, params={"timeout": "5"})),
        asyncio.create_task(http.post(consume, json={**cursor, "timeout_secs": 5})),
    ]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(broker.stop)
    try:
        for ended in await asyncio.gather(*waiting):
            assert ended.status_code == 503, ended.text
        # Once the gateway knows no broker answers, a poll that found nothing is 503:
        # an empty answer would tell the consumer there is nothing new.
        for poll, status in nothing_new.items():
            statuses: list[int] = []
            deadline = time.monotonic() + 20
            while not statuses or statuses[-1] != 503:
                assert time.monotonic() < deadline, statuses
                response = await poll()
                statuses.append(response.status_code)
            assert set(statuses) <= {status, 503}, statuses
            assert "Kafka" in response.json()["message"], response.text
    finally:
        await asyncio.to_thread(broker.start)
    # Recovered, the same consumers poll again: nothing new once more.
    for poll, status in nothing_new.items():
        deadline = time.monotonic() + 60
        while (response := await poll()).status_code != status:
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, "the poll did not recover"
            await asyncio.sleep(0.5)


#: The topic of the gateway started while the broker is down.
WAITED = "/v2/topics/waited/records"


def _serve(tmp_path: Path, bootstrap: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``sluicegate serve`` on the cluster of ``bootstrap`` at ``port``."""
    env = {
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "SLUICEGATE_KAFKA__REQUEST_TIMEOUT": "2",
    }
    return serve_at(tmp_path, port, log, env=env)


async def _until(http: httpx.AsyncClient, path: str, status: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(path)).status_code == status:
                return
        assert time.monotonic() < deadline, f"{path} did not answer {status}"
        await asyncio.sleep(0.2)


async def _starting(http: httpx.AsyncClient) -> None:
    """What a gateway waiting for its cluster answers: alive, not ready, 503 elsewhere."""
    await _until(http, "/healthz", 200, 60)
    # Its first question to the cluster takes the request timeout (2 s) to fail; from
    # then on the answer says why it waits.
    deadline = time.monotonic() + 30
    while "every Kafka broker is unreachable" not in (ready := await http.get("/readyz")).text:
        assert (ready.status_code, ready.json()["error"]) == (503, "starting"), ready.text
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.2)
    assert ready.status_code == 503
    produced = await http.post(WAITED, json={"value": {"type": "text", "data": "early"}})
    assert (produced.status_code, produced.json()["error_code"]) == (503, 503), produced.text
    assert produced.headers["retry-after"] == "5"


async def test_a_gateway_started_while_the_broker_is_down_waits_for_it(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    await asyncio.to_thread(broker.stop)
    port = free_port()
    log = tmp_path / "serve.log"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            # Stopped while it waits: it ends at once, cleanly.
            process = _serve(tmp_path / "first", broker.bootstrap_servers, port, log)
            try:
                await _starting(http)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(process.wait, 15) == 0
            finally:
                process.kill()
                process.wait()
            # Left to wait: it serves once the broker is back, without a restart.
            process = _serve(tmp_path / "second", broker.bootstrap_servers, port, log)
            try:
                await _starting(http)
                await asyncio.to_thread(broker.start)
                await _until(http, "/readyz", 200, 60)
                record = {"value": {"type": "text", "data": "after"}}
                produced = await http.post(WAITED, json=record)
                assert produced.status_code == 200, produced.text
                process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(process.wait, 30) == 0
            finally:
                process.kill()
                process.wait()
    finally:
        if not broker.running:
            await asyncio.to_thread(broker.start)
    logged = log.read_text()
    assert "did not answer" in logged
    assert "stopped before the storage was ready" in logged
    assert await stored_values(broker.bootstrap_servers, "waited") == ["after"]


@contextlib.asynccontextmanager
async def behind_a_fault_proxy(tmp_path: Path) -> AsyncIterator[tuple[FaultProxy, str]]:
    """A broker of its own reached through a fault proxy, and the proxy's address."""
    proxy_port = free_port()
    with KafkaBroker(tmp_path / "kafka", advertised_port=proxy_port) as broker:
        proxy = FaultProxy(proxy_port, broker.port)
        await proxy.start()
        try:
            yield proxy, f"127.0.0.1:{proxy_port}"
        finally:
            await proxy.close()


async def _faults(proxy: FaultProxy, *, stall: float, delay: bool) -> None:
    """Twice: (50 ms of delay for a second,) a stall of ``stall`` seconds, then every
    connection cut; then three seconds of calm."""
    for _ in range(2):
        await asyncio.sleep(1)
        if delay:
            proxy.delay = 0.05
            await asyncio.sleep(1)
            proxy.delay = 0.0
        proxy.stall()
        await asyncio.sleep(stall)
        proxy.flow()
        await asyncio.sleep(0.5)
        proxy.cut()
    await asyncio.sleep(3)


async def test_delays_stalls_and_cuts_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    async with behind_a_fault_proxy(tmp_path) as (proxy, bootstrap):
        await _produce_through_faults(proxy, bootstrap)


async def _produce_through_faults(proxy: FaultProxy, bootstrap: str) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix="proxied.", request_timeout=3.0
    )
    acked: list[bytes] = []
    failed: list[tuple[list[bytes], SluicegateError]] = []
    stop = asyncio.Event()
    async with running(KafkaLog(settings, node_id="proxied", append_timeout=5.0)) as log:
        await log.create_topic(TopicSpec(name="t", partitions=2))

        async def produce(worker: int) -> None:
            sent = 0
            while not stop.is_set():
                size = 1 if sent % 2 else 3  # singles (idempotent) and transactions
                values = [b"w%d-%d-%d" % (worker, sent, i) for i in range(size)]
                batch = [NewRecord("t", i % 2, None, v) for i, v in enumerate(values)]
                sent += 1
                try:
                    await log.append(batch)
                except SluicegateError as exc:
                    failed.append((values, exc))
                    await asyncio.sleep(0.1)
                else:
                    acked.extend(values)

        async with asyncio.TaskGroup() as tg:
            for worker in range(4):
                tg.create_task(produce(worker))
            await _faults(proxy, stall=2.0, delay=True)
            stop.set()
        # Healed: both producers take records again, without a restart.
        await log.append([NewRecord("t", 0, None, b"after-1")])
        await log.append([NewRecord("t", 0, None, b"after-2"), NewRecord("t", 1, None, b"after-3")])
        acked += [b"after-1", b"after-2", b"after-3"]
    assert acked, "nothing was acknowledged at all"
    messages = await consume_all_async(bootstrap, "proxied.t", 2)
    stored = collections.Counter(m.value() for m in messages)
    assert [v for v, n in stored.items() if n > 1] == []
    assert set(acked) <= set(stored)
    for values, error in failed:
        present = [v for v in values if v in stored]
        if isinstance(error, StorageTimeout):
            assert present in ([], values)  # outcome unknown, but whole
        else:
            assert present == [], error  # failed means not stored


async def test_events_retried_through_faults_are_stored_once(tmp_path: Path) -> None:
    # CloudEvents de-duplication under the same faults: a producer retries each event
    # until it is acknowledged, as a client does after a 408 or a 503. A retry of an
    # append whose outcome was unknown waits for it (EventIds.follow finds it out).
    async with behind_a_fault_proxy(tmp_path) as (proxy, bootstrap):
        await _retry_events_through_faults(proxy, bootstrap)


async def _retry_events_through_faults(proxy: FaultProxy, bootstrap: str) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix="retried.", request_timeout=3.0
    )
    sent: list[bytes] = []
    errors: collections.Counter[str] = collections.Counter()
    stop = asyncio.Event()
    # Stalls longer than the append timeout: some appends end with an unknown outcome.
    async with running(KafkaLog(settings, node_id="retried", append_timeout=1.5)) as log:
        await log.create_topic(TopicSpec(name="ce", partitions=2))
        ids = EventIds(log, CloudEventSettings(dedup_window=3600.0))
        await ids.load()
        follower = asyncio.create_task(ids.follow())

        async def produce(worker: int) -> None:
            request = 0
            while not stop.is_set():
                # Single events (their own lane) and batches of three, in turns.
                values = [b"w%d-%d-%d" % (worker, request, i) for i in range(request % 2 * 2 + 1)]
                items = [
                    (b"/w\x00" + value, [NewRecord("ce", i % 2, None, value)])
                    for i, value in enumerate(values)
                ]
                request += 1
                while True:
                    try:
                        if len(items) == 1:
                            key, (record,) = items[0]
                            await ids.append_one(key, record, None)
                        else:
                            await ids.append_once(items)
                    except SluicegateError as exc:
                        errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.1)
                        continue
                    break
                sent.extend(values)

        async with asyncio.TaskGroup() as tg:
            for worker in range(4):
                tg.create_task(produce(worker))
            await _faults(proxy, stall=3.0, delay=False)
            stop.set()
        follower.cancel()
        assert ids.stats()["unknown_outcome_ids"] == 0
    assert sent, "nothing was acknowledged at all"
    assert errors["StorageTimeout"], f"no outcome was unknown: the test proves nothing {errors}"
    messages = await consume_all_async(bootstrap, "retried.ce", 2)
    stored = collections.Counter(m.value() for m in messages)
    assert [v for v, n in stored.items() if n > 1] == []
    assert set(stored) == set(sent)


async def test_a_broker_stalled_while_the_state_is_read_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A node starts while another has written its state: the connection stalls in the
    # middle of the replay, the read fails within the request timeout, and the node
    # reads on from where it stopped once the broker answers again.
    monkeypatch.setattr(state_topic, "_READ_BATCH", 2)
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.5, 1.0))
    async with behind_a_fault_proxy(tmp_path) as (proxy, bootstrap):
        settings = on_kafka(
            make_settings(tmp_path, auth={"enabled": False}, kafka={"request_timeout": 2.0}),
            bootstrap,
        )
        schema = '{"type": "record", "name": "R%d", "fields": []}'
        async with running(open_log(settings)) as log:
            first = Gateway(settings, log)
            await first.start()
            for n in range(6):
                await first.schemas.register(f"subject-{n}", schema % n)
        async with running(open_log(settings)) as log:
            read = log.read
            stalled: list[asyncio.Task[None]] = []

            async def stall_in_the_replay(tp: TopicPartition, offset: int, **limits: Any) -> Any:
                if tp.topic == SCHEMAS_TOPIC and offset > 0 and not stalled:
                    proxy.stall()
                    stalled.append(asyncio.create_task(_flow_after(proxy, 10.0)))
                return await read(tp, offset, **limits)

            monkeypatch.setattr(log, "read", stall_in_the_replay)
            second = Gateway(settings, log)
            with caplog.at_level(logging.WARNING, logger="sluicegate.storage.outages"):
                await second.start()
            await stalled[0]
            assert "reading the gateway's state failed" in caplog.text
            assert second.schemas.subjects() == first.schemas.subjects()
            assert second.schemas.changes == first.schemas.changes
            # Writes are taken again once every client has seen the broker back (503
            # until then, which a client retries).
            async with asyncio.timeout(30):
                await outages.until_available(
                    lambda: second.schemas.register("after", schema % 7), "registering"
                )


async def _flow_after(proxy: FaultProxy, seconds: float) -> None:
    await asyncio.sleep(seconds)
    proxy.flow()


async def test_a_broker_stalled_past_every_timeout_ends_no_housekeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The gateway's housekeeping (``Gateway.run``: the state topics' followers, the
    # CloudEvents types' and identities', membership, the consumer reaper) meets a broker
    # that answers nothing for longer than a follower waits and than the request timeout.
    # None of it may end: the server would stop with it, where it must serve 503s and
    # take up where it stopped once the broker answers.
    monkeypatch.setattr(state_topic, "_FOLLOW_WAIT", 0.5)
    monkeypatch.setattr(event_types, "_LOOK_AGAIN", 0.5)
    monkeypatch.setattr(outages, "RETRY_DELAYS", (0.5, 1.0))
    schema = '{"type": "record", "name": "R%d", "fields": []}'
    async with behind_a_fault_proxy(tmp_path) as (proxy, bootstrap):
        settings = on_kafka(
            make_settings(tmp_path, auth={"enabled": False}, kafka={"request_timeout": 2.0}),
            bootstrap,
        )
        async with running(open_log(settings)) as log, running(open_log(settings)) as other_log:
            gateway, other = Gateway(settings, log), Gateway(settings, other_log)
            await gateway.start()
            await other.start()
            housekeeping = asyncio.create_task(gateway.run())
            try:
                await asyncio.sleep(1)
                proxy.stall()
                with caplog.at_level(logging.WARNING):
                    await asyncio.sleep(8)
                assert not housekeeping.done()
                assert "Kafka did not answer" in caplog.text
                proxy.flow()
                # The followers go on: another node's schema reaches this one.
                async with asyncio.timeout(60):
                    await outages.until_available(
                        lambda: other.schemas.register("after", schema % 1), "registering"
                    )
                    while "after" not in gateway.schemas.subjects():
                        assert not housekeeping.done()
                        await asyncio.sleep(0.1)
            finally:
                housekeeping.cancel()
                await asyncio.gather(housekeeping, return_exceptions=True)


async def test_metadata_answers_without_brokers_end_no_node(tmp_path: Path) -> None:
    # A broker starting up may answer a metadata request with no broker in it. librdkafka
    # (2.16) aborts the whole process when such an answer comes back to DescribeCluster,
    # which the node once asked as its liveness question: at start, for /readyz, and
    # every second while its cluster is reported down. Here every metadata answer hides
    # the brokers while the node is asked whether it is ready, then while it looks for
    # a cluster it lost (every connection cut): a client whose brokers were all lost
    # learns them again from such an answer, and librdkafka does not ask again by itself.
    async with behind_a_fault_proxy(tmp_path) as (proxy, bootstrap):
        port = free_port()
        log = tmp_path / "serve.log"
        process = _serve(tmp_path / "node", bootstrap, port, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                await _until(http, "/readyz", 200, 60)
                before = {"value": {"type": "text", "data": "before"}}
                assert (await http.post(WAITED, json=before)).status_code == 200
                proxy.hide_brokers = True
                answers = collections.Counter[int]()
                for seconds in (3, 6):
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        with contextlib.suppress(httpx.TransportError):
                            answers[(await http.get("/readyz")).status_code] += 1
                        assert process.poll() is None, log.read_text()
                        await asyncio.sleep(0.2)
                    proxy.cut()
                assert proxy.hidden > 0
                assert answers, "/readyz never answered"
                assert set(answers) <= {200, 503}, log.read_text()
                proxy.hide_brokers = False
                await _until(http, "/readyz", 200, 30)
                # Each client of the node learns the brokers again on its own; until the
                # producers have, "every broker down" may still turn a produce away. Then
                # a record through the idempotent producer, two in one transaction.
                await _posted(http, WAITED, {"value": {"type": "text", "data": "after"}})
                batch = {"records": [{"value": "batch-1"}, {"value": "batch-2"}]}
                await _posted(http, "/admin/v1/topics/waited/records", batch)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(process.wait, 30) == 0, log.read_text()
        finally:
            process.kill()
            process.wait()
        stored = await stored_values(bootstrap, "waited")
        assert sorted(stored) == ["after", "batch-1", "batch-2", "before"]


async def _posted(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` until it is answered 200, within 30 s; only 503s before."""
    deadline = time.monotonic() + 30
    while (answer := await http.post(path, json=body)).status_code != 200:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(float(answer.headers["retry-after"]))
