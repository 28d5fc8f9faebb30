"""``GET /admin/v1/consumers``: the CloudEvents consumer instances live on this node.

One row per instance: its client, storage group (as ``/admin/v1/groups`` names it), the
node holding it, how its client reads (long poll, WebSocket, Server-Sent Events), its
age, its unconfirmed deliveries and how long it has been idle. Topics-v1 consumers keep
no instance (their cursor travels with each request), so they are never listed.

Cost: the registry's instances are copied, filtered by ``?group=`` if given, and
sorted per request; only the rows of the page are rendered, each counting its
unconfirmed deliveries over its few partitions. With 1,000 instances a page of 100 takes
about 4 ms of CPU on a busy machine (``python -m bench.run --only console-ops``). Paginated
by (client, group, id) like the other admin lists. Needs the admin permission on ``*``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import msgspec

from sluicegate.core.consumers.instance import ConsumerInstance
from sluicegate.core.consumers.registry import ConsumerInstances
from sluicegate.dialects.admin.access import require_admin
from sluicegate.http.pagination import page_request, paginate
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Route

__all__ = ["ConsumerInstanceOut", "routes"]


class ConsumerInstanceOut(msgspec.Struct, frozen=True, kw_only=True):
    """A CloudEvents consumer instance of this node."""

    #: The instance id (the ``{instance}`` of its URLs); only its client may use it.
    id: str
    client: str
    #: The storage group: ``ce/<client>/<group>``, as ``/admin/v1/groups`` names it.
    group: str
    #: The node holding it (the ``{bridge}`` of its URLs).
    node: str
    #: ``long_poll``, ``websocket`` or ``sse``.
    kind: str
    #: Seconds since it was created.
    age: float
    #: Deliveries handed out so far, and those not confirmed yet.
    delivered: int
    unconfirmed: int
    #: Seconds since its last request began; 0 while it serves one (a long poll
    #: waiting, a stream connected).
    idle: float
    #: Partitions assigned to it at its last read.
    partitions: int


#: (client, group, id): read in C, not by a Python function per instance.
_sort_key: Callable[[ConsumerInstance], tuple[str, str, str]] = attrgetter(
    "owner", "group.name", "id"
)


class ConsumersAdmin:
    """The endpoint over one node's instance registry."""

    def __init__(
        self, instances: ConsumerInstances, node_id: str, monotonic: Callable[[], float]
    ) -> None:
        self._instances = instances
        self._node_id = node_id
        self._monotonic = monotonic

    def _out(self, instance: ConsumerInstance, now: float) -> ConsumerInstanceOut:
        return ConsumerInstanceOut(
            id=instance.id,
            client=instance.owner,
            group=instance.group.name,
            node=self._node_id,
            kind=instance.kind,
            age=round(max(0.0, now - instance.created), 3),
            delivered=instance.delivered,
            unconfirmed=instance.unconfirmed,
            idle=0.0 if instance.busy else round(max(0.0, now - instance.last_used), 3),
            partitions=len(instance.partitions),
        )

    async def list_instances(self, request: Request) -> Response:
        """Instances by client, group and id, a page at a time; ``?group=`` keeps one
        storage group's."""
        require_admin(request)
        wanted = page_request(request, tuple[str, str, str])
        group = request.query_param("group")
        live = self._instances.live()
        if group:
            live = [instance for instance in live if instance.group.name == group]
        page = paginate(sorted(live, key=_sort_key), _sort_key, wanted)
        now = self._monotonic()
        return page.response(request, lambda instance: self._out(instance, now))


def routes(instances: ConsumerInstances, node_id: str) -> list[Route]:
    """The consumer instances admin route."""
    admin = ConsumersAdmin(instances, node_id, instances.monotonic)
    return [Route("/admin/v1/consumers", admin.list_instances, frozenset({"GET"}), dialect="admin")]
