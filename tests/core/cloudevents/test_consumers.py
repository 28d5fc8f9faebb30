"""CloudEvents consumer instances on every backend: types found as they are first produced,
filtered by type within a shared topic, the client's own test and dead streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluicegate.config import Settings
from sluicegate.core.auth.principals import Permissions, Principal
from sluicegate.core.cloudevents.binding import to_record
from sluicegate.core.cloudevents.consumers import (
    EventSubscription,
    check_group_name,
    follow_types,
    storage_group,
)
from sluicegate.core.cloudevents.event import CloudEvent
from sluicegate.core.cloudevents.streams import dead_topic, test_topic
from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.gateway import Gateway
from sluicegate.core.records import NewRecord, Record
from sluicegate.errors import BadRequest
from tests.conftest import BACKENDS, make_settings


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    routes = [{"types": ["Order.Created", "Order.Refused"], "topic": "orders"}]
    return make_settings(
        tmp_path, auth={"enabled": False}, cloudevents={"routes": routes, "partitions": 2}
    )


@pytest.fixture
async def following(gateway: Gateway) -> AsyncIterator[None]:
    """The housekeeping that tells instances of new types, as ``Gateway.run`` does."""
    task = asyncio.ensure_future(follow_types(gateway.type_registry, gateway.consumers))
    yield
    task.cancel()


def consumer(*types: str) -> Principal:
    return Principal("shop", Permissions(ce_consume_types=list(types)))


async def never() -> None:
    await asyncio.Event().wait()


async def produce(gateway: Gateway, event_type: str, event_id: str) -> None:
    """Store an event as the producer does: type registered first, then the event."""
    topic_name = gateway.event_types.topic_for(event_type)
    topic = await gateway.event_topics.get(topic_name)
    await gateway.type_registry.register([(event_type, topic.name)])
    event = CloudEvent(id=event_id, source="urn:test", type=event_type, data=b"{}")
    record = to_record(event, topic.name, partition=0)
    await gateway.log.append([record])


def subscribe(gateway: Gateway, principal: Principal, **flags: bool) -> EventSubscription:
    options = {"events": True, "test": True, "dead": False, **flags}
    return EventSubscription(principal, gateway.type_registry, gateway.event_topics, **options)


async def create(gateway: Gateway, principal: Principal, **flags: bool) -> ConsumerInstance:
    return await gateway.consumers.create(
        principal.name,
        storage_group(principal.name, "~default"),
        subscribe(gateway, principal, **flags),
    )


def ids(records: list[Record]) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for r in records]


async def test_a_type_first_produced_after_the_consumer_was_created_is_delivered(
    gateway: Gateway, following: None
) -> None:
    instance = await create(gateway, consumer("Invoice.*"))
    assert instance.topics == {test_topic("shop")}
    polling = asyncio.ensure_future(instance.next_batch(10, 30, never))
    await asyncio.sleep(0.05)
    await produce(gateway, "Invoice.Sent", "1")
    batch = await asyncio.wait_for(polling, 10)
    assert ids(batch.records) == ["1"]
    assert instance.topics == {test_topic("shop"), "ce.Invoice.Sent"}


async def test_a_shared_topic_delivers_only_the_types_the_client_consumes(
    gateway: Gateway,
) -> None:
    await produce(gateway, "Order.Created", "created")
    await produce(gateway, "Order.Refused", "refused")
    # A record in the same topic that is no CloudEvent (another API wrote it).
    await gateway.log.append([NewRecord("orders", 0, None, b"plain")])
    await produce(gateway, "Order.Created", "created-again")
    instance = await create(gateway, consumer("Order.Created"))
    batch = await instance.next_batch(10, 0, never)
    assert ids(batch.records) == ["created", "created-again"]


async def test_test_and_dead_streams_are_the_clients_own(gateway: Gateway) -> None:
    for topic, event_id in [(test_topic("shop"), "t"), (dead_topic("shop"), "d")]:
        stream = await gateway.event_topics.stream(topic)
        event = CloudEvent(id=event_id, source="urn:test", type="Anything", data=b"{}")
        await gateway.log.append([to_record(event, stream.name)])
    only_test = await create(gateway, consumer("Order.*"))
    assert ids((await only_test.next_batch(10, 0, never)).records) == ["t"]
    # Another group of the same client gets them again, with its own position.
    subscription = subscribe(gateway, consumer("Order.*"), events=False, test=False, dead=True)
    audit = await gateway.consumers.create("shop", storage_group("shop", "audit"), subscription)
    assert ids((await audit.next_batch(10, 0, never)).records) == ["d"]


async def test_a_change_of_the_clients_types_takes_effect_on_its_instances(
    gateway: Gateway,
) -> None:
    await produce(gateway, "Order.Created", "order")
    await produce(gateway, "Invoice.Sent", "invoice")
    before = consumer("Order.*")
    subscription = EventSubscription(
        before, gateway.type_registry, gateway.event_topics, events=True, test=False, dead=False
    )
    instance = await gateway.consumers.create("shop", storage_group("shop", "g"), subscription)
    assert not subscription.follows(consumer("Order.*"))
    assert subscription.follows(consumer("Order.*", "Invoice.*"))
    instance.resubscribe()
    batch = await instance.next_batch(10, 0, never)
    assert sorted(ids(batch.records)) == ["invoice", "order"]


def test_group_names_are_checked() -> None:
    for good in ["~default", "billing", "a.b_c-d@e:f+g", "x" * 128]:
        assert check_group_name(good) == good
    for bad in ["", ".hidden", "a/b", "a b", "x" * 129, "é"]:
        with pytest.raises(BadRequest, match="invalid consumer group name"):
            check_group_name(bad)
    assert storage_group("shop", "~default") == "ce/shop/~default"


def test_the_filter_takes_a_chunk_of_consumed_types_whole_and_judges_any_other_by_record(
    gateway: Gateway,
) -> None:
    accept = subscribe(gateway, consumer("Order.*"), test=False).filter("orders")
    assert accept is not None

    def stored(offset: int, event_type: str, event_id: str) -> Record:
        event = CloudEvent(id=event_id, source="urn:test", type=event_type, data=b"{}")
        new = to_record(event, "orders")
        return Record("orders", 0, offset, 1, new.key, new.value, new.headers)

    created = [stored(n, "Order.Created", f"c{n}") for n in range(3)]
    refunded = stored(3, "Order.Refunded", "r")
    chunk = [*created, refunded]
    taken = accept(chunk)
    assert ids(taken) == ["c0", "c1", "c2", "r"]
    assert taken is not chunk  # the caller cuts what it gets: never the chunk it read
    # One type throughout (told without a set), and nothing.
    assert ids(accept(created)) == ["c0", "c1", "c2"]
    assert accept(created) is not created
    assert accept([]) == []
    refused = [stored(n, "Invoice.Sent", f"i{n}") for n in range(2)]
    assert accept(refused) == []
    other = stored(4, "Invoice.Sent", "i")
    plain = Record("orders", 0, 5, 1, None, b"plain", ())
    # ce_type not fourth: found by the scan.
    moved = Record("orders", 0, 6, 1, None, b"{}", (("ce_id", b"m"), ("ce_type", b"Order.X")))
    assert ids(accept([created[0], other, plain, moved, created[1]])) == ["c0", "m", "c1"]


async def test_an_event_written_in_structured_mode_is_delivered_as_the_gateway_stores_one(
    gateway: Gateway,
) -> None:
    # The Kafka binding lets a producer write an event in structured mode (the JSON format
    # as the value, told by the content-type header); any Kafka client may write to the
    # type's topic. Delivered, whole, as any other event of the type.
    await produce(gateway, "Order.Created", "binary")
    structured = (
        b'{"specversion": "1.0", "id": "structured", "source": "urn:kafka", '
        b'"type": "Order.Created", "time": "2025-01-31T12:00:00Z", "region": "eu", '
        b'"datacontenttype": "application/json", "data": {"n": 1}}'
    )
    content_type = ("content-type", b"application/cloudevents+json; charset=UTF-8")
    wrong_type = structured.replace(b"Order.Created", b"Order.Refused")
    await gateway.log.append(
        [
            NewRecord("orders", 0, b"k-1", structured, (content_type,)),
            NewRecord("orders", 0, None, wrong_type, (content_type,)),
            NewRecord("orders", 0, None, b'{"id": "no event"}', (content_type,)),
            NewRecord("orders", 0, None, structured, (("content-type", b"application/json"),)),
        ]
    )
    instance = await create(gateway, consumer("Order.Created"), test=False)
    batch = await instance.next_batch(10, 0, never)
    assert ids(batch.records) == ["binary", "structured"]
    event = batch.records[1]
    headers = dict(event.headers)
    assert (headers["ce_source"], headers["ce_region"]) == (b"urn:kafka", b"eu")
    assert (headers["content-type"], event.value) == (b"application/json", b'{"n": 1}')
    assert (event.key, event.offset) == (b"k-1", batch.records[0].offset + 1)
