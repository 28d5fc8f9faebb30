"""Requests for a consumer instance held by another node, sent on to that node.

A CloudEvents consumer instance lives in the memory of the node that created it, and its
URL names that node (``/{bridge}/ce/consumers/…``). Behind a round-robin load balancer its
requests reach any node; a node that is not the instance's sends the request on to the
``{bridge}`` node's advertised URL and hands back its answer: status, headers and body as
they came, after as long as the owner took (a long poll waits there, not here). A client
cannot tell which node it reached.

Node to node, the request carries ``X-Sluicegate-Node-Secret`` (``cluster.secret``). The
receiving node checks it (``Forwarder.received``) only to know that the request was
forwarded once already, so that it is never sent on again; it grants nothing. The
client's own credentials (``Authorization``) travel unchanged and are checked on both
nodes as on any request, so the header cannot be used to get past authentication, and
a header with a wrong secret is refused (401) rather than ignored. A client that
authenticates with a TLS certificate cannot be forwarded (the certificate stays with the
TLS connection it came on): its request for another node's instance answers 404.

A ``{bridge}`` that names no live node is not forwarded: the endpoint answers 404 "not on
this bridge", as it always did. A live node that cannot be reached answers 503 with
``Retry-After``: its heartbeats say it is there, so trying again may work. A node that
goes silent while it holds a forwarded request (stopped, cut off: its heartbeats stop
for ``cluster.heartbeat_timeout``) does not hold it longer: the request answers 503 then,
its outcome unknown, and the next one finds the node gone.

Consumer groups are placed the same way (``Forwarder.place``): ``POST /ce/consumers`` for a
group whose shard another live node holds (``core/group_shards.py``) is sent to that node,
whose answer names its own bridge in the instance URL, so the instance's later requests
are forwarded as above. A group whose shard no live node holds is claimed by the node the
request reached.

The request body is sent on as it arrives; the answer is read whole and then answered,
since the app sends every response in one message. What is read is bounded: a consumer
route answers one batch at most (``cloudevents.batch_bytes`` of data).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Callable

import httpx

from sluicegate.config import Settings
from sluicegate.core.group_shards import GroupShards
from sluicegate.core.membership import Membership
from sluicegate.errors import Unauthenticated, Unavailable, UnknownConsumerInstance
from sluicegate.http.request import ClientDisconnected, Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Endpoint
from sluicegate.http.tls import peer_certificate
from sluicegate.observability.metrics import RequestSeries

__all__ = ["SECRET_HEADER", "Forwarder", "node_unreachable"]

SECRET_HEADER = "x-sluicegate-node-secret"
_SECRET_HEADER = SECRET_HEADER.encode()
#: Headers that belong to one connection (RFC 9110 §7.6.1), or that the next hop sets
#: itself: never copied from one hop to the next.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        _SECRET_HEADER,
    }
)
#: Set on the answer by this node's HTTP server again; two of each would be wrong.
_ANSWER_SKIPPED = _HOP_BY_HOP | {b"date", b"server", b"content-encoding"}
#: Nodes that get a metrics series of their own; the rest share "other". Node ids come
#: from heartbeats, never from a request, but a cluster whose nodes come and go under
#: new ids would otherwise add series without end.
MAX_NODE_SERIES = 64
#: A forwarded long poll holds a connection to the owner while it waits, as its client
#: holds one to this node: the front's own caps (``limits.max_long_polls``) bound them, and
#: a pool cap here would queue polls behind each other's timeouts.
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)
#: Seconds a connection to another node may take to open.
_CONNECT_TIMEOUT = 5.0
#: Seconds past the longest long poll that a forwarded answer may take.
_ANSWER_SLACK = 15.0


class Forwarder:
    """Sends requests on to the node that holds their consumer instance."""

    def __init__(
        self,
        membership: Membership,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._membership = membership
        self._node_id = membership.node_id
        self._secret = settings.cluster.secret.encode()
        #: For ``http/stream_forwarding.py``, which proxies streams with the same secret
        #: (and relays WebSockets with the consumers' bounds and ping settings).
        self.membership = membership
        self.secret = self._secret
        self.cloudevents = settings.cloudevents
        #: Forwarding needs other nodes (a shared log) and the secret that proves a hop.
        self.enabled = membership.shared and bool(self._secret)
        self._timeout = httpx.Timeout(
            settings.cloudevents.max_poll_timeout + _ANSWER_SLACK, connect=_CONNECT_TIMEOUT
        )
        self._silence = settings.cluster.heartbeat_timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._clock = clock
        #: Target node id -> its forwarded requests' statuses and latencies.
        self.series: dict[str, RequestSeries] = {}

    def http(self) -> httpx.AsyncClient:
        """The connection pool to other nodes (shared with the stream proxy)."""
        return self._http()

    def _http(self) -> httpx.AsyncClient:
        # Made on first use: a node that never forwards holds no connection pool.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                transport=self._transport,
                follow_redirects=False,
                limits=_LIMITS,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the connections to other nodes."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def timer(self, node_id: str) -> Callable[[int], None]:
        """Starts timing a request sent to ``node_id``; call the result with the status
        of the other node's answer (its first bytes, for a stream) to count it."""
        series = self._series(node_id)
        started = self._clock()

        def answered(status: int) -> None:
            series.observe(status, self._clock() - started)

        return answered

    def _series(self, node_id: str) -> RequestSeries:
        series = self.series.get(node_id)
        if series is None:
            key = node_id if len(self.series) < MAX_NODE_SERIES else "other"
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = RequestSeries()
        return series

    # -- the receiving side -----------------------------------------------------------

    def received(self, request: Request) -> bool:
        """Whether another node forwarded ``request``; 401 for a secret that is wrong."""
        sent = request.raw_headers.get(_SECRET_HEADER)
        if sent is None:
            return False
        if not self._secret or not hmac.compare_digest(sent, self._secret):
            raise Unauthenticated(
                f"the {SECRET_HEADER} header is for requests between gateway nodes, and this "
                "one does not hold the cluster's secret"
            )
        return True

    def wrap(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint`` for an instance route (``{bridge}`` in its path), forwarding the
        requests for an instance of another live node."""

        async def forwarding(request: Request) -> Response:
            if self.received(request):
                return await endpoint(request)
            bridge = request.path_params["bridge"]
            if bridge != self._node_id and self.enabled:
                url = self._membership.live_url(bridge)
                if url is not None:
                    return await self.forward(request, bridge, url)
            return await endpoint(request)

        return forwarding

    def place(
        self,
        endpoint: Endpoint,
        shards: GroupShards,
        group_of: Callable[[Request], str],
        relocate: Callable[[Request, bytes], bytes],
    ) -> Endpoint:
        """``endpoint`` for the creation of a group's consumer instance, sent on to the
        node serving the group (``shards.acquire``: claimed here when no live node holds
        its shard). ``group_of`` names the request's storage group (and raises for a bad
        request, rendered as any error of the route); ``relocate`` rewrites the owner's
        ``Location`` for this request (the owner saw the request come from this node, not
        the client's host), so the client keeps reaching the cluster the way it came.
        """

        async def placing(request: Request) -> Response:
            if self.received(request) or not self.enabled:
                return await endpoint(request)
            holder = await shards.acquire(group_of(request))
            # A client known by its TLS certificate alone cannot be forwarded: the
            # consumer core answers it (503 naming the node that serves the group).
            if holder != self._node_id and _forwardable(request):
                url = self._membership.live_url(holder)
                if url is not None:
                    response = await self.forward(request, holder, url)
                    return _relocated(request, response, relocate)
            return await endpoint(request)

        return placing

    # -- the sending side -------------------------------------------------------------

    async def forward(self, request: Request, node_id: str, base_url: str) -> Response:
        """``request`` as answered by the node ``node_id`` at ``base_url``."""
        if not _forwardable(request):
            raise UnknownConsumerInstance(
                f"consumer instance not found on this node: it is on node {node_id!r}, and "
                "requests authenticated by a client certificate are not forwarded between "
                "nodes. Send it to that node, or authenticate with an API key or a JWT.",
                bridge=node_id,
            )
        scope = request.scope
        target = base_url + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        headers = [
            (name, value) for name, value in scope["headers"] if name.lower() not in _HOP_BY_HOP
        ]
        headers.append((_SECRET_HEADER, self._secret))
        length = request.raw_headers.get(b"content-length")
        body_read = asyncio.Event()
        content: AsyncIterator[bytes] | None = None
        if length is not None:
            headers.append((b"content-length", length))
            content = _body(request, body_read)
        elif b"transfer-encoding" in request.raw_headers:
            content = _body(request, body_read)  # chunked on: sent on chunked
        else:
            body_read.set()  # no body (GET, DELETE, a bare POST)
        outgoing = self._http().build_request(
            request.method,
            target + ("?" + query.decode("latin-1") if query else ""),
            headers=headers,
            content=content,
        )
        answered = self.timer(node_id)
        answer = asyncio.ensure_future(self._send(outgoing, node_id))
        gone = asyncio.ensure_future(_disconnected(request, body_read))
        silent = asyncio.ensure_future(self._membership.silent(node_id))
        try:
            await asyncio.wait((answer, gone, silent), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            silent.cancel()
            if not answer.done():
                # The client left, or the owner went silent: closing the connection to
                # the owner ends its long poll there too, as a client's disconnect would.
                answer.cancel()
        if not answer.done() or answer.cancelled():
            if silent.done() and not silent.cancelled():
                answered(503)
                raise self.went_silent(node_id)
            answered(499)
            raise ClientDisconnected
        try:
            response = answer.result()
        except ClientDisconnected:
            answered(499)
            raise
        except Exception:
            answered(503)
            raise
        answered(response.status)
        return response

    def went_silent(self, node_id: str) -> Unavailable:
        """The 503 for a request ``node_id`` held when its heartbeats stopped."""
        return Unavailable(
            f"the node {node_id!r} stopped answering while it held this request (no "
            f"heartbeat for {self._silence:g} s): what the request did there is unknown, "
            "and the node's consumer instances are gone",
            retry_after=1.0,
        )

    async def _send(self, outgoing: httpx.Request, node_id: str) -> Response:
        try:
            upstream = await self._http().send(outgoing)
        except httpx.TransportError as exc:
            raise node_unreachable(f"holding this consumer instance ({node_id!r})", exc) from exc
        headers = [
            (name.lower(), value)
            for name, value in upstream.headers.raw
            if name.lower() not in _ANSWER_SKIPPED
        ]
        return Response(upstream.content, upstream.status_code, content_type=None, headers=headers)


def node_unreachable(which: str, failure: BaseException) -> Unavailable:
    """The 503 for a live node that did not answer (``which`` says which node, as the
    client knows it). Its heartbeats say it is there, so trying again soon may work."""
    return Unavailable(
        f"the node {which} did not answer: {type(failure).__name__}", retry_after=1.0
    )


def _forwardable(request: Request) -> bool:
    """Whether the request's credentials can travel to another node (a TLS client
    certificate belongs to the connection it came on)."""
    return b"authorization" in request.raw_headers or not peer_certificate(request.scope)


def _relocated(
    request: Request, response: Response, relocate: Callable[[Request, bytes], bytes]
) -> Response:
    if not 200 <= response.status < 300:
        return response
    headers = [
        (name, relocate(request, value) if name == b"location" else value)
        for name, value in response.headers
    ]
    return Response(response.body, response.status, content_type=None, headers=headers)


async def _body(request: Request, done: asyncio.Event) -> AsyncIterator[bytes]:
    """The request body as it arrives, then ``done`` set (the rest of ``receive`` is the
    disconnect watch's)."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
    finally:
        done.set()


async def _disconnected(request: Request, body_read: asyncio.Event) -> None:
    await body_read.wait()
    await request.disconnected()
