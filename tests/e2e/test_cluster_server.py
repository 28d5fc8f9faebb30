"""Three gateway nodes on one Kafka cluster behind a round-robin client: consumer
instances created on one node are polled, confirmed and deleted through the others
(forwarded), a killed node's instances answer 404 once its heartbeats time out, and the
node-to-node header is refused to a client without the cluster's secret. Consumer groups:
instances of one group created through two nodes share its partitions, and a killed
node's group is taken by another node with exactly its unconfirmed events."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sluicegate.http.forwarding import SECRET_HEADER
from sluicegate.testing.process import ServerProcess, serve_in_subprocess
from tests.helpers import eventually

ADMIN_KEY = "sg_cluster_admin_key_0123456789abcdef012345"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SECRET = "cluster-secret-for-the-tests-0123456789abcdef"
HEARTBEAT_INTERVAL = 0.5
# Short enough for the kill test to wait it out; long enough that a busy machine delaying
# a heartbeat append does not make a live node look gone in the other tests.
HEARTBEAT_TIMEOUT = 6.0
NODES = ("node-a", "node-b", "node-c")
#: Seconds between looks at the nodes' HTTP endpoints while waiting for them to agree.
POLL_INTERVAL = 0.2


def _env(kafka_bootstrap: str, prefix: str, node_id: str) -> dict[str, str]:
    return {
        "SLUICEGATE_ADMIN_KEY": ADMIN_KEY,
        "SLUICEGATE_STORAGE__BACKEND": "kafka",
        "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SLUICEGATE_KAFKA__TOPIC_PREFIX": prefix,
        "SLUICEGATE_CLUSTER__NODE_ID": node_id,
        "SLUICEGATE_CLUSTER__SECRET": SECRET,
        "SLUICEGATE_CLUSTER__HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "SLUICEGATE_CLUSTER__HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    }


@pytest.fixture
def nodes(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    """Three ``sluicegate serve`` processes sharing one topic prefix and secret; each one's
    whole log is kept beside its data (``<node>.log`` in the test's directory), for a
    node that ends when no test stopped it."""
    prefix = f"c{int(time.time() * 1000) % 10**9}."
    with ExitStack() as stack:
        started = {}
        for node_id in NODES:
            started[node_id] = stack.enter_context(
                serve_in_subprocess(
                    tmp_path / node_id,
                    args=(),
                    env=_env(kafka_bootstrap, prefix, node_id),
                    log_file=tmp_path / f"{node_id}.log",
                )
            )
        yield started


class RoundRobin:
    """Sends every request to the next node, as a load balancer without affinity does."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self._next = itertools.cycle(clients)

    def next(self) -> httpx.AsyncClient:
        return next(self._next)


@pytest.fixture
async def http(nodes: dict[str, ServerProcess]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {
        node_id: httpx.AsyncClient(base_url=server.url, timeout=30)
        for node_id, server in nodes.items()
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


async def _live(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/admin/v1/nodes", headers=ADMIN)
    assert response.status_code == 200, response.text
    return {node["node_id"] for node in response.json() if node["live"]}


async def _consumer_key(http: dict[str, httpx.AsyncClient]) -> dict[str, str]:
    """A client that may produce and consume ``Order.*``, known to every node."""
    first = http["node-a"]
    created = await first.post(
        "/admin/v1/clients",
        json={
            "name": "shop",
            "ce_sources": ["urn:shop"],
            "ce_produce_types": ["Order.*"],
            "ce_consume_types": ["Order.*"],
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    key = await first.post("/admin/v1/clients/shop/keys", json={}, headers=ADMIN)
    assert key.status_code == 201, key.text
    headers = {"authorization": f"Bearer {key.json()['key']}"}
    for node_id, client in http.items():

        async def known(client: httpx.AsyncClient = client) -> bool:
            probe = await client.get(
                "/node-a/ce/consumers/g/instances/none/events", headers=headers
            )
            return probe.status_code != 401

        await eventually(known, f"the new key works on {node_id}", interval=POLL_INTERVAL)
    return headers


def _events(*ids: str) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:shop",
            "type": "Order.Created",
            "partitionkey": event_id,
            "data": {"id": event_id},
        }
        for event_id in ids
    ]


async def _produce(client: httpx.AsyncClient, headers: dict[str, str], *ids: str) -> None:
    response = await client.post(
        "/ce/produce/events",
        json=_events(*ids),
        headers={"content-type": "application/cloudevents-batch+json", **headers},
    )
    assert response.status_code == 202, response.text


async def _create(client: httpx.AsyncClient, headers: dict[str, str], group: str) -> str:
    response = await client.post("/ce/consumers", params={"group": group}, headers=headers)
    assert response.status_code == 201, response.text
    return urlsplit(response.headers["location"]).path


async def test_round_robin_over_three_nodes(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    for client in http.values():
        await eventually(
            lambda client=client: _set_is(_live(client), set(NODES)),
            "every node sees all three",
            interval=POLL_INTERVAL,
        )
    key = await _consumer_key(http)
    balancer = RoundRobin(list(http.values()))

    produced = [f"order-{n}" for n in range(30)]
    for start in range(0, len(produced), 3):
        await _produce(balancer.next(), key, *produced[start : start + 3])

    instance = await _create(http["node-a"], key, "billing")
    assert instance.startswith("/node-a/ce/consumers/billing/instances/")

    # Polls and confirmations through B and C, in turn: every one is forwarded to A.
    others = RoundRobin([http["node-b"], http["node-c"]])
    received: list[str] = []
    while len(received) < len(produced):
        poll = await others.next().get(f"{instance}/events", params={"timeout": "5"}, headers=key)
        assert poll.status_code == 200, poll.text
        batch = poll.json()
        received += [event["id"] for event in batch]
        confirm = await others.next().post(
            f"{instance}/confirm", params={"offset": str(batch[-1]["offset"])}, headers=key
        )
        assert confirm.status_code == 204, confirm.text
    assert sorted(received) == sorted(produced)

    # The owner's long-poll timing is kept: nothing to read answers 204 after the timeout,
    # and a produce on a third node wakes a poll forwarded through a second one.
    started = time.monotonic()
    empty = await http["node-b"].get(f"{instance}/events", params={"timeout": "1.5"}, headers=key)
    assert empty.status_code == 204, empty.text
    assert time.monotonic() - started >= 1.4
    waiting = asyncio.ensure_future(
        http["node-c"].get(f"{instance}/event", params={"timeout": "20"}, headers=key)
    )
    await asyncio.sleep(0.5)
    await _produce(http["node-b"], key, "order-late")
    woken = await waiting
    assert woken.status_code == 200, woken.text
    assert woken.headers["content-type"] == "application/cloudevents+json"
    assert woken.json()["id"] == "order-late"

    # Deleted through C; gone everywhere.
    deleted = await http["node-c"].delete(instance, headers=key)
    assert deleted.status_code == 204, deleted.text
    for client in http.values():
        gone = await client.get(f"{instance}/events", params={"timeout": "0"}, headers=key)
        assert gone.status_code == 404, gone.text

    metrics = (await http["node-b"].get("/metrics")).text
    assert re.search(
        r'sluicegate_cluster_forwarded_requests_total\{node="node-a",status="200"\} [1-9]', metrics
    ), metrics
    assert 'sluicegate_cluster_forward_duration_seconds_count{node="node-a"}' in metrics


async def _set_is(live: Any, expected: set[str]) -> bool:
    return bool(await live == expected)


async def _followed(client: httpx.AsyncClient) -> float:
    """The identities a node learned from the other nodes' markers (its /metrics)."""
    metrics = (await client.get("/metrics")).text
    found = re.search(r"^sluicegate_cloudevents_dedup_followed_ids_total (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_retried_event_is_stored_once_whichever_node_it_reaches(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key = await _consumer_key(http)
    await _produce(http["node-a"], key, "dup-1", "dup-2")
    for node_id in ("node-b", "node-c"):

        async def learned(client: httpx.AsyncClient = http[node_id]) -> bool:
            return await _followed(client) >= 2

        await eventually(learned, f"{node_id} read node-a's marker", interval=POLL_INTERVAL)
    # A producer retrying through a load balancer reaches the other nodes.
    await _produce(http["node-b"], key, "dup-2", "dup-3")
    await _produce(http["node-c"], key, "dup-1")

    instance = await _create(http["node-a"], key, "audit")
    received: list[str] = []
    polls: list[tuple[int, float]] = []  # status and seconds of each poll, to tell a flake
    # Until three arrive, however long a busy machine keeps the first reads (its three
    # nodes and the broker share two cores); then one poll more finds nothing.
    deadline = time.monotonic() + 30
    while len(received) < 3 and time.monotonic() < deadline:
        started = time.monotonic()
        poll = await http["node-a"].get(f"{instance}/events", params={"timeout": "2"}, headers=key)
        polls.append((poll.status_code, round(time.monotonic() - started, 2)))
        assert poll.status_code in (200, 204), poll.text
        if poll.status_code == 200:
            received += [event["id"] for event in poll.json()]
    last = await http["node-a"].get(f"{instance}/events", params={"timeout": "2"}, headers=key)
    assert last.status_code == 204, last.text
    assert sorted(received) == ["dup-1", "dup-2", "dup-3"], polls
    metrics = (await http["node-b"].get("/metrics")).text
    assert "sluicegate_cloudevents_dedup_duplicates_skipped_total 1.0" in metrics, metrics


async def test_secret_header_from_a_client_is_refused(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    await eventually(
        lambda: _set_is(_live(http["node-b"]), set(NODES)),
        "B sees all three",
        interval=POLL_INTERVAL,
    )
    key = await _consumer_key(http)
    instance = await _create(http["node-a"], key, "audit")
    for client in (http["node-a"], http["node-b"]):
        forged = await client.get(
            f"{instance}/events",
            params={"timeout": "0"},
            headers={**key, SECRET_HEADER: "not-the-secret-0123456789abcdef0123456789"},
        )
        assert forged.status_code == 401, forged.text
        assert SECRET_HEADER in forged.json()["message"]
    # Without credentials the request is refused before anything is forwarded.
    anonymous = await http["node-b"].get(f"{instance}/events", params={"timeout": "0"})
    assert anonymous.status_code == 401, anonymous.text
    # The client's own credentials are what the owner checks: another client's key gets
    # the owner's 404 (another client's instance looks like a missing one).
    created = await http["node-a"].post(
        "/admin/v1/clients",
        json={"name": "other", "ce_consume_types": ["Order.*"]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    other_key = await http["node-a"].post("/admin/v1/clients/other/keys", json={}, headers=ADMIN)
    other = {"authorization": f"Bearer {other_key.json()['key']}"}

    async def refused_as_missing() -> bool:
        answer = await http["node-b"].get(
            f"{instance}/events", params={"timeout": "0"}, headers=other
        )
        return answer.status_code == 404

    await eventually(
        refused_as_missing, "another client's key gets 404 through B", interval=POLL_INTERVAL
    )


async def _instance_on_node_c(
    http: dict[str, httpx.AsyncClient], group: str
) -> tuple[dict[str, str], str]:
    """Once A sees every node: a consumer's key, and an instance of ``group`` on C."""
    await eventually(
        lambda: _set_is(_live(http["node-a"]), set(NODES)),
        "A sees all three",
        interval=POLL_INTERVAL,
    )
    key = await _consumer_key(http)
    instance = await _create(http["node-c"], key, group)
    assert instance.startswith("/node-c/")
    return key, instance


async def test_a_killed_node_s_instances_answer_404_after_the_heartbeat_timeout(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    key, instance = await _instance_on_node_c(http, "shipping")
    through_a = await http["node-a"].get(f"{instance}/events", params={"timeout": "0"}, headers=key)
    assert through_a.status_code == 204, through_a.text

    nodes["node-c"].kill()
    killed = time.monotonic()

    async def not_on_this_bridge() -> bool:
        answer = await http["node-a"].get(
            f"{instance}/events", params={"timeout": "0"}, headers=key
        )
        assert answer.status_code in {404, 503}, answer.text  # 503: still live, unreachable
        return answer.status_code == 404 and "not on this bridge" in answer.json()["message"]

    await eventually(
        not_on_this_bridge, "404 from A for the killed node's instance", interval=POLL_INTERVAL
    )
    assert time.monotonic() - killed < HEARTBEAT_TIMEOUT + 5
    assert await _live(http["node-a"]) == {"node-a", "node-b"}

    # A clean stop says so at once: its node is no longer listed at all.
    assert nodes["node-b"].stop() == 0
    await eventually(
        lambda: _absent(http["node-a"], "node-b"),
        "node-b's tombstone on A",
        timeout=5,
        interval=POLL_INTERVAL,
    )


async def test_a_poll_forwarded_to_a_node_that_stops_answers_at_the_heartbeat_timeout(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    # A node stopped (SIGSTOP: a long pause, a partition) keeps its connections open and
    # answers nothing; the node a poll went through answers it 503 once the stopped
    # node's heartbeats have stopped for the timeout, not when (if ever) it wakes.
    key, instance = await _instance_on_node_c(http, "stalled")
    os.kill(nodes["node-c"].pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        poll = await http["node-a"].get(
            f"{instance}/events", params={"timeout": "60"}, headers=key, timeout=90
        )
        waited = time.monotonic() - stopped
        assert poll.status_code == 503, poll.text
        assert "'node-c' stopped answering" in poll.json()["message"]
        assert waited < HEARTBEAT_TIMEOUT + 5
    finally:
        os.kill(nodes["node-c"].pid, signal.SIGCONT)


async def _absent(client: httpx.AsyncClient, node_id: str) -> bool:
    listed = await client.get("/admin/v1/nodes", headers=ADMIN)
    return node_id not in {node["node_id"] for node in listed.json()}


async def _poll_all(
    client: httpx.AsyncClient, instance: str, key: dict[str, str], timeout: str = "1"
) -> list[dict[str, Any]]:
    poll = await client.get(f"{instance}/events", params={"timeout": timeout}, headers=key)
    assert poll.status_code in {200, 204}, poll.text
    return list(poll.json()) if poll.status_code == 200 else []


async def test_instances_of_one_group_created_through_two_nodes_share_its_partitions(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    for client in http.values():
        await eventually(
            lambda client=client: _set_is(_live(client), set(NODES)),
            "every node sees all three",
            interval=POLL_INTERVAL,
        )
    key = await _consumer_key(http)
    produced = [f"order-{n}" for n in range(48)]
    balancer = RoundRobin(list(http.values()))
    for start in range(0, len(produced), 4):
        await _produce(balancer.next(), key, *produced[start : start + 4])

    # Created through A and through B: one group, so one node serves both instances, and
    # the instance URL handed out by B is on B's address (the client's way in).
    created = {}
    for node_id in ("node-a", "node-b"):
        response = await http[node_id].post(
            "/ce/consumers", params={"group": "shared"}, headers=key
        )
        assert response.status_code == 201, response.text
        location = urlsplit(response.headers["location"])
        assert location.netloc == urlsplit(nodes[node_id].url).netloc
        created[node_id] = location.path
    bridges = {path.split("/")[1] for path in created.values()}
    assert len(bridges) == 1, created

    # Each event goes to exactly one of them: they share the topic's partitions.
    received: dict[str, list[str]] = {node_id: [] for node_id in created}
    deadline = time.monotonic() + 60
    while sum(map(len, received.values())) < len(produced) and time.monotonic() < deadline:
        for node_id, instance in created.items():
            batch = await _poll_all(balancer.next(), instance, key)
            received[node_id] += [event["id"] for event in batch]
            if batch:
                confirm = await balancer.next().post(
                    f"{instance}/confirm", params={"offset": str(batch[-1]["offset"])}, headers=key
                )
                assert confirm.status_code == 204, confirm.text
    everything = received["node-a"] + received["node-b"]
    assert sorted(everything) == sorted(produced)  # each once: none twice, none lost
    assert received["node-a"], received
    assert received["node-b"], received


async def test_a_killed_node_s_unconfirmed_events_go_to_an_instance_made_through_another(
    nodes: dict[str, ServerProcess], http: dict[str, httpx.AsyncClient]
) -> None:
    for client in http.values():
        await eventually(
            lambda client=client: _set_is(_live(client), set(NODES)),
            "every node sees all three",
            interval=POLL_INTERVAL,
        )
    key = await _consumer_key(http)
    produced = [f"order-{n}" for n in range(24)]
    await _produce(http["node-a"], key, *produced[:12])
    await _produce(http["node-b"], key, *produced[12:])

    # C serves the group (it got the group's first instance), read through A and B.
    instance = await _create(http["node-c"], key, "recovery")
    assert instance.startswith("/node-c/")
    delivered: list[dict[str, Any]] = []
    readers = RoundRobin([http["node-a"], http["node-b"]])
    deadline = time.monotonic() + 30
    while len(delivered) < len(produced) and time.monotonic() < deadline:
        delivered += await _poll_all(readers.next(), instance, key)
    assert sorted(event["id"] for event in delivered) == sorted(produced)
    # Half confirmed (a prefix of the delivery sequence), half read but not confirmed.
    confirm = await http["node-a"].post(
        f"{instance}/confirm", params={"offset": str(delivered[11]["offset"])}, headers=key
    )
    assert confirm.status_code == 204, confirm.text
    confirmed = {event["id"] for event in delivered[:12]}
    unconfirmed = {event["id"] for event in delivered[12:]}

    nodes["node-c"].kill()
    await eventually(
        lambda: _set_is(_live(http["node-b"]), {"node-a", "node-b"}),
        "B sees C gone",
        timeout=HEARTBEAT_TIMEOUT + 10,
        interval=POLL_INTERVAL,
    )

    # The next instance of the group, created through B, takes the group from its
    # committed positions: exactly the unconfirmed events again, never a confirmed one.
    again = await _create(http["node-b"], key, "recovery")
    assert again.startswith("/node-b/"), again
    redelivered: list[str] = []
    deadline = time.monotonic() + 30
    while len(redelivered) < len(unconfirmed) and time.monotonic() < deadline:
        redelivered += [event["id"] for event in await _poll_all(readers.next(), again, key)]
    assert sorted(redelivered) == sorted(unconfirmed)
    assert not confirmed & set(redelivered)
    assert await _poll_all(http["node-a"], again, key, timeout="1.5") == []
    # The killed node's instance is gone for good.
    gone = await http["node-a"].get(f"{instance}/events", params={"timeout": "0"}, headers=key)
    assert gone.status_code == 404, gone.text
