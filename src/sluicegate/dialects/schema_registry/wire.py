"""Request and response bodies of Confluent's Schema Registry API, as its clients send and
read them. Unknown request fields (``metadata``, ``ruleSet``...) are ignored, as the
client's ``Confluent-Accept-Unknown-Properties: true`` header asks."""

from __future__ import annotations

import msgspec

__all__ = [
    "CompatibilityResponse",
    "ConfigRequest",
    "ConfigResponse",
    "ConfigUpdateResponse",
    "ErrorBody",
    "IdResponse",
    "ModeBody",
    "Reference",
    "SchemaByIdResponse",
    "SchemaRequest",
    "SubjectVersion",
    "SubjectVersionResponse",
]


class Reference(msgspec.Struct, frozen=True):
    name: str
    subject: str
    version: int


class SchemaRequest(msgspec.Struct, kw_only=True, rename="camel"):
    """The body of register, lookup and compatibility requests."""

    #: Missing means empty: refused as an invalid schema (42201), as Confluent does.
    schema: str = ""
    #: Absent or null means AVRO.
    schema_type: str | None = None
    references: list[Reference] | None = None


class IdResponse(msgspec.Struct):
    id: int


class SchemaByIdResponse(msgspec.Struct, omit_defaults=True, rename="camel"):
    schema: str
    #: Omitted for AVRO, as Confluent does.
    schema_type: str | None = None
    references: list[Reference] | None = None


class SubjectVersionResponse(msgspec.Struct, omit_defaults=True, rename="camel"):
    subject: str
    version: int
    id: int
    schema: str
    schema_type: str | None = None
    references: list[Reference] | None = None


class SubjectVersion(msgspec.Struct):
    subject: str
    version: int


class CompatibilityResponse(msgspec.Struct, omit_defaults=True):
    is_compatible: bool
    #: Only with ``?verbose=true``.
    messages: list[str] | None = None


class ConfigRequest(msgspec.Struct, kw_only=True, rename="camel"):
    compatibility: str | None = None
    #: Accepted as a synonym: what GET returns, so a GET body can be PUT back.
    compatibility_level: str | None = None


class ConfigResponse(msgspec.Struct, rename="camel"):
    compatibility_level: str


class ConfigUpdateResponse(msgspec.Struct):
    compatibility: str


class ModeBody(msgspec.Struct, kw_only=True):
    mode: str | None = None


class ErrorBody(msgspec.Struct):
    error_code: int
    message: str
