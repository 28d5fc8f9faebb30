"""What the topic routes take from a request: the topic it reads, and integer query
parameters (both ``routes.py`` and ``watch.py`` read records the same way)."""

from __future__ import annotations

from sluicegate.core.gateway import Gateway
from sluicegate.core.topics import Topic
from sluicegate.errors import BadRequest
from sluicegate.http.request import Request

__all__ = ["int_param", "topic_to_read"]


async def topic_to_read(gateway: Gateway, request: Request) -> Topic:
    """The topic named in the path, once the principal may consume from it (checked
    first, so that a topic one may not read is not even said to exist)."""
    name = request.path_params["name"]
    gateway.authorize(request.principal, "consume", name)
    return await gateway.topics.get(name)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name``, from ``low`` to ``high``; ``default`` when absent. A 400
    names the parameter, and echoes at most 40 characters of a value that is no integer."""
    raw = request.query_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"query parameter {name} must be an integer, got {raw[:40]!r}", field=name
        ) from None
    if not low <= value <= high:
        raise BadRequest(
            f"query parameter {name} must be from {low} to {high}, got {value}", field=name
        )
    return value
