"""A confirmed stream consumed over WebSocket while producers run and connections are cut
at random points, on both backends: no event is lost, and no event the gateway committed
as confirmed is ever delivered again.

"Confirmed" is judged by the gateway's durable state, not by what the client sent: a
``confirm:`` still on the wire when its connection is cut may never arrive, and its
events are then rightly delivered again. After each cut the test reads the group's
committed positions; every event below them must never come back.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from sluicegate.config import Settings
from sluicegate.core.gateway import Gateway
from sluicegate.dialects.cloudevents.websocket import SUBPROTOCOL
from tests.conftest import make_settings
from tests.dialects.cloudevents.conftest import CONSUMER, PRODUCER, key_for, stored
from tests.dialects.cloudevents.ws_support import GatewayServer, ended, event, produce

EVENTS = 5000
CUTS = 20
TOPIC = "ce.Order.Created"
GROUP = "chaos"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, cloudevents={"websocket_window": 500})


async def producing(served: GatewayServer, auth: dict[str, str], rng: random.Random) -> None:
    sent = 0
    while sent < EVENTS:
        size = min(rng.randint(1, 100), EVENTS - sent)
        await produce(served.http, auth, [event(f"p{n}") for n in range(sent, sent + size)])
        sent += size
        await asyncio.sleep(rng.random() * 0.01)


@pytest.mark.timeout(900)  # 21 group joins and 5,000 events on a Kafka broker
async def test_random_cuts_lose_nothing_and_repeat_nothing_confirmed(
    served: GatewayServer, gateway: Gateway
) -> None:
    seed = random.randrange(1 << 32)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    producer = await key_for(gateway, "shop", PRODUCER)
    consumer = await key_for(gateway, "billing", CONSUMER)
    url = f"{served.ws}?group={GROUP}&test=false"
    #: (session, event id) of every delivery, and the committed positions after each cut.
    deliveries: list[tuple[int, str]] = []
    committed_after: list[dict[int, int]] = []
    async with asyncio.TaskGroup() as tg:
        producers = tg.create_task(producing(served, producer, rng))
        for session in range(CUTS):
            async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=consumer) as ws:
                last = 0
                for _ in range(rng.randint(1, 600)):
                    try:
                        async with asyncio.timeout(2):
                            message = json.loads(await ws.recv())
                    except TimeoutError:
                        break  # caught up with the producers
                    deliveries.append((session, message["id"]))
                    last = int(message["offset"])
                    if rng.random() < 0.02:
                        await ws.send(f"confirm:{last}")
                if last and rng.random() < 0.5:
                    await ws.send(f"confirm:{rng.randint(1, last)}")
                ws.transport.abort()  # a cut: no close frame, maybe a confirm in flight
            await ended(served)
            committed_after.append(
                await gateway.log.committed_offsets(f"ce/billing/{GROUP}", TOPIC)
            )
        await producers
    # The last connection reads the rest and confirms everything.
    seen = {event_id for _, event_id in deliveries}
    async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=consumer) as ws:
        last = 0
        async with asyncio.timeout(180):
            while True:
                try:
                    async with asyncio.timeout(5):
                        message = json.loads(await ws.recv())
                except TimeoutError:
                    if len(seen) < EVENTS:
                        continue
                    break  # every event seen, and the redeliveries of unconfirmed ones
                deliveries.append((CUTS, message["id"]))
                seen.add(message["id"])
                last = int(message["offset"])
                if not last % 100:
                    await ws.send(f"confirm:{last}")  # the window is 500
        if last:
            await ws.send(f"confirm:{last}")
    await ended(served)

    position = {
        dict(record.headers)["ce_id"].decode(): (record.partition, record.offset)
        for record in await stored(gateway, TOPIC)
    }
    assert len(position) == EVENTS
    assert {event_id for _, event_id in deliveries} == set(position), "an event was lost"
    for cut, committed in enumerate(committed_after):
        again = [
            event_id
            for session, event_id in deliveries
            if session > cut and position[event_id][1] < committed.get(position[event_id][0], 0)
        ]
        assert again == [], f"committed before cut {cut}, delivered after it (seed {seed})"
    # Everything confirmed at the end: each partition committed past its last event (on
    # Kafka, transaction markers take offsets too: positions are no count of events).
    ends: dict[int, int] = {}
    for partition, offset in position.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    final = await gateway.log.committed_offsets(f"ce/billing/{GROUP}", TOPIC)
    assert all(final.get(partition, 0) >= end for partition, end in ends.items()), final
