"""Routes: a path template, methods, an endpoint, and the dialect that renders its errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from sluicegate.errors import MethodNotAllowed, NotFound, SluicegateError, UpgradeRequired
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.types import Send

__all__ = [
    "Endpoint",
    "ErrorRenderer",
    "Route",
    "Router",
    "WebSocketEndpoint",
    "WebSocketRoute",
    "plain_errors",
]

Endpoint = Callable[[Request], Awaitable[Response]]
#: A WebSocket endpoint gets the handshake as a ``Request`` (its principal set when the
#: route is authenticated) and the ASGI ``send``. Before it accepts, it may raise a
#: ``SluicegateError``: the app answers it over HTTP, before the upgrade. Once it has
#: accepted, it handles every error itself and closes the connection.
WebSocketEndpoint = Callable[[Request, Send], Awaitable[None]]
ErrorRenderer = Callable[[SluicegateError, Request], Response]

_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?\}")


def _compile(template: str) -> re.Pattern[str]:
    pattern, last = "", 0
    for match in _PARAM.finditer(template):
        pattern += re.escape(template[last : match.start()])
        name, is_path = match.group(1), match.group(2)
        # A path parameter may hold any character, a line break too (as one segment can).
        pattern += f"(?P<{name}>(?s:.+))" if is_path else f"(?P<{name}>[^/]+)"
        last = match.end()
    pattern += re.escape(template[last:])
    return re.compile(pattern)


def plain_errors(exc: SluicegateError, request: Request) -> Response:
    """The error body of routes that belong to no dialect: ``{"error", "message"}``."""
    from sluicegate.http.responses import json_response

    return json_response({"error": exc.code, "message": exc.message}, exc.status)


@dataclass(frozen=True, slots=True)
class Route:
    """An HTTP route. ``path`` is also the metrics label: never the raw request path."""

    path: str
    endpoint: Endpoint
    methods: frozenset[str] = frozenset({"GET"})
    #: Whether the request must carry valid credentials before the endpoint runs.
    authenticated: bool = True
    #: How this route's dialect turns an error into a response.
    render_error: ErrorRenderer = plain_errors
    #: The dialect (``records_v2``, ``topics_v1``...) for limits and metrics.
    dialect: str = "gateway"
    #: Whether ``HEAD`` gets the ``GET`` answer without its body (RFC 9110 §9.3.2). False
    #: for a ``GET`` that must not run for a ``HEAD``: one that delivers events to a
    #: consumer, or streams.
    head: bool = True
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    #: ``methods``, with ``HEAD`` where ``head`` lets a ``GET`` answer it.
    allows: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.path))
        allows = self.methods | {"HEAD"} if self.head and "GET" in self.methods else self.methods
        object.__setattr__(self, "allows", allows)


@dataclass(frozen=True, slots=True)
class WebSocketRoute:
    """A WebSocket route: an exact path (no parameters)."""

    path: str
    endpoint: WebSocketEndpoint
    authenticated: bool = True
    #: How this route's dialect answers a refused handshake.
    render_error: ErrorRenderer = plain_errors
    dialect: str = "gateway"


class Router:
    """Finds the route for a method and path.

    Static paths are a dict lookup; templated ones are bucketed by their first segment
    so a request tries only the few routes that could match.
    """

    def __init__(self, routes: Iterable[Route], websockets: Iterable[WebSocketRoute] = ()) -> None:
        self._static: dict[str, list[Route]] = {}
        self._by_segment: dict[str, list[Route]] = {}
        self._wildcard: list[Route] = []
        self.routes = list(routes)
        self.websockets = {ws.path: ws for ws in websockets}
        #: Static routes by first segment: whose errors a near miss (``/ce/produce/x``) gets.
        self._static_by_segment: dict[str, Route] = {}
        for route in self.routes:
            first = route.path.split("/", 2)[1]
            if "{" not in route.path:
                self._static.setdefault(route.path, []).append(route)
                self._static_by_segment.setdefault(first, route)
                continue
            if "{" in first:
                self._wildcard.append(route)
            else:
                self._by_segment.setdefault(first, []).append(route)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and its path parameters; ``NotFound``, ``MethodNotAllowed``, or
        ``UpgradeRequired`` for a WebSocket endpoint's path."""
        allowed: list[str] = []
        candidates = self._static.get(path)
        if candidates:
            for route in candidates:
                if method in route.allows:
                    return route, {}
                allowed.extend(route.allows)
        first = path.split("/", 2)[1] if path.startswith("/") else ""
        for group in (self._by_segment.get(first, ()), self._wildcard):
            for route in group:
                found = route.pattern.fullmatch(path)
                if found is None:
                    continue
                if method in route.allows:
                    return route, found.groupdict()
                allowed.extend(route.allows)
        if allowed:
            raise MethodNotAllowed(
                f"method {method} is not allowed on {path}", allowed=sorted(set(allowed))
            )
        if path in self.websockets:
            raise UpgradeRequired(
                f"{path} is a WebSocket endpoint: open it with a WebSocket handshake "
                "(Upgrade: websocket over HTTP/1.1, extended CONNECT over HTTP/2)"
            )
        raise NotFound(f"no route for {method} {path}")

    def closest(self, path: str) -> Route | None:
        """The route whose dialect should render a 404/405 for ``path``, if any."""
        first = path.split("/", 2)[1] if path.startswith("/") else ""
        group = self._by_segment.get(first) or self._static.get(path)
        if group:
            return group[0]
        static = self._static_by_segment.get(first)
        if static is not None:
            return static
        # A template that starts with a parameter (``/{bridge}/ce/...``): the one whose
        # pattern the path fits, else one whose second segment is the path's (a near miss
        # under an instance's address: ``/node-1/ce/consumers/g/instances/i/nope``).
        fitting = next((route for route in self._wildcard if route.pattern.fullmatch(path)), None)
        if fitting is not None:
            return fitting
        second = path.split("/", 3)[2:3]
        if not second:
            return None
        return next((r for r in self._wildcard if r.path.split("/", 3)[2:3] == second), None)
