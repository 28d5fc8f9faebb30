"""Streaming consumers (``/ce/ws``, ``/ce/sse``) proxied to the node that serves their group.

A consumer group's instances all live on one node, the holder of the group's shard
(``core/group_shards.py``): its members, positions and unconfirmed events are that
process's. A WebSocket or Server-Sent Events consumer *is* an instance for as long as
its connection lasts, so a connection that reaches another node behind a round-robin
load balancer is proxied: the node that got it opens the same request to the group's
node (``Forwarder``'s secret header marks it as forwarded, so it is never sent on again;
the client's own credentials travel unchanged and are checked there) and pipes what
each side sends to the other until one of them ends:

* WebSocket: the owner's handshake answer is the client's — a refusal (``401``, ``400``,
  ``429``...) goes back as the same HTTP response, an acceptance is accepted here with
  the subprotocol the owner chose. Then text messages both ways, as they come (the
  owner's bursts are relayed as bursts, its frames cut by ``http/websocket_relay.py``);
  the owner's close is the client's close, with its code and reason, and a client that
  leaves closes the owner's connection with its code, which ends the instance there: its
  unconfirmed events go to the group again.
* Server-Sent Events: the owner's status and headers, then its body as it arrives. The
  client's ``Host`` is kept, so the instance URL the owner writes in the stream is one
  the client can reach (through any node: it names the owner's bridge and is forwarded
  like any instance route).

So a client reconnecting through any node reaches its group's node and gets the group's
unconfirmed events again. A group whose shard no live node holds is claimed by the node
that got the connection and served there, as is every group on one node. A node that
does not answer gets ``503`` with ``Retry-After``, before any upgrade or stream starts.
A client authenticated by a TLS certificate only cannot be proxied (the certificate
belongs to its connection): it is served here, where the group's placement refuses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import h11
import httpx

from sluicegate.core.group_shards import GroupShards
from sluicegate.http.forwarding import SECRET_HEADER, Forwarder, node_unreachable
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, StreamingResponse
from sluicegate.http.router import Endpoint, WebSocketEndpoint
from sluicegate.http.tls import peer_certificate
from sluicegate.http.types import Message, Send
from sluicegate.http.websocket import refuse_handshake
from sluicegate.http.websocket_relay import HandshakeError, Refusal, open_owner_socket
from sluicegate.tasks import let_go_of_cancellation

__all__ = ["StreamForwarder"]

logger = logging.getLogger("sluicegate.cluster.streams")

_SECRET = SECRET_HEADER.encode()
#: Never copied to the owner: the connection's own, the handshake's (the relay makes its
#: own), and the secret (added from this node's settings).
_WS_SKIPPED = frozenset(
    {
        b"host",
        b"connection",
        b"upgrade",
        b"keep-alive",
        b"te",
        b"transfer-encoding",
        b"content-length",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        _SECRET,
    }
)
#: The SSE request keeps ``Host`` (see the module docstring).
_SSE_SKIPPED = _WS_SKIPPED - {b"host"}
#: Set again by this node's server on the answer.
_ANSWER_SKIPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
#: Seconds the owner may take to accept a connection or start a stream.
_OPEN_TIMEOUT = 5.0
#: The owner's messages are events read from the log, rendered as JSON: up to about six
#: times the event's stored bytes where its strings are escaped (``\u0000``), and a
#: record another Kafka producer wrote is bounded by the broker, not by
#: ``max_event_bytes``. This many times the larger of the two message settings is room
#: for any of them, and still a bound on what one relayed connection buffers.
_OWNER_MESSAGE_FACTOR = 8


class StreamForwarder:
    """Proxies streaming consumers to the node that serves their group."""

    def __init__(self, forwarder: Forwarder, shards: GroupShards) -> None:
        self._forwarder = forwarder
        self._shards = shards
        self._membership = forwarder.membership
        self._node_id = forwarder.membership.node_id
        self._secret = forwarder.secret
        ce = forwarder.cloudevents
        self._max_message_bytes = _OWNER_MESSAGE_FACTOR * max(
            ce.websocket_max_message_bytes, ce.max_event_bytes
        )
        self._ping_interval = ce.websocket_ping_interval
        self._ping_timeout = ce.websocket_ping_timeout

    async def _owner(
        self, request: Request, group_of: Callable[[Request], str]
    ) -> tuple[str, str] | None:
        """The id and base URL of the live node serving the request's group, when that
        is another node and the request may go there; else ``None`` (served here)."""
        if self._forwarder.received(request) or not self._forwarder.enabled:
            return None
        if b"authorization" not in request.raw_headers and peer_certificate(request.scope):
            return None
        holder = await self._shards.acquire(group_of(request))
        if holder == self._node_id:
            return None
        url = self._membership.live_url(holder)
        return None if url is None else (holder, url)

    def _headers(self, request: Request, skipped: frozenset[bytes]) -> list[tuple[str, str]]:
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.scope["headers"]
            if name.lower() not in skipped
        ]
        headers.append((SECRET_HEADER, self._secret.decode("latin-1")))
        return headers

    def _raw_headers(
        self, request: Request, skipped: frozenset[bytes]
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (name, value) for name, value in request.scope["headers"] if name.lower() not in skipped
        ]
        headers.append((_SECRET, self._secret))
        return headers

    @staticmethod
    def _target(request: Request, base_url: str) -> str:
        scope = request.scope
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        query: bytes = scope.get("query_string", b"")
        return base_url + path + ("?" + query.decode("latin-1") if query else "")

    # -- WebSocket -------------------------------------------------------------------

    def websocket(
        self, endpoint: WebSocketEndpoint, group_of: Callable[[Request], str]
    ) -> WebSocketEndpoint:
        """``endpoint``, proxied to the group's node when another live node serves it.
        ``group_of`` names the request's storage group (raising for a bad request).
        ``endpoint`` itself where nothing is ever forwarded (one node, no secret)."""
        if not self._forwarder.enabled:
            return endpoint

        async def forwarding(request: Request, send: Send) -> None:
            owner = await self._owner(request, group_of)
            if owner is None:
                await endpoint(request, send)
                return
            await self._proxy_websocket(request, send, *owner)

        return forwarding

    async def _proxy_websocket(
        self, request: Request, send: Send, node_id: str, base_url: str
    ) -> None:
        scope = request.scope
        answered = self._forwarder.timer(node_id)
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                owner = await open_owner_socket(
                    base_url,
                    self._target(request, ""),
                    self._raw_headers(request, _WS_SKIPPED),
                    list(scope.get("subprotocols", ())),
                    max_message_bytes=self._max_message_bytes,
                )
        except (OSError, TimeoutError, HandshakeError, h11.ProtocolError) as exc:
            answered(503)
            raise node_unreachable(f"serving this consumer group ({base_url})", exc) from exc
        answered(owner.status if isinstance(owner, Refusal) else 101)
        if isinstance(owner, Refusal):
            headers = [
                (name, value) for name, value in owner.headers if name not in _ANSWER_SKIPPED
            ]
            refusal = Response(owner.body, owner.status, content_type=None, headers=headers)
            await refuse_handshake(scope, send, refusal)
            return
        await owner.relay(
            scope,
            request.receive,
            send,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
        )

    # -- Server-Sent Events ----------------------------------------------------------

    def sse(self, endpoint: Endpoint, group_of: Callable[[Request], str]) -> Endpoint:
        """``endpoint`` (``GET /ce/sse``), proxied to the group's node when another live
        node serves it; ``endpoint`` itself where nothing is ever forwarded."""
        if not self._forwarder.enabled:
            return endpoint

        async def forwarding(request: Request) -> Response:
            owner = await self._owner(request, group_of)
            if owner is None:
                return await endpoint(request)
            return await self._proxy_sse(request, *owner)

        return forwarding

    async def _proxy_sse(self, request: Request, node_id: str, base_url: str) -> Response:
        client = self._forwarder.http()
        answered = self._forwarder.timer(node_id)
        outgoing = client.build_request(
            request.method,
            self._target(request, base_url),
            headers=self._headers(request, _SSE_SKIPPED),
            # The stream may be quiet for as long as the owner's keep-alive interval; a
            # client that leaves ends it from this side.
            timeout=httpx.Timeout(None, connect=_OPEN_TIMEOUT),
        )
        opening = asyncio.ensure_future(client.send(outgoing, stream=True))
        silent = asyncio.ensure_future(self._membership.silent(node_id))
        try:
            await asyncio.wait((opening, silent), return_when=asyncio.FIRST_COMPLETED)
        finally:
            silent.cancel()
            if not opening.done():
                opening.cancel()  # the owner went silent; the request's own cancel too
        if not opening.done() or opening.cancelled():
            answered(503)
            raise self._forwarder.went_silent(node_id)
        try:
            upstream = opening.result()
        except httpx.TransportError as exc:
            answered(503)
            raise node_unreachable(f"serving this consumer group ({base_url})", exc) from exc
        answered(upstream.status_code)
        headers = [
            (name.lower(), value)
            for name, value in upstream.headers.raw
            if name.lower() not in _ANSWER_SKIPPED and name.lower() != b"content-type"
        ]
        content_type = upstream.headers.get("content-type", "text/event-stream").encode()
        if upstream.status_code != 200:
            try:
                body = await upstream.aread()
            finally:
                await upstream.aclose()
            return Response(body, upstream.status_code, content_type=content_type, headers=headers)

        async def write(send: Send, start: Message) -> None:
            try:
                await send(start)
                piping = asyncio.ensure_future(_pipe_body(upstream, send))
                gone = asyncio.ensure_future(request.disconnected())
                # An owner that goes silent ends the stream: its client reconnects and
                # is served by the node that takes the group over.
                silent = asyncio.ensure_future(self._membership.silent(node_id))
                waits = (piping, gone, silent)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
                    for wait in waits:
                        let_go_of_cancellation(wait)
                # Ended here (the owner went silent, or its connection broke) with the
                # client still there: the body is ended for it. (A wait cancelled after
                # it ended keeps its outcome: ``cancelled()`` is true of those stopped.)
                piped = not piping.cancelled() and piping.exception() is None
                if not piped and gone.cancelled():
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                # Closing the connection to the owner ends its stream, as the client's own
                # disconnect would have: the instance's unconfirmed events go to the group.
                await upstream.aclose()

        return StreamingResponse(
            write, upstream.status_code, content_type=content_type, headers=headers
        )


async def _pipe_body(upstream: httpx.Response, send: Send) -> None:
    async for chunk in upstream.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
