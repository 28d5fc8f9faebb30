"""Topics v1 developer API: Workato's topic admin under ``/api/event_streams/topics``.

Answers are wrapped as ``{"data": ...}``, as Workato's developer API wraps them. Every
route needs admin on the topic, except the list, which shows the topics on which the
client holds any permission: a producer or consumer finds there the id the public API
addresses its topic by. An id is resolved before the permission is checked, so an
unknown id is a 404 for every authenticated client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import msgspec

from sluicegate.core.auth.principals import Principal
from sluicegate.core.gateway import Gateway
from sluicegate.core.schema_topics import SchemaTopics
from sluicegate.core.schemas.workato import parse_value_schema
from sluicegate.core.topics import Topic, TopicSpec, validate_topic_name
from sluicegate.dialects.topics_v1.developer_listing import parse_list_query
from sluicegate.dialects.topics_v1.developer_wire import (
    TopicCreate,
    TopicUpdateIn,
    check_description,
    decode,
    retention_ms,
    topic_out,
)
from sluicegate.dialects.topics_v1.errors import render_error
from sluicegate.errors import BadRequest, UnsupportedMediaType
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["routes"]

_TOPIC_ID = re.compile(r"[1-9][0-9]{0,18}")
_SUCCESS = {"data": {"success": True}}

T = TypeVar("T")
R = TypeVar("R")


def _topic_id(request: Request) -> int:
    raw = request.path_params["topic_id"]
    if _TOPIC_ID.fullmatch(raw) is None:
        raise BadRequest(
            f"topic_id: expected a topic's positive integer id, got {raw[:40]!r}",
            field="topic_id",
        )
    return int(raw)


def _unless_unset(value: T | msgspec.UnsetType, check: Callable[[T], R]) -> R | msgspec.UnsetType:
    """``check(value)``, or UNSET for a field the request left out."""
    return value if isinstance(value, msgspec.UnsetType) else check(value)


async def _json_body(request: Request) -> bytes:
    """The body of a create or update: JSON, by Content-Type or in its absence."""
    if request.media_type not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"unsupported Content-Type {request.media_type!r}: expected application/json"
        )
    return await request.body(json=True)


def _visible(principal: Principal | None, topics: list[Topic]) -> list[Topic]:
    """The topics on which ``principal`` holds any permission."""
    if principal is None:
        return []
    if principal.is_admin:
        return topics
    allows = principal.allows
    return [
        t
        for t in topics
        if allows("admin", t.name) or allows("produce", t.name) or allows("consume", t.name)
    ]


class DeveloperApi:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._topics = SchemaTopics(gateway.topics, gateway.schemas)

    async def _administered(self, request: Request) -> Topic:
        """The topic of the path, if the client administers it."""
        topic = await self._topics.topic(_topic_id(request))
        self._gateway.authorize(request.principal, "admin", topic.name)
        return topic

    async def list_topics(self, request: Request) -> Response:
        query = parse_list_query(request)
        visible = _visible(request.principal, await self._topics.list())
        count, page = query.select(visible)
        describe = self._topics.describe
        data = [topic_out(describe(t), with_schema=query.include_schema) for t in page]
        return json_response(
            {"data": data, "count": count, "page": query.page, "per_page": query.per_page}
        )

    async def create(self, request: Request) -> Response:
        body = decode(await _json_body(request), TopicCreate)
        validate_topic_name(body.name)
        self._gateway.authorize(request.principal, "admin", body.name)
        spec = TopicSpec(
            name=body.name, partitions=body.partitions, retention_ms=retention_ms(body.retention)
        )
        described = await self._topics.create(
            spec, check_description(body.description), parse_value_schema(body.schema)
        )
        return json_response({"data": topic_out(described)})

    async def get(self, request: Request) -> Response:
        topic = await self._administered(request)
        return json_response({"data": topic_out(self._topics.describe(topic))})

    async def update(self, request: Request) -> Response:
        topic = await self._administered(request)
        body = decode(await _json_body(request), TopicUpdateIn)
        if not isinstance(body.name, msgspec.UnsetType) and body.name != topic.name:
            raise BadRequest(
                f"name: topic {topic.name!r} cannot be renamed to {body.name!r}: a topic's "
                "name is its Kafka topic name; create a new topic instead",
                field="name",
            )
        described = await self._topics.update(
            topic,
            retention_ms=_unless_unset(body.retention, retention_ms),
            description=_unless_unset(body.description, check_description),
            schema=_unless_unset(body.schema, parse_value_schema),
            partitions=body.partitions,
        )
        return json_response({"data": topic_out(described)})

    async def purge(self, request: Request) -> Response:
        await self._topics.purge(await self._administered(request))
        return json_response(_SUCCESS)

    async def delete(self, request: Request) -> Response:
        await self._topics.delete(await self._administered(request))
        return json_response(_SUCCESS)


def routes(gateway: Gateway) -> list[Route]:
    """The developer API's routes."""
    api = DeveloperApi(gateway)
    topics, one = "/api/event_streams/topics", "/api/event_streams/topics/{topic_id}"
    table = [
        (topics, "GET", api.list_topics),
        (topics, "POST", api.create),
        (one, "GET", api.get),
        (one, "PUT", api.update),
        (one, "DELETE", api.delete),
        (f"{one}/purge", "PUT", api.purge),
    ]
    return [
        Route(path, endpoint, frozenset({method}), render_error=render_error, dialect="topics_v1")
        for path, method, endpoint in table
    ]
