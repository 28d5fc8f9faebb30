"""Garbage in, a 4xx with Confluent's error body out: never a crash, never a 500."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import httpx
import pytest


@pytest.fixture
def backend() -> str:
    """Fuzzing tests parsing, not storage: one backend is enough."""
    return "sqlite"


SEED = int(os.environ.get("SLUICEGATE_FUZZ_SEED", random.randrange(2**32)))
HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
ENDPOINTS = [
    ("POST", "/subjects/s/versions"),
    ("POST", "/subjects/s"),
    ("POST", "/compatibility/subjects/s/versions/latest"),
    ("POST", "/compatibility/subjects/s/versions"),
    ("PUT", "/config"),
    ("PUT", "/config/s"),
    ("PUT", "/mode"),
]
VALID = {
    "type": "record",
    "name": "R",
    "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}],
}


@pytest.fixture
def rand() -> random.Random:
    print(f"fuzz seed: {SEED} (set SLUICEGATE_FUZZ_SEED to replay)")
    return random.Random(SEED)


def random_json(rand: random.Random, depth: int = 0) -> Any:
    choice = rand.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rand.choice([True, False])
    if choice == 2:
        return rand.randint(-(2**40), 2**40)
    if choice == 3:
        return rand.random() * 1e6
    if choice == 4:
        return "".join(rand.choice('ab{}[]":,\\ ñ\x00') for _ in range(rand.randrange(8)))
    if choice == 5:
        return [random_json(rand, depth + 1) for _ in range(rand.randrange(4))]
    keys = [
        "schema",
        "schemaType",
        "references",
        "type",
        "name",
        "fields",
        "compatibility",
        "mode",
        "x",
    ]
    return {rand.choice(keys): random_json(rand, depth + 1) for _ in range(rand.randrange(5))}


def mutate(rand: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rand.randrange(1, 6)):
        position = rand.randrange(len(chars) + 1)
        action = rand.randrange(3)
        if action == 0 and chars:
            del chars[min(position, len(chars) - 1)]
        elif action == 1:
            chars.insert(position, rand.choice('{}[]",:0a\\'))
        else:
            chars = chars[:position]
    return "".join(chars)


def bodies(rand: random.Random) -> list[bytes]:
    found: list[bytes] = [
        bytes(rand.randrange(256) for _ in range(rand.randrange(64))) for _ in range(20)
    ]
    found += [json.dumps(random_json(rand)).encode() for _ in range(40)]
    found += [mutate(rand, json.dumps({"schema": json.dumps(VALID)})).encode() for _ in range(40)]
    found += [json.dumps({"schema": mutate(rand, json.dumps(VALID))}).encode() for _ in range(60)]
    found += [
        json.dumps(
            {
                "schema": json.dumps(random_json(rand)),
                "schemaType": rand.choice(["AVRO", "JSON", "XML", None]),
            }
        ).encode()
        for _ in range(60)
    ]
    found += [
        json.dumps({"schema": json.dumps(VALID), "references": random_json(rand)}).encode()
        for _ in range(20)
    ]
    return found


def assert_confluent_error_or_success(response: httpx.Response, sent: bytes) -> None:
    assert response.status_code < 500, (response.status_code, response.text, sent)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error_code"), int), (body, sent)
        assert isinstance(body.get("message"), str), (body, sent)


async def test_garbage_bodies(client: httpx.AsyncClient, rand: random.Random) -> None:
    for content in bodies(rand):
        method, path = rand.choice(ENDPOINTS)
        response = await client.request(method, path, content=content, headers=HEADERS)
        assert_confluent_error_or_success(response, content)


async def test_garbage_paths(client: httpx.AsyncClient, rand: random.Random) -> None:
    segments = [
        "subjects",
        "versions",
        "schemas",
        "ids",
        "config",
        "latest",
        "-1",
        "0",
        "x",
        "%00",
        "%2F",
        "999999999999",
        "..",
    ]
    for _ in range(100):
        path = "/" + "/".join(rand.choice(segments) for _ in range(rand.randrange(1, 6)))
        method = rand.choice(["GET", "POST", "PUT", "DELETE"])
        response = await client.request(method, path, content=b"{}", headers=HEADERS)
        assert response.status_code < 500, (method, path, response.text)
