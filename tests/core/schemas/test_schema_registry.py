"""The registry over a real SQLite log: ids, versions, deletes, config, persistence."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from sluicegate.core.schemas import registry as registry_module
from sluicegate.core.schemas.compatibility import CompatibilityLevel
from sluicegate.core.schemas.model import LATEST, Reason, SchemaReference, SchemaType
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.errors import (
    IncompatibleSchema,
    InvalidSchema,
    NotFound,
    SchemaNotFound,
    SubjectNotFound,
    Unprocessable,
    VersionNotFound,
)
from sluicegate.storage.base import Log, running
from sluicegate.storage.sqlite import SqliteLog


def record(*fields: dict[str, Any], name: str = "User") -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "com.acme", "fields": list(fields)}
    )


ID = {"name": "id", "type": "long"}
EMAIL = {"name": "email", "type": "string"}
EMAIL_DEFAULT = {"name": "email", "type": "string", "default": ""}
V1 = record(ID)
V2 = record(ID, EMAIL_DEFAULT)
V3_BREAKING = record(ID, EMAIL)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    async with running(SqliteLog(tmp_path)) as log:
        yield log


@pytest.fixture
async def registry(log: Log) -> SchemaRegistry:
    registry = SchemaRegistry(log)
    await registry.load()
    return registry


async def test_first_schema_gets_id_1_version_1(registry: SchemaRegistry) -> None:
    registered = await registry.register("users-value", V1)
    assert (registered.id, registered.version, registered.subject) == (1, 1, "users-value")
    assert registered.schema == V1
    assert registered.schema_type is SchemaType.AVRO


async def test_same_schema_same_id_same_version(registry: SchemaRegistry) -> None:
    first = await registry.register("users-value", V1)
    again = await registry.register("users-value", json.dumps(json.loads(V1), indent=2))
    assert (again.id, again.version) == (first.id, first.version)
    assert again.schema == V1  # the text as first registered
    assert registry.versions("users-value") == [1]


async def test_same_schema_under_another_subject_keeps_its_id(registry: SchemaRegistry) -> None:
    first = await registry.register("a-value", V1)
    other = await registry.register("b-value", V1)
    assert (other.id, other.version) == (first.id, 1)
    assert registry.subjects_for_id(first.id) == ["a-value", "b-value"]
    assert registry.versions_for_id(first.id) == [("a-value", 1), ("b-value", 1)]


async def test_new_compatible_schema_is_the_next_version(registry: SchemaRegistry) -> None:
    await registry.register("users-value", V1)
    second = await registry.register("users-value", V2)
    assert (second.id, second.version) == (2, 2)
    assert registry.get_version("users-value", LATEST).id == 2
    assert registry.get_version("users-value", 1).schema == V1


async def test_an_earlier_schema_registered_as_latest_is_a_new_version(
    registry: SchemaRegistry,
) -> None:
    await registry.register("users-value", V1)
    await registry.register("users-value", V2)
    # As Confluent's API answers: the version that has it.
    assert (await registry.register("users-value", V1)).version == 1
    back = await registry.register("users-value", V1, as_latest=True)
    assert (back.id, back.version) == (1, 3)
    assert registry.get_version("users-value", LATEST).id == 1
    assert registry.versions("users-value") == [1, 2, 3]
    # The latest has it now: nothing more to register.
    assert (await registry.register("users-value", V1, as_latest=True)).version == 3
    assert registry.versions("users-value") == [1, 2, 3]


async def test_incompatible_schema_is_refused_with_reasons(registry: SchemaRegistry) -> None:
    await registry.register("users-value", V1)
    with pytest.raises(IncompatibleSchema) as caught:
        await registry.register("users-value", V3_BREAKING)
    reason = (
        "BACKWARD: the new schema cannot read data written with version 1: "
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: reader field 'email' has no default "
        "value and is missing from the writer"
    )
    assert caught.value.detail["messages"] == [reason]
    assert caught.value.message == (
        "Schema being registered is incompatible with an earlier schema for subject "
        f'"users-value": {reason}'
    )
    assert registry.versions("users-value") == [1]


async def test_level_none_accepts_anything(registry: SchemaRegistry) -> None:
    await registry.set_compatibility_level(CompatibilityLevel.NONE, "users-value")
    await registry.register("users-value", V1)
    changed = await registry.register("users-value", '"string"')
    assert changed.version == 2


async def test_json_and_avro_of_the_same_text_are_different_schemas(
    registry: SchemaRegistry,
) -> None:
    text = '{"type": "string"}'
    avro = await registry.register("a", text)
    json_schema = await registry.register("j", text, "JSON")
    assert avro.id != json_schema.id
    assert registry.schema(json_schema.id).schema_type is SchemaType.JSON


async def test_invalid_and_unsupported(registry: SchemaRegistry) -> None:
    with pytest.raises(InvalidSchema, match="Invalid Avro schema: unknown type 'nope'"):
        await registry.register("s", '"nope"')
    with pytest.raises(InvalidSchema, match="the schema is empty"):
        await registry.register("s", "  ")
    with pytest.raises(Unprocessable) as caught:
        await registry.register("s", "syntax = 'proto3';", "PROTOBUF")
    assert caught.value.message == (
        "unsupported schema type 'PROTOBUF': this registry supports AVRO and JSON"
    )
    assert caught.value.detail["reason"] is Reason.UNSUPPORTED_SCHEMA_TYPE
    with pytest.raises(Unprocessable) as invalid_subject:
        await registry.register("bad\nsubject", V1)
    assert invalid_subject.value.detail["reason"] is Reason.INVALID_SUBJECT
    assert registry.subjects() == []


async def test_normalize_stores_the_normal_form(registry: SchemaRegistry) -> None:
    registered = await registry.register("s", json.dumps(json.loads(V1), indent=2), normalize=True)
    assert registered.schema == registry.parsed(registered.id).canonical


# -- concurrency and persistence -------------------------------------------------------


async def test_concurrent_registrations_are_serialized(registry: SchemaRegistry) -> None:
    await registry.set_compatibility_level(CompatibilityLevel.NONE)
    schemas = [record({"name": f"f{i}", "type": "int"}) for i in range(20)]
    results = await asyncio.gather(*(registry.register("s", s) for s in schemas))
    assert sorted(r.version for r in results) == list(range(1, 21))
    assert sorted(r.id for r in results) == list(range(1, 21))
    same = await asyncio.gather(*(registry.register("t", V1) for _ in range(10)))
    assert {(r.id, r.version) for r in same} == {(21, 1)}


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    async with running(SqliteLog(tmp_path)) as log:
        registry = SchemaRegistry(log)
        await registry.load()
        await registry.register("users-value", V1)
        await registry.register("users-value", V2)
        await registry.register("other", '"string"')
        await registry.set_compatibility_level(CompatibilityLevel.FULL, "users-value")
        await registry.delete_version("other", 1)
    async with running(SqliteLog(tmp_path)) as log:
        reloaded = SchemaRegistry(log)
        await reloaded.load()
        assert reloaded.versions("users-value") == [1, 2]
        assert reloaded.get_version("users-value", 2).id == 2
        assert reloaded.compatibility_level("users-value") is CompatibilityLevel.FULL
        assert reloaded.subjects() == ["users-value"]
        assert reloaded.versions("other", deleted=True) == [1]
        # Ids keep counting, and known schemas keep theirs.
        assert (await reloaded.register("new", V1)).id == 1
        assert (await reloaded.register("new2", record(ID, name="Other"))).id == 4


async def test_a_follower_sees_another_registrys_changes(log: Log) -> None:
    writer = SchemaRegistry(log)
    await writer.load()
    follower = SchemaRegistry(log)
    await follower.load()
    task = asyncio.create_task(follower.follow())
    try:
        registered = await writer.register("users-value", V1)
        async with asyncio.timeout(5):
            # The registry offers no change notification to wait on: poll briefly.
            while "users-value" not in follower.subjects():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert follower.get_version("users-value", 1).id == registered.id
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- reading ---------------------------------------------------------------------------


async def test_unknown_things(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaNotFound, match="Schema 9 not found"):
        registry.schema(9)
    with pytest.raises(SubjectNotFound, match=r"Subject 'nope' not found\."):
        registry.versions("nope")
    await registry.register("s", V1)
    with pytest.raises(VersionNotFound, match=r"Version 5 not found."):
        registry.get_version("s", 5)


async def test_lookup(registry: SchemaRegistry) -> None:
    await registry.register("s", V1)
    await registry.register("s", V2)
    found = registry.lookup("s", json.dumps(json.loads(V2)))
    assert (found.id, found.version) == (2, 2)
    with pytest.raises(SchemaNotFound, match="Schema not found"):
        registry.lookup("s", V3_BREAKING)
    with pytest.raises(SubjectNotFound):
        registry.lookup("other", V1)


async def test_check_compatibility(registry: SchemaRegistry) -> None:
    assert registry.check_compatibility("s", V3_BREAKING) == []
    assert registry.check_compatibility("s", V3_BREAKING, version=LATEST) == []
    await registry.register("s", V1)
    assert registry.check_compatibility("s", V2) == []
    assert len(registry.check_compatibility("s", V3_BREAKING, version=1)) == 1
    with pytest.raises(VersionNotFound):
        registry.check_compatibility("s", V2, version=7)


# -- deleting --------------------------------------------------------------------------


async def test_soft_then_permanent_delete_of_a_version(registry: SchemaRegistry) -> None:
    await registry.register("s", V1)
    await registry.register("s", V2)
    with pytest.raises(NotFound) as not_soft:
        await registry.delete_version("s", 1, permanent=True)
    assert not_soft.value.detail["reason"] is Reason.VERSION_NOT_SOFT_DELETED
    assert await registry.delete_version("s", 1) == 1
    assert registry.versions("s") == [2]
    assert registry.versions("s", deleted=True) == [1, 2]
    assert registry.versions("s", deleted_only=True) == [1]
    with pytest.raises(VersionNotFound, match="Version 1 not found") as hidden:
        registry.get_version("s", 1)
    assert "reason" not in hidden.value.detail  # to a read, not found (40402)
    assert registry.get_version("s", 1, deleted=True).id == 1
    with pytest.raises(VersionNotFound) as again:
        await registry.delete_version("s", 1)
    assert again.value.detail["reason"] is Reason.VERSION_SOFT_DELETED
    assert await registry.delete_version("s", 1, permanent=True) == 1
    assert registry.versions("s", deleted=True) == [2]
    # The id went with its last version, as in Confluent's registry...
    with pytest.raises(SchemaNotFound, match="Schema 1 not found"):
        registry.schema(1)
    with pytest.raises(SchemaNotFound):
        registry.versions_for_id(1, deleted=True)
    assert registry.schema(2).schema == V2
    # ...but records written with it are still decoded (the log keeps the text), and the
    # same schema registered again gets it back.
    encoded = registry.encode_confluent(1, {"id": 7})
    assert registry.decode_confluent(encoded) == (1, {"id": 7})
    assert (await registry.register("t", V1)).id == 1
    assert registry.subjects_for_id(1) == ["t"]


async def test_soft_then_permanent_delete_of_a_subject(registry: SchemaRegistry) -> None:
    await registry.register("s", V1)
    await registry.register("s", V2)
    await registry.set_compatibility_level(CompatibilityLevel.NONE, "s")
    with pytest.raises(NotFound) as not_soft:
        await registry.delete_subject("s", permanent=True)
    assert not_soft.value.detail["reason"] is Reason.SUBJECT_NOT_SOFT_DELETED
    assert await registry.delete_subject("s") == [1, 2]
    assert registry.subjects() == []
    assert registry.subjects(deleted=True) == ["s"]
    assert registry.subjects(deleted_only=True) == ["s"]
    with pytest.raises(NotFound) as soft:
        await registry.delete_subject("s")
    assert soft.value.detail["reason"] is Reason.SUBJECT_SOFT_DELETED
    with pytest.raises(SubjectNotFound):
        registry.get_version("s", LATEST)
    assert await registry.delete_subject("s", permanent=True) == [1, 2]
    assert registry.subjects(deleted=True) == []
    with pytest.raises(SubjectNotFound):
        await registry.delete_subject("s")
    with pytest.raises(NotFound):
        registry.compatibility_level("s")  # the subject's config went with it


async def test_reregistering_after_soft_delete_makes_a_new_version(
    registry: SchemaRegistry,
) -> None:
    first = await registry.get_or_register("s", V1)
    await registry.delete_subject("s")
    again = await registry.get_or_register("s", V1)
    assert (again.id, again.version) == (first.id, 2)


# -- configuration ---------------------------------------------------------------------


async def test_compatibility_levels(registry: SchemaRegistry) -> None:
    assert registry.compatibility_level() is CompatibilityLevel.BACKWARD
    with pytest.raises(NotFound) as unset:
        registry.compatibility_level("s")
    assert unset.value.detail["reason"] is Reason.SUBJECT_COMPATIBILITY_NOT_SET
    assert unset.value.message == "Subject 's' does not have subject-level compatibility configured"
    assert registry.compatibility_level("s", default_to_global=True) is CompatibilityLevel.BACKWARD
    await registry.set_compatibility_level(CompatibilityLevel.FULL)
    await registry.set_compatibility_level(CompatibilityLevel.NONE, "s")
    assert registry.compatibility_level("s") is CompatibilityLevel.NONE
    assert await registry.delete_compatibility_level("s") is CompatibilityLevel.NONE
    assert registry.compatibility_level("s", default_to_global=True) is CompatibilityLevel.FULL
    assert await registry.delete_compatibility_level() is CompatibilityLevel.FULL
    assert registry.compatibility_level() is CompatibilityLevel.BACKWARD


# -- references ------------------------------------------------------------------------


ADDRESS = json.dumps(
    {"type": "record", "name": "Address", "namespace": "com.acme", "fields": [EMAIL]}
)
CUSTOMER = json.dumps(
    {
        "type": "record",
        "name": "Customer",
        "namespace": "com.acme",
        "fields": [ID, {"name": "address", "type": "com.acme.Address"}],
    }
)


async def test_avro_references(registry: SchemaRegistry) -> None:
    address = await registry.register("address", ADDRESS)
    reference = SchemaReference("com.acme.Address", "address", 1)
    customer = await registry.register("customer", CUSTOMER, references=[reference])
    assert customer.references == (reference,)
    assert registry.referenced_by("address", 1) == [customer.id]
    data = registry.encode_confluent(customer.id, {"id": 1, "address": {"email": "a@b"}})
    assert registry.decode_confluent(data) == (
        customer.id,
        {"id": 1, "address": {"email": "a@b"}},
    )
    with pytest.raises(Unprocessable) as in_use:
        await registry.delete_version("address", 1)
    assert in_use.value.detail["reason"] is Reason.REFERENCE_EXISTS
    with pytest.raises(InvalidSchema, match="version 9, which does not exist"):
        await registry.register("c2", CUSTOMER, references=[SchemaReference("x", "address", 9)])
    with pytest.raises(InvalidSchema, match=r"unknown type 'com\.acme\.Address'"):
        await registry.register("c3", CUSTOMER)
    assert address.id != customer.id


async def test_json_references(registry: SchemaRegistry) -> None:
    await registry.register("address", '{"type": "object"}', "JSON")
    person = await registry.register(
        "person",
        '{"properties": {"home": {"$ref": "address.json"}}}',
        "JSON",
        [SchemaReference("address.json", "address", 1)],
    )
    with pytest.raises(InvalidSchema, match=r"at \$\.home$"):
        registry.encode_confluent(person.id, {"home": 5})


# -- the records v2 hot path -----------------------------------------------------------


async def test_encode_confluent_is_wire_format_avro(registry: SchemaRegistry) -> None:
    registered = await registry.register("s", V2)
    data = registry.encode_confluent(registered.id, {"id": 5, "email": "x"})
    assert data[:5] == b"\x00" + registered.id.to_bytes(4, "big")
    parsed = fastavro.parse_schema(json.loads(V2))
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed, None) == {"id": 5, "email": "x"}


async def test_encode_confluent_names_the_field(registry: SchemaRegistry) -> None:
    registered = await registry.register("s", V2)
    with pytest.raises(InvalidSchema) as caught:
        registry.encode_confluent(registered.id, {"id": 5, "email": 3})
    assert caught.value.message == "Expected string, got int 3 - at $.email"
    with pytest.raises(SchemaNotFound):
        registry.encode_confluent(99, {})


async def test_json_schema_encoding(registry: SchemaRegistry) -> None:
    registered = await registry.register("j", '{"type": "object", "required": ["a"]}', "JSON")
    assert registry.encode_confluent(registered.id, {"a": 1}) == (
        b"\x00" + registered.id.to_bytes(4, "big") + b'{"a":1}'
    )
    with pytest.raises(InvalidSchema, match="'a' is a required property - at \\$"):
        registry.encode_confluent(registered.id, {})


async def test_get_or_register_answers_repeats_without_parsing(
    registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await registry.get_or_register("s", V1)
    calls: list[str] = []
    real_parse = registry_module._parse

    def counting_parse(*args: Any) -> Any:
        calls.append("parse")
        return real_parse(*args)

    monkeypatch.setattr(registry_module, "_parse", counting_parse)
    for _ in range(100):
        assert await registry.get_or_register("s", V1) == first
    assert calls == []
    # Another subject is a registration: parsed once, then remembered too.
    await registry.get_or_register("t", V1)
    await registry.get_or_register("t", V1)
    assert calls == ["parse"]


async def test_full_name(registry: SchemaRegistry) -> None:
    assert registry.full_name(V1) == "com.acme.User"
    assert registry.full_name('"string"') is None
    assert registry.full_name('{"title": "com.acme.T"}', "JSON") == "com.acme.T"
    with pytest.raises(InvalidSchema):
        registry.full_name("{")


async def test_schema_types(registry: SchemaRegistry) -> None:
    assert registry.schema_types() == ["AVRO", "JSON"]


# -- several nodes at once -----------------------------------------------------------


async def test_two_nodes_registering_one_new_schema_at_once_get_one_id(log: Log) -> None:
    a, b = SchemaRegistry(log), SchemaRegistry(log)
    await a.load()
    await b.load()
    for round_ in range(10):
        schema = record(ID, name=f"Race{round_}")
        first, second = await asyncio.gather(
            a.register(f"race-{round_}", schema), b.register(f"race-{round_}", schema)
        )
        assert (first.id, first.version) == (second.id, second.version)
        assert first.version == 1


async def test_two_nodes_registering_different_schemas_at_once_get_two_ids(log: Log) -> None:
    a, b = SchemaRegistry(log), SchemaRegistry(log)
    await a.load()
    await b.load()
    for round_ in range(10):
        await a.set_compatibility_level(CompatibilityLevel.NONE, f"mixed-{round_}")
        first, second = await asyncio.gather(
            a.register(f"mixed-{round_}", record(ID, name=f"A{round_}")),
            b.register(f"mixed-{round_}", record(EMAIL, name=f"B{round_}")),
        )
        assert first.id != second.id
        assert {first.version, second.version} == {1, 2}
        replayed = SchemaRegistry(log)
        await replayed.load()
        for registered in (first, second):
            assert replayed.schema(registered.id).schema == registered.schema
            assert replayed.get_version(f"mixed-{round_}", registered.version) == registered
