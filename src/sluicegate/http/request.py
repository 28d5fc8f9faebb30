"""An HTTP request: lazy headers and query, a body read under a byte limit."""

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


def _joined(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class Request:
    """One HTTP request. Cheap to build: nothing is parsed until asked for."""

    __slots__ = (
        "_headers",
        "_query",
        "body_limit",
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
        *,
        route: str = "",
        body_limit: int = DEFAULT_BODY_LIMIT,
        json_limits: JsonLimits | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self.principal: Principal | None = None
        #: The route template that matched, e.g. ``/v2/topics/{topic_name}/records``.
        self.route = route
        self._headers: dict[str, str] | None = None
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

    @property
    def headers(self) -> dict[str, str]:
        """Header names in lower case; repeated headers joined with ``, `` as in RFC 9110."""
        headers = self._headers
        if headers is None:
            raw = self.scope["headers"]
            # ASGI servers hand header names over lower-cased already (ASGI spec).
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}
            if len(headers) < len(raw):
                headers = _joined(raw)  # some header came more than once
            self._headers = headers
        return headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.scope["headers"])

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True) if raw else {}
        return self._query

    def query_param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case; ``""`` if absent."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    async def json_body(self) -> bytes:
        """The body, within the size limit and the JSON shape limits (depth, keys, strings)."""
        body = await self.body()
        if self.json_limits is not None:
            self.json_limits.check(body)
        return body

    async def body(self, limit: int | None = None) -> bytes:
        """The whole body, refused with ``PayloadTooLarge`` as soon as it passes ``limit``.

        ``limit`` defaults to the request's ``body_limit`` (its dialect's setting).

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
                # Most bodies arrive in one message: no list, no copy.
                return b"".join((*chunks, chunk)) if chunks else chunk
            chunks.append(chunk)
