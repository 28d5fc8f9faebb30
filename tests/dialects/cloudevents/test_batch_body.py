"""``POST /ce/produce/events`` reads its body without ``Request.body(json=True)``'s checks
and makes them inside ``decode_batch`` (``produce._checked_batch_body``), settling the
JSON limits of a plain batch by its decoded shape: every body must get the answer the
checks made first (limits, then UTF-8, then the events) give it."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.core.cloudevents.binding import PlainBatch, decode_batch
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.dialects.cloudevents.produce import _checked_batch_body
from sluicegate.errors import SluicegateError
from sluicegate.http.json_body import check_utf8
from tests.core.cloudevents.test_batch_paths import _batches


def _nested(depth: int) -> str:
    """JSON data nesting ``depth`` levels, objects and arrays in turn, a bracket in a
    string at the bottom (counted by the bound, not by the limits)."""
    text = '"[{"'
    for level in range(depth):
        text = f'{{"k{level}": {text}}}' if level % 2 else f"[{text}, 1]"
    return text


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Batches as ``_batches`` draws them, now and then with an event whose data nests
    deep, many keys, a long string, a byte that is not UTF-8, or cut short."""
    body = draw(_batches())
    if draw(st.booleans()):
        deep = (
            '{"specversion": "1.0", "id": "d-1", "source": "s", "type": "t", '
            f'"subject": "{"x" * draw(st.integers(1, 80))}", '
            f'"data": {_nested(draw(st.integers(0, 8)))}}}'
        ).encode()
        body = body[:1] + deep + (b", " if len(body) > 2 else b"") + body[1:]
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\xff" + body[at:]
    if draw(st.integers(0, 7)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return body


def _outcome(decode: Any) -> Any:
    try:
        decoded = decode()
    except SluicegateError as exc:
        return type(exc), exc.status, exc.message, exc.detail
    return decoded.cloud_events() if isinstance(decoded, PlainBatch) else decoded


def _checked_first(body: bytes, limits: JsonLimits | None) -> Any:
    """What ``Request.body(json=True)`` then ``decode_batch`` did."""
    if limits is not None:
        limits.check(body)
    check_utf8(body)
    return decode_batch(body)


@settings(max_examples=800, deadline=None)
@given(
    _bodies(),
    st.none() | st.builds(JsonLimits, st.integers(1, 8), st.integers(1, 80), st.integers(4, 120)),
)
def test_a_batch_body_gets_the_answer_of_the_checks_made_first(
    body: bytes, limits: JsonLimits | None
) -> None:
    check = partial(_checked_batch_body, limits)
    assert _outcome(lambda: decode_batch(body, check)) == _outcome(
        lambda: _checked_first(body, limits)
    )


def test_a_plain_batch_within_the_limits_is_told_by_its_bounds() -> None:
    event = b'{"specversion": "1.0", "id": "a", "source": "s", "type": "t", "data": {"n": [1]}}'
    body = b"[" + b", ".join([event] * 50) + b"]"
    decoded = decode_batch(body)
    assert isinstance(decoded, PlainBatch)
    # Two levels for the array of events, two for the deepest data.
    assert decoded.depth_bound() == 4
    # More brackets in the body than the depth allows: only the shape tells.
    limits = JsonLimits(max_depth=4, max_keys=1_000, max_string_bytes=10_000)
    assert body.count(b"{") > limits.max_depth
    assert limits.bounded_at_depth(body, decoded.depth_bound())
    assert not limits.bounded_at_depth(body, 5)
    assert not JsonLimits(4, 1_000, 1_000).bounded_at_depth(
        body, 4
    )  # the body could hold a long string
    assert not JsonLimits(4, 100, 10_000).bounded_at_depth(body, 4)  # colons over the keys allowed


def test_the_depth_bound_holds_for_data_with_a_nul() -> None:
    # msgspec refuses a raw NUL in JSON, so no decoded batch holds one; the bound, which
    # splits the joined data at NULs, counts every bracket of the batch if one did.
    datas = [b'["a\x00[[["]', b'{"x": [1]}', b""]
    # Six brackets and three NULs (one in the data, two between data).
    assert PlainBatch([], datas, set(), set()).depth_bound() == 2 + 6 + 3
    assert PlainBatch([], [b'["a", [[]]]', b'{"x": [1]}', b""], set(), set()).depth_bound() == 5
    assert PlainBatch([], [], set(), set()).depth_bound() == 2


def _depth(value: Any) -> int:
    """The nesting depth of a decoded JSON value (0 for a scalar)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.builds(_nested, st.integers(0, 12)) | st.sampled_from(['"[[[["', "[]", "{}"])),
    st.integers(0, 20),
)
def test_the_depth_bound_by_length_bounds_the_depth(datas: list[str], enough: int) -> None:
    batch = PlainBatch([], [data.encode() for data in datas], set(), set())
    deepest = 2 + max((_depth(json.loads(data)) for data in datas), default=0)
    bound = batch.depth_bound(enough)
    assert deepest <= bound
    # Within ``enough`` the bound is the one the lengths give, else the counted one.
    if bound > enough:
        assert bound == batch.depth_bound()
