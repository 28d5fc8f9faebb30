"""The ASGI application: routing, authentication, errors and metrics around the dialects."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from time import perf_counter
from urllib.parse import unquote_to_bytes

from sluicegate.core.gateway import Gateway
from sluicegate.errors import (
    BadRequest,
    ClientError,
    MethodNotAllowed,
    NotFound,
    ServerError,
    SluicegateError,
    Starting,
    StoppedMidRequest,
    UpgradeRequired,
)
from sluicegate.http.forwarding import Forwarder
from sluicegate.http.request import DEFAULT_BODY_LIMIT, ClientDisconnected, Request
from sluicegate.http.response_cycle import direct_cycle
from sluicegate.http.responses import WHOLE, Response, StreamingResponse, json_response
from sluicegate.http.router import ErrorRenderer, Route, Router, WebSocketRoute, plain_errors
from sluicegate.http.server_answers import ErrorAnswer
from sluicegate.http.servers import STOPPED
from sluicegate.http.stream_forwarding import StreamForwarder
from sluicegate.http.tls import peer_certificate
from sluicegate.http.types import Message, Receive, Scope, Send
from sluicegate.http.websocket import refuse_handshake
from sluicegate.observability.history import MetricsHistory
from sluicegate.observability.metrics import CONTENT_TYPE, Metrics, RequestSeries

__all__ = ["GatewayApp", "build_app"]

logger = logging.getLogger("sluicegate.app")

#: A matched request's route, path parameters, metrics series, body limit, and whether
#: its dialect has a rate limit (most have none: then no call per request to find out).
_Dispatch = tuple[Route, dict[str, str], RequestSeries, int, bool]
#: Seconds a client is asked to wait while the gateway starts.
_STARTING_RETRY_AFTER = 5.0
#: (method, path) pairs whose dispatch is remembered; beyond this the memory starts over.
#: An entry costs about 500 bytes (the path, its parameters): 1,024 of them hold the
#: paths a node serves at one time, and a server that sees 10,000 topics' paths keeps
#: 0.5 MiB here, not 2 MiB (docs/design-notes.md, "Memory per topic").
_DISPATCH_CACHE_SIZE = 1024


class InternalError(ServerError):
    """Stands in for an unexpected exception in a response: an id, never a traceback."""

    def __init__(self, incident: str) -> None:
        super().__init__(
            f"internal server error; incident id {incident} (the server log has the details)",
            incident=incident,
        )
        self.incident = incident


def _log_incident(exc: SluicegateError, method: str, path: str) -> None:
    """Log a 500 the gateway answers by design (its storage failed, or refused it) under
    a new incident id, which the dialects that have an ``incident_id`` member show.

    Unlike a 503 or a 408, which say what to do and are counted in /metrics, a 500 is
    something for an operator to look at: the log must have it, and the client an id to
    quote. Set just before the error is rendered, with no await between: an error shared
    by several requests (one failed commit fails every waiter) carries each one's id in
    turn.
    """
    incident = uuid.uuid4().hex[:16]
    exc.detail = {**exc.detail, "incident": incident}
    logger.error("%s %s answered 500: %s", method, path, exc.message, extra={"incident": incident})


def _with_error_headers(response: Response, exc: SluicegateError) -> Response:
    """Headers every dialect's error responses need, added in one place.

    ``Retry-After`` for errors that say when to come back (429, 503); ``WWW-Authenticate``
    on every 401 and ``Allow`` on every 405 (RFC 9110). A 413 keeps the connection open on
    purpose: closing it while the client is still sending makes TCP reset the connection,
    which can destroy the 413 before the client reads it; uvicorn reads and drops the rest
    of the body instead (memory stays flat, tests/e2e/test_limits_server.py).
    """
    retry_after: float | None = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    if response.status == 401:
        response.headers.append((b"www-authenticate", b'Bearer realm="sluicegate"'))
    if isinstance(exc, MethodNotAllowed):
        response.headers.append((b"allow", ", ".join(exc.allowed).encode()))
    return response


def _check_path_utf8(scope: Scope, params: dict[str, str]) -> None:
    """Refuse a path whose percent-decoded bytes are not UTF-8, naming the parameter.

    uvicorn decodes ``%FF`` to U+FFFD, a character the client did not send; the raw
    path tells whether it sent that character (``%EF%BF%BD``) or bytes that are no text.
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        name = next((name for name, value in params.items() if "\ufffd" in value), None)
        where = "the path" if name is None else f"path parameter {name}"
        raise BadRequest(f"{where} is not valid UTF-8 once percent-decoded") from None


async def _no_body() -> Message:
    """The ``receive`` of a request the server answers by itself: the app never reads it."""
    return {"type": "http.disconnect"}


class GatewayApp:
    """The outermost ASGI app.

    Each route belongs to a dialect that renders its errors; anything that is not a
    ``SluicegateError`` is a bug, logged with an incident id and answered with a 500
    that carries only that id.
    """

    def __init__(
        self,
        gateway: Gateway,
        routes: Iterable[Route],
        websockets: Iterable[WebSocketRoute] = (),
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.gateway = gateway
        self._auth = gateway.auth
        self._limits = gateway.limits
        self._rate = gateway.limits.rate
        self._requests = gateway.limits.requests
        self._json_limits = gateway.limits.json
        settings = gateway.settings
        self._body_limits = {
            **settings.limits.max_body_bytes,
            "records_v2": settings.records_v2.max_body_bytes,
            "cloudevents": settings.cloudevents.max_request_bytes,
        }
        self.metrics = metrics or Metrics()
        self.metrics.watch_storage(gateway.log.stats)
        self.metrics.watch_event_ids(gateway.event_ids.stats)
        self.metrics.watch_consumers(gateway.consumers.stats)
        self.metrics.watch_groups(
            lambda: gateway.consumer_lag.snapshot.values(),
            max_groups=settings.cloudevents.metrics_max_groups,
        )
        self.metrics.watch_open_consumers("cloudevents", gateway.open_consumers)
        self.metrics.watch_wake_to_write("cloudevents", gateway.streams.wake_to_write)
        self.router = Router([*self._own_routes(), *routes], websockets)
        self._dispatch: dict[tuple[str, str], _Dispatch] = {}
        #: Sends consumer requests on to other nodes; ``build_app`` sets it, and the
        #: server closes it last (``aclose``).
        self.forwarder: Forwarder | None = None
        #: The last minutes of a few metrics; ``build_app`` sets it, and the server runs
        #: its sampler (``MetricsHistory.run``) beside the housekeeping.
        self.history: MetricsHistory | None = None
        #: What the gateway waits for before it serves (the server sets it while its
        #: storage starts): every request but ``/healthz`` is then a 503 in its
        #: dialect's format. ``None``: serving.
        self.starting: str | None = None

    def _own_routes(self) -> list[Route]:
        return [
            Route("/healthz", self._healthz, authenticated=False),
            Route("/readyz", self._readyz, authenticated=False),
            Route("/metrics", self._metrics, authenticated=False),
        ]

    def _not_started(self) -> Starting:
        reason = self.gateway.log.unreachable()
        return Starting(
            f"the gateway is starting: {self.starting}" + (f" ({reason})" if reason else ""),
            retry_after=_STARTING_RETRY_AFTER,
        )

    def _dispatch_for(self, method: str, path: str, scope: Scope) -> _Dispatch:
        """What serves ``method path``: its route, parameters, metrics and body limit.

        Raises ``NotFound``, ``MethodNotAllowed``, ``UpgradeRequired`` (a WebSocket
        endpoint's path), or ``BadRequest`` for a path that is not UTF-8. Clients hit the
        same few paths again and again (one topic, one consumer), so the answer is
        remembered, bounded so that a scan of random paths costs no memory. The
        parameters are then shared between requests to the same path: endpoints read
        them, never write.
        """
        route, params = self.router.match(method, path)
        dispatch = (
            route,
            params,
            self.metrics.requests(route.dialect, route.path, method),
            self._body_limits.get(route.dialect, DEFAULT_BODY_LIMIT),
            self._rate.rate_for(route.dialect) is not None,
        )
        if "\ufffd" in path:
            # Checked against the raw path each time, never remembered: a valid U+FFFD
            # and an invalid byte decode to the same path.
            _check_path_utf8(scope, params)
            return dispatch
        if len(self._dispatch) >= _DISPATCH_CACHE_SIZE:
            self._dispatch.clear()
        self._dispatch[method, path] = dispatch
        return dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HTTP is served here, not in a method of its own: that would be one more
        # coroutine to create, and to pass through each time a request resumes.
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)
            return
        started = perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        dispatch = self._dispatch.get((method, path))
        if dispatch is None:
            try:
                dispatch = self._dispatch_for(method, path, scope)
            except SluicegateError as exc:
                await self._unmatched(exc, scope, receive, send, started)
                return
        route, params, series, body_limit, rated = dispatch
        # Under uvicorn, the body is taken from the cycle and the response written to it
        # without receive's and send's coroutines and messages.
        cycle = direct_cycle(receive, send)
        request = Request(scope, receive, params, body_limit, self._json_limits, cycle)
        try:
            if self.starting is not None and route.path != "/healthz":
                raise self._not_started()
            if not route.authenticated:
                response = await route.endpoint(request)
            else:
                authorization = request.raw_headers.get(b"authorization")
                auth = self._auth
                principal = auth.authenticate(
                    None if authorization is None else authorization.decode("latin-1"),
                    # Looked for only where it can decide: authentication on, and no
                    # Authorization header.
                    None if authorization or not auth.enabled else peer_certificate(scope),
                )
                request.principal = principal
                # The client's rate and concurrency limits.
                if rated:
                    self._rate.check(principal.name, route.dialect)
                self._requests.acquire(principal.name)
                try:
                    response = await route.endpoint(request)
                finally:
                    self._requests.release(principal.name)
        except SluicegateError as exc:
            if exc.status == 500:
                _log_incident(exc, method, route.path)
            response = _with_error_headers(route.render_error(exc, request), exc)
        except ClientDisconnected:
            # Nobody to answer; 499 as nginx logs it, for the metrics only.
            series.observe(499, perf_counter() - started)
            return
        except asyncio.CancelledError as exc:
            if exc.args != (STOPPED,):
                raise
            # The server's graceful shutdown ran out (``http.servers.STOPPED``): answered
            # in the dialect's format instead of the server's bare 500 or a cut connection.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            stopped = StoppedMidRequest(
                "the server stopped before this request finished; a write it made is "
                "stored whole or not at all"
            )
            response = _with_error_headers(route.render_error(stopped, request), stopped)
        except Exception:
            incident = uuid.uuid4().hex[:16]
            logger.exception(
                "unhandled error in %s %s", method, route.path, extra={"incident": incident}
            )
            response = route.render_error(InternalError(incident), request)
        if isinstance(response, StreamingResponse):
            # Outside the request's concurrency slot: a stream (Server-Sent Events) is
            # counted by its own cap, for as long as it lasts.
            await response(send)
        elif method == "HEAD":
            # The GET's answer, its Content-Length too; the server sends no body for a
            # HEAD (the direct path would write it).
            await response(send)
        elif cycle is None or not cycle.write_whole(
            response.status, response.headers, response.body
        ):
            if WHOLE in scope.get("extensions", ()):
                await send(response.whole_message())
            else:
                # Response.__call__'s two messages, without its coroutine.
                await send(response.start_message())
                await send({"type": "http.response.body", "body": response.body})
        series.observe(response.status, perf_counter() - started)

    def _renderer_for(self, path: str) -> ErrorRenderer:
        """How the dialect ``path`` looks like it belongs to renders errors; plain if none."""
        closest = self.router.closest(path)
        return closest.render_error if closest else plain_errors

    def error_answer(self, path: str | None, exc: ClientError) -> ErrorAnswer:
        """The HTTP server's own answer to ``exc`` (a 408, 414 or 431 for a request that
        never reaches a route, ``http/server_answers.py``), in the format of the dialect
        ``path`` looks like it belongs to, as ``_unmatched`` renders a 404; plain when
        the path is unknown (None).

        Every renderer builds its body from ``exc`` alone, so a bare request (no
        headers) serves, and none raises.
        """
        render = plain_errors if path is None else self._renderer_for(path)
        scope: Scope = {"type": "http", "path": path or "", "headers": []}
        response = _with_error_headers(render(exc, Request(scope, _no_body, {})), exc)
        return response.status, response.headers, response.body

    async def _unmatched(
        self, exc: SluicegateError, scope: Scope, receive: Receive, send: Send, started: float
    ) -> None:
        """A 404, a 405, a 426 or a path that is not UTF-8, rendered by the dialect the
        path looks like it belongs to."""
        render = self._renderer_for(scope["path"])
        response = _with_error_headers(render(exc, Request(scope, receive, {})), exc)
        if isinstance(exc, UpgradeRequired) and scope.get("http_version", "1.1")[0] == "1":
            # RFC 9110 says which protocol a 426 wants in Upgrade; HTTP/2 has no such header
            # (a WebSocket opens there with extended CONNECT).
            response.headers.append((b"upgrade", b"websocket"))
        await response(send)
        series = self.metrics.requests("none", "unmatched", scope["method"])
        series.observe(response.status, perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: authenticated as any request, refused over HTTP.

        The endpoint raises a ``SluicegateError`` only before it accepts (the route's
        dialect renders it, with the headers every error response needs, before any
        upgrade); once it has accepted, it closes the connection itself.
        """
        if (await receive())["type"] != "websocket.connect":
            return  # the client left before the handshake reached the app
        path: str = scope["path"]
        route = self.router.websockets.get(path)
        request = Request(scope, receive, {})
        try:
            if route is None:
                raise NotFound(f"no WebSocket endpoint at {path}")
            if self.starting is not None:
                raise self._not_started()
            if route.authenticated:
                principal = self._auth.authenticate(
                    request.header("authorization"), peer_certificate(scope)
                )
                request.principal = principal
                self._rate.check(principal.name, route.dialect)
            await route.endpoint(request, send)
        except SluicegateError as exc:
            render = route.render_error if route else self._renderer_for(path)
            await refuse_handshake(scope, send, _with_error_headers(render(exc, request), exc))
        except Exception:
            incident = uuid.uuid4().hex[:16]
            logger.exception("unhandled error in WebSocket %s", path, extra={"incident": incident})
            render = route.render_error if route else plain_errors
            await refuse_handshake(scope, send, render(InternalError(incident), request))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The CLI runs storage and housekeeping beside the server in one TaskGroup
        # (DESIGN.md): the app itself has nothing to start or stop.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        await self.gateway.log.check()
        return json_response({"status": "ready"})

    async def _metrics(self, request: Request) -> Response:
        # The groups' lag is taken at most once per its ttl, whoever scrapes.
        await self.gateway.consumer_lag.refresh()
        return Response(self.metrics.render(), content_type=CONTENT_TYPE)


def build_app(gateway: Gateway, *, metrics: Metrics | None = None) -> GatewayApp:
    """The app with every dialect mounted."""
    from sluicegate import openapi
    from sluicegate.console.routes import routes as console
    from sluicegate.dialects.admin.consumers import routes as consumer_admin
    from sluicegate.dialects.admin.event_schemas import routes as event_schema_admin
    from sluicegate.dialects.admin.groups import routes as group_admin
    from sluicegate.dialects.admin.metrics_history import routes as history_admin
    from sluicegate.dialects.admin.nodes import routes as cluster_admin
    from sluicegate.dialects.admin.routes import routes as client_admin
    from sluicegate.dialects.cloudevents.consumers import routes as cloudevents_consumers
    from sluicegate.dialects.cloudevents.produce import routes as cloudevents_produce
    from sluicegate.dialects.cloudevents.sse import routes as cloudevents_sse
    from sluicegate.dialects.cloudevents.tools import routes as cloudevents_tools
    from sluicegate.dialects.cloudevents.websocket import routes as cloudevents_websocket
    from sluicegate.dialects.records_v2.routes import routes as records_v2
    from sluicegate.dialects.schema_registry.access import guarded
    from sluicegate.dialects.schema_registry.routes import routes as schema_registry
    from sluicegate.dialects.topic_admin.routes import routes as topic_admin
    from sluicegate.dialects.topic_admin.watch import routes as topic_watch
    from sluicegate.dialects.topics_v1.developer import routes as topics_v1_developer
    from sluicegate.dialects.topics_v1.public import routes as topics_v1_public

    forwarder = Forwarder(gateway.cluster, gateway.settings)
    metrics = metrics or Metrics()
    history = MetricsHistory(metrics)
    streams = StreamForwarder(forwarder, gateway.group_shards)
    routes: list[Route] = [
        *records_v2(gateway),
        *topics_v1_public(gateway),
        *topic_admin(gateway),
        *topic_watch(gateway),
        *topics_v1_developer(gateway),
        *cloudevents_produce(gateway),
        *cloudevents_tools(gateway),
        *cloudevents_consumers(gateway, forwarder),
        *cloudevents_sse(gateway, streams),
        *cluster_admin(gateway.cluster),
        *client_admin(gateway.clients),
        *event_schema_admin(gateway.event_schemas),
        *group_admin(gateway.consumer_lag),
        *consumer_admin(gateway.consumers, gateway.cluster.node_id),
        *history_admin(history),
        # Confluent's own paths (what SchemaRegistryClient(url) calls), and under /registry.
        *guarded(schema_registry(gateway.schemas)),
        *guarded(schema_registry(gateway.schemas, prefix="/registry")),
        *openapi.routes(),
        *console(),
    ]
    app = GatewayApp(gateway, routes, cloudevents_websocket(gateway, streams), metrics=metrics)
    app.forwarder = forwarder
    app.history = history
    app.metrics.watch_forwarding(forwarder.series)
    return app
