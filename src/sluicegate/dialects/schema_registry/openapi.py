"""The OpenAPI 3.1 document of the schema registry API, built here and saved as
``openapi.json`` beside it (``python -m sluicegate.dialects.schema_registry.openapi``
rewrites it; a test keeps the two equal)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sluicegate.core.schemas.compatibility import CompatibilityLevel

__all__ = ["build_document"]

_MEDIA = "application/vnd.schemaregistry.v1+json"

_DESCRIPTION = """\
Confluent Schema Registry's REST API over the gateway's one schema registry (Avro and JSON
Schema; PROTOBUF is refused with 422 / 42201). Confluent's clients and serializers work
unchanged: point them at the gateway's base URL (the same API is also under `/registry`).

Choices where Confluent leaves room or sluicegate differs:

* Request bodies are read as JSON whatever the Content-Type among
  `application/vnd.schemaregistry.v1+json`, `application/vnd.schemaregistry+json`,
  `application/json`, `application/octet-stream` or none; others are 415. At most 1 MiB
  (413). Unknown fields (`metadata`, `ruleSet`...) are ignored.
* A body that is not JSON, or JSON of the wrong shape, is 400 with `error_code` 400 (as
  Confluent's rest-utils); a schema that does not parse is 422 / 42201.
* An incompatible schema is 409 with `error_code` 409; the message lists every reason
  (`READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: ...`); `?verbose=true` on the
  compatibility endpoints returns them as `messages`.
* Schema identity: same type, same references and the same normal form (full names,
  sorted keys, no whitespace; unlike Avro's Parsing Canonical Form, defaults, aliases,
  docs and logical types count, because they change how data reads).
* JSON Schema compatibility is a documented, sound subset (see `json_compatibility.py`):
  compatible means every document the old (new) schema accepts is accepted by the new
  (old) one. As in Confluent, adding a property to an open content model is not backward
  compatible. Unlike Confluent, which compares combinators by keyword and branch, the
  writer's `oneOf`/`anyOf`/`allOf` are compared branch by branch (a `oneOf` of types and
  the same type list follow each other), and a reader's `oneOf` is compatible only where
  each writer document provably matches exactly one branch (Confluent calls an added
  branch compatible even where it overlaps another: documents matching two are invalid).
  Constraints the checker does not model (`propertyNames`, `dependencies`,
  `if`/`then`/`else`...) may be dropped; added or changed, they must be provably met by
  every writer document (e.g. `propertyNames` matching every name a closed schema
  declares), else the change is refused and the keyword named. A comparison too large
  to finish (nested combinators) is refused as `SCHEMAS_TOO_COMPLEX`.
* Modes other than READWRITE, imports, contexts other than the default and associations
  are not offered: `/associations/...` answers 404 / 40410, so clients fall back to their
  subject name strategy.
* An id resolves (`GET /schemas/ids/{id}`) while a subject version holds it, soft-deleted
  ones included; a permanent delete of the last one removes it (40403), as in Confluent's
  registry. The same schema registered again gets the same id back (Confluent: a new one).

Errors are `{"error_code": int, "message": str}`; codes: 40401 subject not found, 40402
version not found, 40403 schema not found, 40404 subject soft-deleted, 40405 subject not
soft-deleted before a permanent delete, 40406 version soft-deleted, 40407 version not
soft-deleted before a permanent delete, 40408 no subject-level compatibility, 40410 no
association, 409 incompatible schema, 42201 invalid schema, 42202 invalid version, 42203
invalid compatibility level, 42204 invalid mode, 42206 schema still referenced, 42208
invalid subject, 50001 internal error, 50002 storage timeout; other errors carry their
HTTP status (400, 401, 403, 404, 405, 413, 415, 429, 503)."""

#: The console's level picker reads them from here (``Config``'s enum).
_LEVELS = [level.value for level in CompatibilityLevel]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_MEDIA: {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    descriptions = {
        "400": "Malformed body or query parameter (error_code 400)",
        "404": "Not found (40401, 40402, 40403, 40404, 40406, 40408...)",
        "409": "Incompatible schema (error_code 409)",
        "413": "Body over 1 MiB",
        "415": "Unsupported Content-Type",
        "422": "Invalid schema, version, subject or level (42201, 42202, 42203, 42208...)",
    }
    return {code: _json(_ref("Error"), descriptions[code]) for code in codes}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_SUBJECT = _param("subject", "path", {"type": "string"}, "Subject name (1-1024 characters)")
_VERSION = _param(
    "version",
    "path",
    {"type": "string"},
    'Version number 1..2^31-1, "latest" or -1 (latest)',
)
_ID = _param("id", "path", {"type": "integer", "minimum": 0}, "Global schema id")


def _flag(name: str, description: str) -> dict[str, Any]:
    """A boolean query parameter: ``true`` or ``false`` in any case; anything else is 400."""
    return _param(name, "query", {"type": "boolean", "default": False}, description)


_DELETED = _flag("deleted", "Include soft-deleted versions")
_PAGE = [
    _param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Skip this many"),
    _param(
        "limit",
        "query",
        {"type": "integer", "minimum": -1, "default": -1},
        "At most this many (-1: all)",
    ),
]
_SCHEMA_BODY = {"required": True, "content": {_MEDIA: {"schema": _ref("SchemaRequest")}}}
_CONFIG_BODY = {"required": True, "content": {_MEDIA: {"schema": _ref("ConfigRequest")}}}
_MODE_BODY = {"required": True, "content": {_MEDIA: {"schema": _ref("ModeRequest")}}}
_TEXT = {"description": "The schema text itself", "content": {_MEDIA: {"schema": {}}}}


def _op(summary: str, responses: dict[str, Any], *parameters: Any, **extra: Any) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for parameter in parameters:
        flat.extend(parameter if isinstance(parameter, list) else [parameter])
    if any(p["in"] == "query" for p in flat) and "400" not in responses:
        # A flag that is not true/false, or a number that is not one, is refused.
        responses = {**responses, **_errors("400")}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if flat:
        operation["parameters"] = flat
    operation.update(extra)
    return operation


def _paths() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    ints = {"type": "array", "items": {"type": "integer"}}
    return {
        "/schemas": {
            "get": _op(
                "Schemas of every subject version",
                {"200": _json({"type": "array", "items": _ref("SubjectVersionSchema")})},
                _param("subjectPrefix", "query", {"type": "string"}, "Only these subjects"),
                _DELETED,
                _flag("latestOnly", "Only each subject's latest version"),
                _PAGE,
            )
        },
        "/schemas/types": {"get": _op("Schema types accepted", {"200": _json(strings)})},
        "/schemas/ids/{id}": {
            "get": _op(
                "The schema with a global id",
                {"200": _json(_ref("SchemaById")), **_errors("404")},
                _ID,
                _param("subject", "query", {"type": "string"}, "Accepted and ignored"),
                _param("format", "query", {"type": "string"}, "Accepted and ignored"),
            )
        },
        "/schemas/ids/{id}/schema": {
            "get": _op("The schema text of an id", {"200": _TEXT, **_errors("404")}, _ID)
        },
        "/schemas/ids/{id}/subjects": {
            "get": _op(
                "Subjects using an id",
                {"200": _json(strings), **_errors("404")},
                _ID,
                _param("subject", "query", {"type": "string"}, "Only this subject"),
                _DELETED,
                _PAGE,
            )
        },
        "/schemas/ids/{id}/versions": {
            "get": _op(
                "Subject versions using an id",
                {
                    "200": _json({"type": "array", "items": _ref("SubjectVersion")}),
                    **_errors("404"),
                },
                _ID,
                _param("subject", "query", {"type": "string"}, "Only this subject"),
                _DELETED,
                _PAGE,
            )
        },
        "/subjects": {
            "get": _op(
                "Subjects with a live version",
                {"200": _json(strings), **_errors("400")},
                _param(
                    "subjectPrefix", "query", {"type": "string"}, 'Only these (":*:" means all)'
                ),
                _flag("deleted", "Include soft-deleted subjects"),
                _flag("deleted_only", "Only soft-deleted subjects"),
                _flag("deletedOnly", "Synonym of deleted_only"),
                _PAGE,
            )
        },
        "/subjects/{subject}": {
            "post": _op(
                "Find the version of a subject that holds a schema",
                {"200": _json(_ref("SubjectVersionSchema")), **_errors("400", "404", "422")},
                _SUBJECT,
                _DELETED,
                _flag("normalize", "Accepted; lookups always compare normal forms"),
                requestBody=_SCHEMA_BODY,
            ),
            "delete": _op(
                "Soft-delete a subject, or permanently delete a soft-deleted one",
                {"200": _json(ints, "The versions deleted"), **_errors("404", "422")},
                _SUBJECT,
                _flag("permanent", "Hard delete (needs a soft delete first)"),
            ),
        },
        "/subjects/{subject}/versions": {
            "get": _op(
                "Versions of a subject",
                {"200": _json(ints), **_errors("404")},
                _SUBJECT,
                _DELETED,
                _flag("deleted_only", "Only soft-deleted versions"),
                _flag("deletedOnly", "Synonym of deleted_only"),
                _PAGE,
            ),
            "post": _op(
                "Register a schema (or get the version that has it)",
                {
                    "200": _json(_ref("SchemaId")),
                    **_errors("400", "409", "413", "415", "422"),
                },
                _SUBJECT,
                _flag("normalize", "Store the normal form instead of the text sent"),
                requestBody=_SCHEMA_BODY,
            ),
        },
        "/subjects/{subject}/versions/{version}": {
            "get": _op(
                "One version of a subject",
                {"200": _json(_ref("SubjectVersionSchema")), **_errors("404", "422")},
                _SUBJECT,
                _VERSION,
                _DELETED,
            ),
            "delete": _op(
                "Soft-delete a version, or permanently delete a soft-deleted one",
                {"200": _json({"type": "integer"}, "The version deleted"), **_errors("404", "422")},
                _SUBJECT,
                _VERSION,
                _flag("permanent", "Hard delete (needs a soft delete first)"),
            ),
        },
        "/subjects/{subject}/versions/{version}/schema": {
            "get": _op(
                "The schema text of a version",
                {"200": _TEXT, **_errors("404", "422")},
                _SUBJECT,
                _VERSION,
                _DELETED,
            )
        },
        "/subjects/{subject}/versions/{version}/referencedby": {
            "get": _op(
                "Ids of live schemas that reference a version",
                {"200": _json(ints), **_errors("404", "422")},
                _SUBJECT,
                _VERSION,
                _PAGE,
            )
        },
        "/compatibility/subjects/{subject}/versions/{version}": {
            "post": _op(
                "Test a schema against one version (latest with no versions: compatible)",
                {"200": _json(_ref("Compatibility")), **_errors("400", "404", "422")},
                _SUBJECT,
                _VERSION,
                _flag("verbose", "Return the reasons as messages"),
                _flag("normalize", "Accepted; compatibility never depends on it"),
                requestBody=_SCHEMA_BODY,
            )
        },
        "/compatibility/subjects/{subject}/versions": {
            "post": _op(
                "Test a schema against the versions the subject's level checks",
                {"200": _json(_ref("Compatibility")), **_errors("400", "422")},
                _SUBJECT,
                _flag("verbose", "Return the reasons as messages"),
                _flag("normalize", "Accepted; compatibility never depends on it"),
                requestBody=_SCHEMA_BODY,
            )
        },
        "/config": {
            "get": _op("The global compatibility level", {"200": _json(_ref("Config"))}),
            "put": _op(
                "Set the global compatibility level",
                {"200": _json(_ref("ConfigUpdate")), **_errors("400", "422")},
                requestBody=_CONFIG_BODY,
            ),
            "delete": _op(
                "Reset the global level to BACKWARD; returns the previous one",
                {"200": _json(_ref("Config"))},
            ),
        },
        "/config/{subject}": {
            "get": _op(
                "A subject's compatibility level",
                {"200": _json(_ref("Config")), **_errors("404")},
                _SUBJECT,
                _flag("defaultToGlobal", "Answer the global level if the subject has none"),
            ),
            "put": _op(
                "Set a subject's compatibility level",
                {"200": _json(_ref("ConfigUpdate")), **_errors("400", "422")},
                _SUBJECT,
                requestBody=_CONFIG_BODY,
            ),
            "delete": _op(
                "Remove a subject's level (it follows the global one); returns it",
                {"200": _json(_ref("Config")), **_errors("404")},
                _SUBJECT,
            ),
        },
        "/mode": {
            "get": _op("Always READWRITE", {"200": _json(_ref("Mode"))}),
            "put": _op(
                "Only READWRITE is accepted",
                {"200": _json(_ref("Mode")), **_errors("400", "422")},
                requestBody=_MODE_BODY,
            ),
        },
        "/mode/{subject}": {
            "get": _op("Always READWRITE", {"200": _json(_ref("Mode"))}, _SUBJECT),
            "put": _op(
                "Only READWRITE is accepted",
                {"200": _json(_ref("Mode")), **_errors("400", "422")},
                _SUBJECT,
                requestBody=_MODE_BODY,
            ),
        },
        "/contexts": {"get": _op("Only the default context", {"200": _json(strings)})},
        "/associations/resources/{namespace}/{name}": {
            "get": _op(
                "No associations are kept: always 404 / 40410",
                _errors("404"),
                _param("namespace", "path", {"type": "string"}, "Kafka cluster id or -"),
                _param("name", "path", {"type": "string"}, "Resource (topic) name"),
            )
        },
    }


def _components() -> dict[str, Any]:
    reference = {
        "type": "object",
        "required": ["name", "subject", "version"],
        "properties": {
            "name": {"type": "string", "description": "Avro full name or JSON Schema $ref URI"},
            "subject": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
        },
    }
    schema_type = {"type": "string", "enum": ["AVRO", "JSON"], "description": "Absent: AVRO"}
    references = {"type": "array", "items": _ref("Reference")}
    return {
        "Reference": reference,
        "SchemaRequest": {
            "type": "object",
            "properties": {
                "schema": {"type": "string", "description": "The schema, as JSON text"},
                "schemaType": {**schema_type, "type": ["string", "null"]},
                "references": references,
            },
        },
        "SchemaId": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer"}},
        },
        "SchemaById": {
            "type": "object",
            "required": ["schema"],
            "properties": {
                "schema": {"type": "string"},
                "schemaType": schema_type,
                "references": references,
            },
        },
        "SubjectVersion": {
            "type": "object",
            "required": ["subject", "version"],
            "properties": {"subject": {"type": "string"}, "version": {"type": "integer"}},
        },
        "SubjectVersionSchema": {
            "type": "object",
            "required": ["subject", "version", "id", "schema"],
            "properties": {
                "subject": {"type": "string"},
                "version": {"type": "integer"},
                "id": {"type": "integer"},
                "schema": {"type": "string"},
                "schemaType": schema_type,
                "references": references,
            },
        },
        "Compatibility": {
            "type": "object",
            "required": ["is_compatible"],
            "properties": {
                "is_compatible": {"type": "boolean"},
                "messages": {"type": "array", "items": {"type": "string"}},
            },
        },
        "ConfigRequest": {
            "type": "object",
            "properties": {
                "compatibility": {
                    "type": ["string", "null"],
                    "description": f"One of {', '.join(_LEVELS)}, in any case",
                },
                "compatibilityLevel": {"type": ["string", "null"], "description": "Synonym"},
            },
        },
        "Config": {
            "type": "object",
            "required": ["compatibilityLevel"],
            "properties": {"compatibilityLevel": {"type": "string", "enum": _LEVELS}},
        },
        "ConfigUpdate": {
            "type": "object",
            "required": ["compatibility"],
            "properties": {"compatibility": {"type": "string", "enum": _LEVELS}},
        },
        "Mode": {"type": "object", "properties": {"mode": {"type": "string"}}},
        "ModeRequest": {
            "type": "object",
            "properties": {"mode": {"type": ["string", "null"], "description": "READWRITE"}},
        },
        "Error": {
            "type": "object",
            "required": ["error_code", "message"],
            "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
        },
    }


def _operation_id(method: str, path: str) -> str:
    """``get /subjects/{subject}/versions`` → ``getSubjectsBySubjectVersions``."""
    words = [method]
    for segment in path.strip("/").split("/"):
        if segment.startswith("{"):
            words.append("By" + segment[1:-1].capitalize())
        else:
            words.extend(part.capitalize() for part in segment.split("_"))
    return "".join(words)


_SUBJECT_OF_REQUEST = {"subject": "$request.path.subject"}
_VERSION_OF_BODY = {"subject": "$response.body#/subject", "version": "$response.body#/version"}
_ID_OF_BODY = {"id": "$response.body#/id"}

#: (path, method, status) → {target path: its parameters}: where a stateful run goes next
#: with what a response named (a registered schema's subject and id, a listed subject...).
_LINKS: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, str]]] = {
    ("/subjects/{subject}/versions", "post", "200"): {
        ("/schemas/ids/{id}", "get"): _ID_OF_BODY,
        ("/schemas/ids/{id}/schema", "get"): _ID_OF_BODY,
        ("/schemas/ids/{id}/subjects", "get"): _ID_OF_BODY,
        ("/schemas/ids/{id}/versions", "get"): _ID_OF_BODY,
        ("/subjects/{subject}/versions", "get"): _SUBJECT_OF_REQUEST,
        ("/subjects/{subject}/versions/{version}", "get"): {
            **_SUBJECT_OF_REQUEST,
            "version": "latest",
        },
        ("/subjects/{subject}", "post"): _SUBJECT_OF_REQUEST,
        ("/subjects/{subject}", "delete"): _SUBJECT_OF_REQUEST,
        ("/compatibility/subjects/{subject}/versions", "post"): _SUBJECT_OF_REQUEST,
        ("/config/{subject}", "put"): _SUBJECT_OF_REQUEST,
        ("/config/{subject}", "get"): _SUBJECT_OF_REQUEST,
    },
    ("/subjects/{subject}/versions/{version}", "get", "200"): {
        ("/subjects/{subject}/versions/{version}/schema", "get"): _VERSION_OF_BODY,
        ("/subjects/{subject}/versions/{version}/referencedby", "get"): _VERSION_OF_BODY,
        ("/compatibility/subjects/{subject}/versions/{version}", "post"): _VERSION_OF_BODY,
        ("/subjects/{subject}/versions/{version}", "delete"): _VERSION_OF_BODY,
        ("/schemas/ids/{id}", "get"): _ID_OF_BODY,
    },
    ("/subjects/{subject}", "post", "200"): {
        ("/subjects/{subject}/versions/{version}", "get"): _VERSION_OF_BODY,
    },
    ("/subjects", "get", "200"): {
        ("/subjects/{subject}/versions", "get"): {"subject": "$response.body#/0"},
    },
    ("/subjects/{subject}/versions", "get", "200"): {
        ("/subjects/{subject}/versions/{version}", "get"): {
            **_SUBJECT_OF_REQUEST,
            "version": "$response.body#/0",
        },
    },
}


def _with_ids_and_links(paths: dict[str, Any]) -> dict[str, Any]:
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation["operationId"] = _operation_id(method, path)
    for (path, method, status), targets in _LINKS.items():
        paths[path][method]["responses"][status]["links"] = {
            _operation_id(target_method, target): {
                "operationId": _operation_id(target_method, target),
                "parameters": parameters,
            }
            for (target, target_method), parameters in targets.items()
        }
    return paths


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sluicegate schema registry (Confluent-compatible)",
            "version": "1",
            "description": _DESCRIPTION,
        },
        "paths": _with_ids_and_links(_paths()),
        "components": {"schemas": _components()},
    }


def _write() -> None:
    target = Path(__file__).with_name("openapi.json")
    target.write_text(json.dumps(build_document(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _write()
