"""Pages of a long list: ``?limit=`` and an opaque ``?cursor=``, the next page in a
``Link: <...>; rel="next"`` header (RFC 8288), the body still the plain JSON array.

A cursor is the sort key of the last item a page held, so the next page starts just
after it whatever was created or deleted meanwhile: an item that exists for the whole
walk is listed exactly once, and one created behind the cursor is not listed at all.
It is base64url JSON so that no client comes to depend on what is inside.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import msgspec

from sluicegate.errors import BadRequest
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Page",
    "PageRequest",
    "encode_cursor",
    "page_request",
    "paginate",
]

#: Items in a page when the request gives no ``limit``.
DEFAULT_LIMIT = 100
#: The largest ``limit`` accepted: about 200 KB of topics.
MAX_LIMIT = 1000

T = TypeVar("T")
K = TypeVar("K", bound=tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class PageRequest(Generic[K]):
    """What a request asked for: at most ``limit`` items after the sort key ``after``."""

    limit: int
    after: K | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T, K]):
    """One page; ``next`` is the sort key to continue after, ``None`` on the last page."""

    items: list[T]
    next: K | None

    def response(self, request: Request, render: Callable[[T], Any]) -> Response:
        """The rendered items as a JSON array, and a ``Link`` to the next page if any."""
        headers = []
        if self.next is not None:
            # The request's filters (``name``...) carry over to the next page.
            kept = {k: v[-1] for k, v in request.query.items() if k not in ("limit", "cursor")}
            query = urlencode(
                {**kept, "limit": len(self.items), "cursor": encode_cursor(self.next)}
            )
            url = f"{request.scope.get('root_path', '')}{request.path}?{query}"
            headers.append((b"link", f'<{url}>; rel="next"'.encode()))
        return json_response([render(item) for item in self.items], headers=headers)


def encode_cursor(key: tuple[Any, ...]) -> str:
    """The opaque cursor that continues after the sort key ``key``."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).rstrip(b"=").decode("ascii")


def _decode_cursor(raw: str, kind: type[K]) -> K:
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        after: K = msgspec.json.decode(data, type=kind)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        # ValueError: non-ASCII text in the cursor; DecodeError covers ValidationError.
        raise BadRequest(
            f"query parameter cursor: {raw!r} is not a cursor this list gave out",
            field="cursor",
        ) from None
    return after


def page_request(request: Request, kind: type[K]) -> PageRequest[K]:
    """``limit`` (1..``MAX_LIMIT``, default ``DEFAULT_LIMIT``) and ``cursor`` of ``request``.

    ``kind`` is the type of the list's sort key, e.g. ``tuple[str]`` for a name.
    """
    raw_limit = request.query_param("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(
                f"query parameter limit must be an integer from 1 to {MAX_LIMIT}, "
                f"got {raw_limit!r}",
                field="limit",
            )
    cursor = request.query_param("cursor")
    after = _decode_cursor(cursor, kind) if cursor else None
    return PageRequest(limit, after)


def paginate(
    items: Sequence[T],
    key: Callable[[T], K],
    page: PageRequest[K],
    keep: Callable[[T], bool] | None = None,
) -> Page[T, K]:
    """The page of ``items`` (sorted by ``key``) that ``page`` asks for, counting only the
    items ``keep`` accepts (all if ``None``)."""
    start = 0 if page.after is None else bisect_right(items, page.after, key=key)
    chosen: list[T] = []
    for index in range(start, len(items)):
        item = items[index]
        if keep is not None and not keep(item):
            continue
        if len(chosen) == page.limit:
            return Page(chosen, key(chosen[-1]))
        chosen.append(item)
    return Page(chosen, None)
