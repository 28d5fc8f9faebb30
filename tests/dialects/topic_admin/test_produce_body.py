"""The produce route's body: decoded before the JSON limits' structure pass, refused
exactly as the limits, the UTF-8 check and the decoder, in that order, refuse it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from sluicegate.config import Settings
from sluicegate.core.limits.json_limits import JsonLimits
from sluicegate.dialects.topic_admin.wire import ProduceBatch
from sluicegate.errors import BadRequest
from sluicegate.http.json_body import check_utf8, decode_json
from tests.conftest import make_settings

TOPICS = "/admin/v1/topics"
RECORDS = f"{TOPICS}/t/records"

#: (max_json_depth, max_json_keys, max_json_string_bytes): the defaults but for strings
#: (a string at the default limit of 1 MiB makes a record larger than Kafka takes); a
#: batch's own depth (3) with room for 200 rows of two keys and one more; below a
#: batch's depth, with strings short enough that the limits are checked before every decode.
LIMITS = [(64, 10_000, 256 * 1024), (3, 401, 100_000), (2, 50, 40)]


@pytest.fixture(params=LIMITS, ids=["wide", "at-a-batch", "below-a-batch"])
def limits(request: pytest.FixtureRequest) -> JsonLimits:
    depth, keys, string_bytes = request.param
    return JsonLimits(depth, keys, string_bytes)


@pytest.fixture
def settings(tmp_path: Path, limits: JsonLimits) -> Settings:
    return make_settings(
        tmp_path,
        auth={"enabled": False},
        limits={
            "max_json_depth": limits.max_depth,
            "max_json_keys": limits.max_keys,
            "max_json_string_bytes": limits.max_string_bytes,
        },
    )


def reference(body: bytes, limits: JsonLimits) -> BadRequest | None:
    """The refusal of ``body`` as ``Request.body(json=True)`` and then the decoder make it."""
    try:
        limits.check(body)
        check_utf8(body)
        decode_json(body, msgspec.json.Decoder(ProduceBatch).decode)
    except BadRequest as exc:
        return exc
    return None


def nested(depth: int) -> Any:
    value: Any = "v"
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


def rows(count: int, value: str = "v" * 40) -> list[dict[str, Any]]:
    return [{"key": f"k-{i % 7}", "value": value} for i in range(count)]


def with_keys(batch: list[dict[str, Any]], keys: int) -> bytes | None:
    """``batch`` with its last row replaced by one that repeats ``"value"`` until the
    document holds ``keys`` keys (``records`` and each row's own); None if it cannot."""
    repeats = keys - 1 - 2 * (len(batch) - 1)
    if repeats < 1:
        return None
    head = json.dumps({"records": batch[:-1]}).encode()[:-2]
    return head + b", {" + b",".join([b'"value":"x"'] * repeats) + b"}]}"


def bodies(limits: JsonLimits) -> dict[str, bytes]:
    """Small bodies (under 8 KiB) and large ones, within and past each limit."""
    cases: dict[str, bytes] = {}
    for size, count in (("small", 3), ("large", 200)):
        batch = rows(count)
        cases[f"{size} batch"] = json.dumps({"records": batch}).encode()
        cases[f"{size} one key"] = json.dumps(
            {"records": [{"key": "k", "value": f"{i:040}"} for i in range(count)]}
        ).encode()
        # Colons and brackets inside strings count toward no limit.
        cases[f"{size} colons in values"] = json.dumps(
            {"records": rows(count, "a:b:[{" * 6)}
        ).encode()
        cases[f"{size} escapes"] = json.dumps({"records": rows(count, 'q"\\:[' * 5)}).encode()
        for depth in {1, 2, 3, *range(max(1, limits.max_depth - 3), limits.max_depth)}:
            # A value nested ``depth`` levels: the document is 3 levels more.
            deep = [*batch[:-1], {"value": nested(depth)}]
            cases[f"{size} value nested {depth}"] = json.dumps({"records": deep}).encode()
        cases[f"{size} records nested"] = json.dumps({"records": [*batch, nested(70)]}).encode()
        # Keys repeated in one record decode (the last wins): only the limit refuses them.
        for keys in (limits.max_keys - 1, limits.max_keys, limits.max_keys + 1):
            repeated = with_keys(batch, keys)
            if repeated is not None:
                cases[f"{keys} keys after {count} rows"] = repeated
        # Not UTF-8, also with a limit or the decoder's error beside it.
        latin = json.dumps({"records": batch}).encode().replace(b'"k-0"', b'"k-\xe9"')
        cases[f"{size} not utf-8"] = latin
        cases[f"{size} not utf-8, deep"] = (
            latin[:-2] + b"," + json.dumps(nested(70)).encode() + b"]}"
        )
        cases[f"{size} not utf-8, wrong type"] = latin[:-2] + b', {"value": 5}]}'
        cases[f"{size} wrong type"] = json.dumps({"records": [*batch, {"value": 5}]}).encode()
        cases[f"{size} unknown field"] = json.dumps(
            {"records": [*batch, {"value": "v", "x": 1}]}
        ).encode()
        cases[f"{size} lone surrogate"] = (
            json.dumps({"records": batch}).encode()[:-4] + b'\\ud800"}]}'
        )
        cases[f"{size} truncated"] = json.dumps({"records": batch}).encode()[:-5]
        cases[f"{size} trailing data"] = json.dumps({"records": batch}).encode() + b"]]"
    assert all(len(body) < 8 * 1024 for name, body in cases.items() if name.startswith("small"))
    assert all(len(body) > 8 * 1024 for name, body in cases.items() if name.startswith("large"))
    limit = limits.max_string_bytes
    for length in (limit - 1, limit, limit + 1):
        cases[f"string of {length}"] = json.dumps({"records": [{"value": "s" * length}]}).encode()
    cases["bare deep array"] = b"[" * 5000 + b"]" * 5000
    cases["not an object"] = b'"records"'
    cases["empty"] = b""
    cases["no records"] = b'{"records": []}'
    return cases


async def test_every_body_is_answered_as_the_checks_before_the_decode_answer_it(
    client: httpx.AsyncClient, limits: JsonLimits
) -> None:
    created = await client.post(TOPICS, json={"name": "t", "partitions": 4})
    assert created.status_code == 201, created.text
    refused: set[str] = set()
    for name, body in bodies(limits).items():
        expected = reference(body, limits)
        response = await client.post(
            RECORDS, content=body, headers={"content-type": "application/json"}
        )
        if expected is None:
            assert response.status_code == 200, (name, response.text)
            assert len(response.json()["offsets"]) == len(json.loads(body)["records"]), name
            continue
        assert response.status_code == expected.status == 400, (name, response.text)
        assert response.json() == {"error": expected.code, "message": expected.message}, name
        refused.add(str(expected.detail.get("limit", expected.message.split(":")[0])))
    # Every kind of refusal was met, under each set of limits.
    assert {"max_json_depth", "max_json_keys", "invalid request body"} <= refused
    assert "request body is not valid JSON" in refused
    assert "max_json_string_bytes" in refused


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_bounded_at_depth_holds_when_check_would_pass(depth: int) -> None:
    limits = JsonLimits(max_depth=3, max_keys=10, max_string_bytes=30)
    within = b'{"records":[{"value":"a"}]}'
    assert limits.bounded_at_depth(within, depth) is (depth <= 3)
    # Strings that could be too long: for check to tell.
    assert not limits.bounded_at_depth(b'{"records":[{"value":"' + b"a" * 40 + b'"}]}', 2)
    colons = JsonLimits(max_depth=3, max_keys=10, max_string_bytes=1000)
    assert colons.bounded_at_depth(b'{"records":[' + b",".join([b'{"value":"a"}'] * 9) + b"]}", 3)
    assert not colons.bounded_at_depth(
        b'{"records":[' + b",".join([b'{"value":"a"}'] * 10) + b"]}", 3
    )
    # A body shorter than four bytes a key cannot hold too many: no colons counted.
    assert colons.bounded_at_depth(b'{"v":"' + b":" * 20 + b'"}', 3)
