"""``GET /admin/v1/nodes``: the gateway nodes sharing this log, as this node knows them.
Needs the admin permission on ``*``."""

from __future__ import annotations

import msgspec

from sluicegate.core.membership import Membership, Node
from sluicegate.core.records import format_timestamp
from sluicegate.dialects.admin.access import require_admin
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["NodeOut", "routes"]


class NodeOut(msgspec.Struct, frozen=True):
    """A gateway node: where it is, whether it is alive, what it holds."""

    #: Its id: the ``{bridge}`` of the CloudEvents consumer URLs it hands out.
    node_id: str
    #: The base URL the other nodes forward its consumers' requests to.
    url: str
    started_at: str
    #: Seconds since its last heartbeat was written (0 for the node answering).
    heartbeat_age: float
    #: Whether its last heartbeat is younger than ``cluster.heartbeat_timeout``.
    live: bool
    #: Its CloudEvents consumer instances (long polling and streaming) and its WebSocket
    #: streams, as of its last heartbeat.
    instances: int
    streams: int
    #: Whether this is the node that answered.
    this_node: bool


def _out(node: Node) -> NodeOut:
    return NodeOut(
        node_id=node.node_id,
        url=node.url,
        started_at=format_timestamp(round(node.started_at * 1_000_000)),
        heartbeat_age=node.heartbeat_age,
        live=node.live,
        instances=node.instances,
        streams=node.streams,
        this_node=node.this_node,
    )


def routes(membership: Membership) -> list[Route]:
    """The nodes admin route."""

    async def list_nodes(request: Request) -> Response:
        require_admin(request)
        return json_response([_out(node) for node in membership.nodes()])

    return [Route("/admin/v1/nodes", list_nodes, frozenset({"GET"}), dialect="admin")]
