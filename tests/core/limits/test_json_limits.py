"""JSON shape limits on raw bytes: depth, keys and string size, escapes included."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sluicegate.config import LimitSettings
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.errors import BadRequest


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def keys_of(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(keys_of(v) for v in value.values())
    if isinstance(value, list):
        return sum(keys_of(v) for v in value)
    return 0


def exceeded(limits: JsonLimits, raw: bytes) -> str | None:
    try:
        limits.check(raw)
    except BadRequest as exc:
        return str(exc.detail["limit"])
    return None


@pytest.mark.parametrize("depth", [1, 2, 10, 63, 64, 65, 200])
def test_depth(depth: int) -> None:
    raw = json.dumps(nested(depth)).encode()
    assert depth_of(json.loads(raw)) == depth - 1 or depth == 1
    limits = JsonLimits(max_depth=63, max_keys=10_000, max_string_bytes=1000)
    expected = "max_json_depth" if depth_of(json.loads(raw)) > 63 else None
    assert exceeded(limits, raw) == expected


def test_brackets_inside_strings_do_not_count() -> None:
    limits = JsonLimits(max_depth=3, max_keys=100, max_string_bytes=1000)
    assert exceeded(limits, json.dumps({"a": "[[[[[[[[{{{{{{", "b": ["]]]]}}}}"]}).encode()) is None
    assert exceeded(limits, json.dumps({"a": "x:y:z:" * 50}).encode()) is None
    escaped = json.dumps({"a": 'quote " then [[[[[[[[[ and \\" more ['}).encode()
    assert b'\\"' in escaped
    assert exceeded(limits, escaped) is None
    assert exceeded(limits, json.dumps([[[["\\\\"]]]]).encode()) == "max_json_depth"


@pytest.mark.parametrize("note", [1, 100])
def test_bounds_settled_on_the_raw_bytes_or_the_structure(note: int) -> None:
    # A small body whose strings hold brackets and colons past the limits is within
    # them all the same (its raw counts do not settle it, its structure does); a body
    # past the size counted raw is measured on its structure at once.
    limits = JsonLimits(max_depth=4, max_keys=100, max_string_bytes=100_000)
    within = [{"k": "[{:" * note + str(i)} for i in range(100)]
    assert exceeded(limits, json.dumps(within).encode()) is None
    over = [{"k": "[{:" * note, "l": i} for i in range(51)]
    assert exceeded(limits, json.dumps(over).encode()) == "max_json_keys"
    deep = [[[[["[{:" * note]]]]]
    assert exceeded(limits, json.dumps(deep).encode()) == "max_json_depth"


def test_keys_across_all_objects() -> None:
    limits = JsonLimits(max_depth=64, max_keys=100, max_string_bytes=1000)
    assert exceeded(limits, json.dumps([{"k": i} for i in range(100)]).encode()) is None
    assert exceeded(limits, json.dumps([{"k": i} for i in range(101)]).encode()) == "max_json_keys"
    assert exceeded(limits, json.dumps({f"k{i}": i for i in range(101)}).encode()) == (
        "max_json_keys"
    )


def test_string_size() -> None:
    limits = JsonLimits(max_depth=64, max_keys=100, max_string_bytes=10)
    assert exceeded(limits, json.dumps(["x" * 10, "y" * 10, 123456789012345]).encode()) is None
    assert exceeded(limits, json.dumps(["x" * 10, "y" * 11]).encode()) == "max_json_string_bytes"
    assert exceeded(limits, json.dumps({"k" * 11: 1}).encode()) == "max_json_string_bytes"
    # A long run of structure between strings is not a long string.
    assert exceeded(limits, json.dumps(["a", list(range(100)), "b"]).encode()) is None


def test_messages_name_the_limit() -> None:
    limits = JsonLimits(max_depth=2, max_keys=1, max_string_bytes=3)
    with pytest.raises(BadRequest, match="nests deeper than the limit of 2 levels"):
        limits.check(b"[[[1]]]")
    with pytest.raises(BadRequest, match="has 2 keys; the limit is 1"):
        limits.check(b'{"a":1,"b":2}')
    with pytest.raises(BadRequest, match="exceeds the limit of 3 bytes"):
        limits.check(b'["abcd"]')


@pytest.mark.parametrize("raw", [b"[[[[", b"]]]][[[[", b'{"a": "unterminated', b"", b"{{{{}"])
def test_malformed_json_is_left_to_the_decoder(raw: bytes) -> None:
    JsonLimits(max_depth=2, max_keys=1, max_string_bytes=100).check(raw)


def test_hostile_deep_body_is_refused_quickly() -> None:
    limits = JsonLimits.from_settings(LimitSettings())
    assert exceeded(limits, b"[" * 60_000 + b"]" * 60_000) == "max_json_depth"


def random_document(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.random()
    if depth > 6 or choice < 0.3:
        return rng.choice(
            [1, -2.5, True, None, "", "a", 'q"[{:,\\', "]}", "x" * rng.randint(0, 30)]
        )
    if choice < 0.65:
        return [random_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["k", "[", '"', "a:b", "é"]) + str(i): random_document(rng, depth + 1)
        for i in range(rng.randint(0, 4))
    }


def test_agrees_with_a_decoder_on_random_documents() -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for _ in range(500):
        document = random_document(rng)
        raw = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
        depth, keys = depth_of(document), keys_of(document)
        for max_depth in (max(1, depth - 1), depth, depth + 1):
            limits = JsonLimits(max_depth=max_depth, max_keys=keys, max_string_bytes=10_000)
            expected = "max_json_depth" if depth > max_depth else None
            assert exceeded(limits, raw) == expected, (seed, raw)
        if keys:
            fewer = JsonLimits(max_depth=64, max_keys=keys - 1, max_string_bytes=10_000)
            assert exceeded(fewer, raw) == "max_json_keys", (seed, raw)
