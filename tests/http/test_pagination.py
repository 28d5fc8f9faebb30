"""Pages of a sorted list: limits, cursors, and what a walk sees while the list changes."""

from __future__ import annotations

import pytest

from sluicegate.errors import BadRequest
from sluicegate.http.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    encode_cursor,
    page_request,
    paginate,
)
from sluicegate.http.request import Request


def _request(query: bytes) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": query}
    return Request(scope, _no_body, {})


async def _no_body() -> dict[str, object]:
    raise AssertionError("a list request has no body to read")


def _walk(names: list[str], limit: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = paginate(names, lambda name: (name,), PageRequest(limit, after))
        pages.append(page.items)
        if page.next is None:
            return pages
        after = page.next


def test_walk_lists_each_item_once_in_pages_of_limit() -> None:
    names = [f"topic-{i:05d}" for i in range(10_000)]
    pages = _walk(names, 1000)
    assert [len(page) for page in pages] == [1000] * 10
    assert [name for page in pages for name in page] == names


def test_no_empty_last_page() -> None:
    assert _walk(["a", "b", "c", "d"], 2) == [["a", "b"], ["c", "d"]]
    assert _walk([], 2) == [[]]


def test_changes_between_pages_neither_repeat_nor_skip() -> None:
    names = ["b", "d", "f", "h"]
    first = paginate(names, lambda n: (n,), PageRequest(2, None))
    assert first.items == ["b", "d"]
    # Meanwhile: "a" and "e" created, "d" (the cursor itself) and "f" deleted.
    changed = ["a", "b", "e", "h"]
    second = paginate(changed, lambda n: (n,), PageRequest(2, first.next))
    assert second.items == ["e", "h"]
    assert second.next is None


def test_keep_filters_before_counting() -> None:
    page = paginate(list(range(100)), lambda n: (n,), PageRequest(3, (10,)), lambda n: n % 10 == 0)
    assert page.items == [20, 30, 40]
    assert page.next == (40,)


def test_request_defaults_and_cursor_round_trip() -> None:
    assert page_request(_request(b""), tuple[str]) == PageRequest(DEFAULT_LIMIT, None)
    cursor = encode_cursor((1.5, "k_01"))
    wanted = page_request(_request(f"limit=7&cursor={cursor}".encode()), tuple[float, str])
    assert wanted == PageRequest(7, (1.5, "k_01"))
    # An empty cursor is the first page, as if none were given.
    assert page_request(_request(b"cursor="), tuple[str]).after is None


@pytest.mark.parametrize("limit", ["0", "-1", str(MAX_LIMIT + 1), "ten", "", "1e3", "null"])
def test_limit_out_of_range_is_400_naming_it(limit: str) -> None:
    with pytest.raises(
        BadRequest, match=r"query parameter limit must be an integer from 1 to 1000"
    ):
        page_request(_request(f"limit={limit}".encode()), tuple[str])


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",  # not base64
        "bm90IGpzb24",  # base64 of "not json"
        encode_cursor((1, 2)),  # JSON, but not the sort key of this list
        "null",
    ],
)
def test_foreign_cursor_is_400_naming_it(cursor: str) -> None:
    with pytest.raises(BadRequest, match=r"query parameter cursor: .* is not a cursor") as info:
        page_request(_request(f"cursor={cursor}".encode()), tuple[str])
    assert info.value.detail == {"field": "cursor"}


def test_a_cursor_that_is_not_text_is_400_naming_it() -> None:
    with pytest.raises(BadRequest, match=r"query parameter 'cursor' is not valid UTF-8"):
        page_request(_request(b"cursor=%FF%FE"), tuple[str])
