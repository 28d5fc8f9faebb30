"""``/admin/v1/groups``: the consumer groups this node knows, with their lag and health.

The same figures as ``/metrics`` (``core/consumers/lag.py``, one snapshot at most every
few seconds), without its label cap: the list is paginated by group name instead, and
``/admin/v1/groups/{group}`` adds each partition's committed position, high watermark,
lag and oldest unconfirmed age. A group is named by its storage name
(``ce/<client>/<group>`` for a CloudEvents consumer group), ``/`` included. Every endpoint
needs the admin permission on ``*``.
"""

from __future__ import annotations

import msgspec

from sluicegate.core.consumers.lag import GroupFigures, GroupLag, PartitionLag
from sluicegate.dialects.admin.access import require_admin
from sluicegate.errors import NotFound
from sluicegate.http.pagination import page_request, paginate
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["GroupDetailOut", "GroupOut", "PartitionOut", "routes"]


class GroupOut(msgspec.Struct, frozen=True, kw_only=True):
    """A consumer group's figures (counters since this node started)."""

    #: The storage group: ``ce/<client>/<group>`` for a CloudEvents consumer group.
    group: str
    #: Live consumer instances on this node.
    instances: int
    #: Deliveries after which an unconfirmed event is dead-lettered (0: off).
    max_deliveries: int
    #: Events not confirmed yet, over every partition read, and per topic.
    lag: int
    lag_by_topic: dict[str, int]
    #: Seconds since the oldest unconfirmed event was stored (0 without lag).
    oldest_unconfirmed_age: float
    deliveries: int
    redeliveries: int
    dead_letters: int


class PartitionOut(msgspec.Struct, frozen=True, kw_only=True):
    topic: str
    partition: int
    committed: int
    high_watermark: int
    lag: int
    oldest_unconfirmed_age: float


class GroupDetailOut(GroupOut, frozen=True, kw_only=True):
    partitions: list[PartitionOut]


def _out(figures: GroupFigures) -> GroupOut:
    return GroupOut(
        group=figures.group,
        instances=figures.instances,
        max_deliveries=figures.max_deliveries,
        lag=figures.lag,
        lag_by_topic=figures.lag_by_topic,
        oldest_unconfirmed_age=figures.oldest_unconfirmed_age,
        deliveries=figures.deliveries,
        redeliveries=figures.redeliveries,
        dead_letters=figures.dead_letters,
    )


def _partition(p: PartitionLag) -> PartitionOut:
    return PartitionOut(
        topic=p.topic,
        partition=p.partition,
        committed=p.committed,
        high_watermark=p.high,
        lag=p.lag,
        oldest_unconfirmed_age=p.oldest_unconfirmed_age,
    )


class GroupsAdmin:
    """The endpoints over the gateway's group figures."""

    def __init__(self, lag: GroupLag) -> None:
        self._lag = lag

    async def list_groups(self, request: Request) -> Response:
        """Groups by name, a page at a time."""
        require_admin(request)
        wanted = page_request(request, tuple[str])
        groups = sorted((await self._lag.refresh()).values(), key=lambda f: f.group)
        page = paginate(groups, lambda figures: (figures.group,), wanted)
        return page.response(request, _out)

    async def show_group(self, request: Request) -> Response:
        require_admin(request)
        name = request.path_params["group"]
        figures = (await self._lag.refresh()).get(name)
        if figures is None:
            raise NotFound(
                f"no consumer group {name[:200]!r} on this node: groups are listed while "
                "they have consumers here, and for a while after",
                group=name[:200],
            )
        out = _out(figures)
        detail = GroupDetailOut(
            **msgspec.structs.asdict(out), partitions=[_partition(p) for p in figures.partitions]
        )
        return json_response(detail)


def routes(lag: GroupLag) -> list[Route]:
    """The consumer groups admin routes."""
    admin = GroupsAdmin(lag)
    get = frozenset({"GET"})
    return [
        Route("/admin/v1/groups", admin.list_groups, get, dialect="admin"),
        Route("/admin/v1/groups/{group:path}", admin.show_group, get, dialect="admin"),
    ]
