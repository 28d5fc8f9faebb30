"""An HTTP request: decoded headers, a lazy query, a body read under byte and JSON limits."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from sluicegate.errors import BadRequest, PayloadTooLarge
from sluicegate.http.types import Receive, Scope

if TYPE_CHECKING:
    from sluicegate.core.auth.principals import Principal
    from sluicegate.core.limits.json_limits import JsonLimits

#: The body limit of a request whose route's dialect sets none.
DEFAULT_BODY_LIMIT = 64 * 1024

__all__ = ["ClientDisconnected", "Request"]


class ClientDisconnected(Exception):
    """The client went away before the body was read; nobody is left to answer."""


class Request:
    """One HTTP request: headers decoded up front (every request reads some), the query
    and the body only when asked for."""

    __slots__ = (
        "_query",
        "body_limit",
        "headers",
        "json_limits",
        "path_params",
        "principal",
        "receive",
        "route",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path_params: dict[str, str],
        route: str = "",
        body_limit: int = DEFAULT_BODY_LIMIT,
        json_limits: JsonLimits | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        # ASGI servers hand header names over lower-cased already (ASGI spec).
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            # A repeated header is joined with ", " (RFC 9110): rare, so only then looked up.
            if name in headers:
                value = f"{headers[name]}, {value}"
            headers[name] = value
        #: Header names in lower case; repeated headers joined with ``, ``.
        self.headers = headers
        self.principal: Principal | None = None
        #: The route template that matched, e.g. ``/v2/topics/{topic_name}/records``.
        self.route = route
        self._query: dict[str, list[str]] | None = None
        #: Set by the app from the route's dialect; ``body()`` enforces them.
        self.body_limit = body_limit
        self.json_limits = json_limits

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True) if raw else {}
        return self._query

    def query_param(self, name: str) -> str | None:
        if not self.scope.get("query_string"):
            return None  # most requests have no query: nothing to parse
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case; ``""`` if absent."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    async def body(self, limit: int | None = None, *, json: bool = False) -> bytes:
        """The whole body, refused with ``PayloadTooLarge`` as soon as it passes ``limit``.

        ``limit`` defaults to the request's ``body_limit`` (its dialect's setting); with
        ``json``, the body must also be within the request's ``json_limits``.

        A declared Content-Length over the limit is refused before anything is read, and
        a chunked body is cut off at the first chunk that crosses it, so a huge or endless
        body never sits in memory.
        """
        if limit is None:
            limit = self.body_limit
        declared = self.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BadRequest(f"invalid Content-Length {declared!r}") from None
            if length > limit:
                raise PayloadTooLarge(
                    f"request body of {length} bytes exceeds the limit of {limit} bytes",
                    limit=limit,
                )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {limit} bytes", limit=limit
                )
            if not message.get("more_body", False):
                break
            chunks.append(chunk)
        # Most bodies arrive in one message: no list, no copy.
        body = b"".join((*chunks, chunk)) if chunks else chunk
        if json and self.json_limits is not None:
            self.json_limits.check(body)
        return body
