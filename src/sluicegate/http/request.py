"""An HTTP request: headers and query read when asked for, a body read under byte and JSON
limits."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from sluicegate.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from sluicegate.http.json_body import check_utf8
from sluicegate.http.types import Receive, Scope
from sluicegate.tasks import let_go_of_cancellation

if TYPE_CHECKING:
    from sluicegate.core.auth.principals import Principal
    from sluicegate.core.limits.json_limits import JsonLimits
    from sluicegate.http.response_cycle import OneWriteCycle

#: The body limit of a request whose route's dialect sets none.
DEFAULT_BODY_LIMIT = 64 * 1024

#: Parsed query strings remembered; beyond this the memory starts over.
_QUERY_CACHE_SIZE = 1024
#: Longer query strings are parsed every time.
_QUERY_CACHE_BYTES = 256
_QUERIES: dict[bytes, dict[str, list[str]]] = {}

__all__ = ["ClientDisconnected", "Request"]


class ClientDisconnected(Exception):
    """The client went away before the body was read; nobody is left to answer."""


def _parse_media_type(content_type: bytes) -> str:
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


# Clients send the same one or two Content-Types on every request: each is parsed once
# (short ones only, so that the memory stays small whatever clients send).
_remembered_media_type = functools.lru_cache(maxsize=64)(_parse_media_type)
#: Longer Content-Type values are parsed every time.
_MEDIA_TYPE_CACHE_BYTES = 128


def _unquoted(text: str, what: str) -> str:
    try:
        return unquote_plus(text, errors="strict") if "%" in text or "+" in text else text
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not valid UTF-8 once percent-decoded") from None


def _parse_query(raw: bytes) -> dict[str, list[str]]:
    """A query string's parameters; ``BadRequest`` naming the one that is not UTF-8.

    ``urllib.parse.parse_qs`` would turn ``%FF`` into U+FFFD without a word: a value the
    client did not send. Parameters are separated by ``&`` only, as ``parse_qs`` does.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the query string is not valid UTF-8 (byte {exc.start})") from None
    query: dict[str, list[str]] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition("=")
        name = _unquoted(raw_name, "a query parameter's name")
        value = _unquoted(raw_value, f"query parameter {name!r}")
        query.setdefault(name, []).append(value)
    return query


def _joined(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for name, value in raw:
        headers[name] = headers[name] + b", " + value if name in headers else value
    return headers


class Request:
    """One HTTP request. Cheap to build: values are decoded and parsed only when asked for."""

    __slots__ = (
        "_query",
        "body_limit",
        "cycle",
        "json_limits",
        "path_params",
        "principal",
        "raw_headers",
        "receive",
        "scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path_params: dict[str, str],
        body_limit: int = DEFAULT_BODY_LIMIT,
        json_limits: JsonLimits | None = None,
        cycle: OneWriteCycle | None = None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        raw = scope["headers"]
        if not isinstance(raw, list):
            raw = list(raw)  # ASGI allows any iterable; uvicorn hands over a list
        headers = dict(raw)
        #: Header names (lower case, as ASGI servers hand them over) to their values;
        #: a repeated header's values joined with ``, `` (RFC 9110).
        self.raw_headers: dict[bytes, bytes] = headers if len(headers) == len(raw) else _joined(raw)
        self.principal: Principal | None = None
        self._query: dict[str, list[str]] | None = None
        #: Set by the app from the route's dialect; ``body()`` enforces them.
        self.body_limit = body_limit
        self.json_limits = json_limits
        #: The server's cycle that ``receive`` belongs to, when the app may take the body
        #: from it without awaiting ``receive`` (``ready_body``).
        self.cycle = cycle

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower case), or ``None``."""
        value = self.raw_headers.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters; shared between requests with the same query: read only."""
        if self._query is None:
            raw: bytes = self.scope.get("query_string", b"")
            query = _QUERIES.get(raw)
            if query is None:
                query = _parse_query(raw) if raw else {}
                # Clients send the same few short queries again and again
                # (?serializer=confluent); remember those, bounded in count and size so
                # that random or huge queries cost no memory.
                if len(raw) <= _QUERY_CACHE_BYTES:
                    if len(_QUERIES) >= _QUERY_CACHE_SIZE:
                        _QUERIES.clear()
                    _QUERIES[raw] = query
            self._query = query
        return self._query

    def forget_headers(self) -> None:
        """Drop the headers, parsed and in the scope, and the parsed query (read again
        from the scope if asked for): for a connection that outlives its handshake and
        reads neither again, an accepted WebSocket. Headers read afterwards are absent.
        """
        self.raw_headers = {}
        self.scope["headers"] = ()
        self._query = None

    def query_param(self, name: str) -> str | None:
        if not self.scope.get("query_string"):
            return None  # most requests have no query: nothing to parse
        values = self.query.get(name)
        return values[-1] if values else None

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case; ``""`` if absent."""
        value = self.raw_headers.get(b"content-type", b"")
        if len(value) <= _MEDIA_TYPE_CACHE_BYTES:
            return _remembered_media_type(value)
        return _parse_media_type(value)

    def _check_declared(self, limit: int) -> None:
        """Refuse a declared Content-Length over ``limit``, or one that is no number."""
        declared = self.raw_headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                shown = declared.decode("latin-1")
                raise BadRequest(f"invalid Content-Length {shown!r}") from None
            if length > limit:
                raise PayloadTooLarge(
                    f"request body of {length} bytes exceeds the limit of {limit} bytes",
                    limit=limit,
                )

    def _check_json(self, body: bytes) -> None:
        if self.json_limits is not None:
            self.json_limits.check(body)
        check_utf8(body)

    def ready_body(self, limit: int | None = None, *, json: bool = False) -> bytes | None:
        """``body()``'s answer without waiting, if the whole body is there already (nearly
        always); ``None``: await ``body()``. The same checks, with the same outcomes.

        Through the server's cycle (``cycle``), not ``receive``: a request's body then
        costs no coroutine, neither ``body()``'s nor ``receive``'s.
        """
        coding = self.raw_headers.get(b"content-encoding")
        if coding is not None and coding.strip().lower() not in (b"identity", b""):
            # Read as it is, a compressed body would be stored compressed, or refused as
            # bad JSON with a message that misleads (RFC 9110: 415).
            raise UnsupportedMediaType(
                f"unsupported Content-Encoding {coding.decode('latin-1')!r}: send the "
                "body uncompressed"
            )
        cycle = self.cycle
        if cycle is None:
            return None
        body = cycle.take_body()
        if body is None:
            self._check_declared(self.body_limit if limit is None else limit)
            return None
        if limit is None:
            limit = self.body_limit
        if len(body) > limit:
            # A whole body is as long as its Content-Length, if it declared one (the
            # parser refuses any other): refused as body() refuses the declared length.
            self._check_declared(limit)
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes", limit=limit)
        if json:
            if self.json_limits is not None:
                self.json_limits.check(body)
            if not body.isascii():
                check_utf8(body)
        return body

    async def body(self, limit: int | None = None, *, json: bool = False) -> bytes:
        """The whole body, refused with ``PayloadTooLarge`` as soon as it passes ``limit``.

        ``limit`` defaults to the request's ``body_limit`` (its dialect's setting); with
        ``json``, the body must also be within the request's ``json_limits`` and be UTF-8.

        A declared Content-Length over the limit is refused before anything is read, and
        a chunked body is cut off at the first chunk that crosses it, so a huge or endless
        body never sits in memory.
        """
        if limit is None:
            limit = self.body_limit
        ready = self.ready_body(limit, json=json)
        if ready is not None:
            return ready
        if self.cycle is None:
            self._check_declared(limit)  # else ready_body has checked it, finding no body
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
        if json:
            self._check_json(body)
        return body

    async def disconnected(self) -> None:
        """Return once the client has gone away; call it only after reading the body.

        A long poll waits on this beside its data so that a client that leaves frees
        what it held at once, not at its timeout.
        """
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def streamed(
        self, delivering: Coroutine[Any, Any, bytes | None], *stops: asyncio.Future[None]
    ) -> bytes | None:
        """Run a streamed answer's ``delivering`` until it ends, the client leaves or one
        of ``stops`` fires: ``None`` once the client is gone (nothing can reach it),
        ``delivering``'s own last bytes when it ended, else ``b""`` (stopped)."""
        delivery = asyncio.ensure_future(delivering)
        leaving = asyncio.ensure_future(self.disconnected())
        try:
            waiting: tuple[asyncio.Future[Any], ...] = (delivery, leaving, *stops)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (delivery, leaving):
                task.cancel()
            await asyncio.gather(delivery, leaving, return_exceptions=True)
            for task in (delivery, leaving):
                let_go_of_cancellation(task)
        if leaving.done() and not leaving.cancelled() and leaving.exception() is None:
            return None
        if delivery.done() and not delivery.cancelled():
            return delivery.result()
        return b""
