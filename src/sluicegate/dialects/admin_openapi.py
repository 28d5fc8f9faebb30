"""What the two admin API documents (topics; clients and keys) share: the error body,
credentials, the statuses any request may get, pages, and how a document is saved.

Bodies are described from the wire Structs themselves (``msgspec.json.schema_components``),
so a field added to a Struct shows in the document the next time it is built; the saved
``openapi.json`` files are kept equal to the built ones by a test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from sluicegate.http.pagination import DEFAULT_LIMIT, MAX_LIMIT

__all__ = [
    "COMMON_DESCRIPTION",
    "PAGE_PARAMETERS",
    "build",
    "errors",
    "json_body",
    "json_response",
    "list_response",
    "named_response",
    "operation",
    "path_parameter",
    "query_parameter",
    "ref",
    "save",
]

COMMON_DESCRIPTION = f"""\
Credentials: an API key or a JWT as `Authorization: Bearer ...`, or a TLS client
certificate mapped to a client. Every request without valid credentials is 401.

Errors are `{{"error": code, "message": text}}`: `error` is a stable code
(`bad_request`, `invalid_topic_name`, `unauthenticated`, `forbidden`, `not_found`,
`unknown_topic`, `method_not_allowed`, `conflict`, `topic_exists`, `payload_too_large`,
`rate_limited`, `storage_timeout`, `overloaded`, `shutting_down`, `storage_unavailable`,
`internal_error`...), `message` says what was wrong and where. 429 and 503 carry
`Retry-After`; 401 carries `WWW-Authenticate`; 405 carries `Allow`. A 500 gives only an
incident id; the server log has the details.

Lists come a page at a time, sorted (names; keys oldest first): `limit` items (default
{DEFAULT_LIMIT}, at most {MAX_LIMIT}), and while more follow, a `Link: <...>; rel="next"`
header (RFC 8288) whose URL, with an opaque `cursor`, fetches the next page; the last
page has no `Link`. The cursor holds the position after the last item shown, so a walk
lists every item that exists throughout it exactly once, whatever is created or deleted
meanwhile. A `cursor` this list did not give out is 400. Bodies are JSON, at most the
`topic_admin` / `admin` body limit (413 beyond it); unknown fields are 400."""

_STATUS_TEXT = {
    "400": "The request is malformed: a parameter, the body, or a name (message says which)",
    "401": "No credentials, or credentials that are unknown, revoked or expired",
    "403": "The client lacks the permission",
    "404": "No such resource",
    "406": "The Accept header excludes the only media type the operation answers with",
    "408": "Storage did not confirm the write in time; it is either done or not at all",
    "409": "Conflicts with what exists",
    "413": "The body is over the limit",
    "429": "Over the client's request rate or concurrency limit; see Retry-After",
    "500": "Internal error; the message holds an incident id for the server log",
    "503": "Shutting down, overloaded or storage unavailable; see Retry-After",
}
#: Any authenticated request may get these, whatever it asks for.
_ALWAYS = ("401", "429", "500", "503")


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(
    schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A response with a JSON body described by ``schema``."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def json_body(name: str, *, required: bool = True) -> dict[str, Any]:
    """A JSON request body described by the component schema ``name``."""
    return {"required": required, "content": {"application/json": {"schema": ref(name)}}}


def errors(*statuses: str) -> dict[str, Any]:
    """Error responses for ``statuses`` and for those every request may get."""
    every = sorted({*statuses, *_ALWAYS})
    return {status: json_response(ref("Error"), _STATUS_TEXT[status]) for status in every}


def path_parameter(name: str, pattern: str, description: str) -> dict[str, Any]:
    """A path parameter: a string matching ``pattern``."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
        "description": description,
    }


def query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PAGE_PARAMETERS = [
    query_parameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "Items on this page",
    ),
    query_parameter(
        "cursor",
        {"type": "string"},
        "Where the page starts: taken from the previous page's Link; absent or empty: the start",
    ),
]


def named_response(
    schema_name: str, description: str, status: str, *operation_ids: str
) -> dict[str, Any]:
    """``status`` with a ``schema_name`` body whose ``name`` the operations given take as
    their ``name`` path parameter: the links a stateful client follows from it."""
    response = json_response(ref(schema_name), description)
    response["links"] = {
        operation_id: {"operationId": operation_id, "parameters": {"name": "$response.body#/name"}}
        for operation_id in operation_ids
    }
    return {status: response}


def list_response(item: str, description: str) -> dict[str, Any]:
    """A page of ``item``s, with the ``Link`` to the next page while there is one."""
    link = {
        "description": 'The next page: `<URL>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    }
    return json_response({"type": "array", "items": ref(item)}, description, {"Link": link})


def operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    parameters: Iterable[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    """An operation; ``extra`` adds fields such as ``requestBody``."""
    built: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    listed = list(parameters)
    if listed:
        built["parameters"] = listed
    built["responses"] = responses
    built.update(extra)
    return built


def build(
    title: str, description: str, paths: dict[str, Any], structs: Iterable[type[Any]]
) -> dict[str, Any]:
    """The OpenAPI 3.1 document: ``paths``, and the JSON Schemas of ``structs``."""
    _, schemas = msgspec.json.schema_components(
        list(structs), ref_template="#/components/schemas/{name}"
    )
    schemas = _homogeneous_tuples(schemas)
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        "additionalProperties": False,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key or JWT"},
                "clientCertificate": {"type": "mutualTLS"},
            },
        },
        "security": [{"bearer": []}, {"clientCertificate": []}],
    }


def _homogeneous_tuples(schema: Any) -> Any:
    """``schema`` with tuples of one type (``[partition, offset]``) as plain arrays of it.

    msgspec describes ``tuple[int, int]`` with ``prefixItems``; OpenAPI tools still read
    ``items`` as draft 4 did and refuse it. For a tuple whose items share one type the
    two descriptions accept exactly the same arrays.
    """
    if isinstance(schema, list):
        return [_homogeneous_tuples(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    prefix = schema.get("prefixItems")
    if prefix and all(item == prefix[0] for item in prefix) and schema.get("items") is False:
        schema = {k: v for k, v in schema.items() if k != "prefixItems"} | {"items": prefix[0]}
    return {key: _homogeneous_tuples(value) for key, value in schema.items()}


def save(module_file: str, document: dict[str, Any]) -> None:
    """Write ``document`` as ``openapi.json`` beside the module that built it."""
    target = Path(module_file).with_name("openapi.json")
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
