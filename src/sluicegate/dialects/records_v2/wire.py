"""The records v2 request and response bodies, as the seed describes them."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "Header",
    "Payload",
    "ProduceRequest",
    "ProduceResponse",
    "SchemaInfo",
    "SchemaStrategy",
]

PayloadType = Literal["text", "binary", "json", "avro"]
SchemaStrategy = Literal["topic", "record", "topicrecord"]

# Decoded from and encoded to JSON, these never hold themselves: ``gc=False`` keeps the
# cyclic garbage collector from tracking (and walking) one set per request.


class Header(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    #: base64 of the header's bytes.
    value: str


class Payload(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A key or a value: its type, its data, and for ``avro`` its schema."""

    type: PayloadType
    #: Kept raw: ``json`` data is stored exactly as sent, without a decode/encode round.
    data: msgspec.Raw
    schema: str | None = None
    schema_name_strategy: SchemaStrategy | None = None


class ProduceRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    headers: list[Header] | None = None
    key: Payload | None = None
    value: Payload | None = None


class SchemaInfo(msgspec.Struct, gc=False):
    type: str
    schema_id: int
    schema_artifact_id: str


class ProduceResponse(msgspec.Struct, omit_defaults=True, gc=False):
    partition_id: int
    topic_name: str
    offset: int
    timestamp: str
    key: SchemaInfo | None = None
    value: SchemaInfo | None = None
