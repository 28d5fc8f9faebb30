"""Confluent Schema Registry's REST API: the paths, parameters and bodies its clients use.

Mounted at the root (``routes(registry)``), so ``SchemaRegistryClient("http://host:port")``
works as is; Confluent's paths (``/schemas``, ``/subjects``, ``/config``, ``/compatibility``,
``/mode``, ``/contexts``, ``/associations``) clash with no other dialect. The same routes
can be mounted again under a prefix (``routes(registry, prefix="/registry")``).

Bodies: any of Confluent's media types, ``application/json``, ``application/octet-stream``
or none is read as JSON (Confluent is as lenient), within ``limits.max_body_bytes.schema_registry``
(1 MiB by default) and the JSON shape limits. A body that
is not JSON, or JSON of the wrong shape, is 400 with ``error_code`` 400 (Confluent's
rest-utils do the same); a schema that does not parse is 422 / 42201.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from sluicegate.core.schemas.compatibility import CompatibilityLevel, parse_level
from sluicegate.core.schemas.model import (
    RegisteredSchema,
    SchemaReference,
    SchemaType,
    Version,
    parse_version,
)
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.dialects.schema_registry.errors import (
    ASSOCIATION_NOT_FOUND,
    CONTENT_TYPE,
    INVALID_MODE,
    render_error,
)
from sluicegate.dialects.schema_registry.wire import (
    CompatibilityResponse,
    ConfigRequest,
    ConfigResponse,
    ConfigUpdateResponse,
    IdResponse,
    ModeBody,
    Reference,
    SchemaByIdResponse,
    SchemaRequest,
    SubjectVersion,
    SubjectVersionResponse,
)
from sluicegate.errors import (
    BadRequest,
    NotFound,
    SchemaNotFound,
    Unprocessable,
    UnsupportedMediaType,
)
from sluicegate.http.json_body import decode_json
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Endpoint, Route

__all__ = ["DIALECT", "SchemaRegistryApi", "routes"]

DIALECT = "schema_registry"
_MEDIA_TYPES = frozenset(
    {
        "",
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/octet-stream",
    }
)
_MODES = frozenset({"READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"})
#: Confluent's default ``subjectPrefix``: every subject of the default context.
_ALL_SUBJECTS = ":*:"

T = TypeVar("T")


def routes(registry: SchemaRegistry, *, prefix: str = "") -> list[Route]:
    """The API's routes over ``registry``, under ``prefix`` (``""``: Confluent's own paths)."""
    api = SchemaRegistryApi(registry)
    table: list[tuple[str, Endpoint, str]] = [
        ("/schemas", api.list_schemas, "GET"),
        ("/schemas/types", api.schema_types, "GET"),
        ("/schemas/ids/{id}", api.schema_by_id, "GET"),
        ("/schemas/ids/{id}/schema", api.raw_schema_by_id, "GET"),
        ("/schemas/ids/{id}/subjects", api.subjects_by_id, "GET"),
        ("/schemas/ids/{id}/versions", api.versions_by_id, "GET"),
        ("/subjects", api.list_subjects, "GET"),
        ("/subjects/{subject}", api.lookup, "POST"),
        ("/subjects/{subject}", api.delete_subject, "DELETE"),
        ("/subjects/{subject}/versions", api.list_versions, "GET"),
        ("/subjects/{subject}/versions", api.register, "POST"),
        ("/subjects/{subject}/versions/{version}", api.get_version, "GET"),
        ("/subjects/{subject}/versions/{version}", api.delete_version, "DELETE"),
        ("/subjects/{subject}/versions/{version}/schema", api.raw_schema_by_version, "GET"),
        ("/subjects/{subject}/versions/{version}/referencedby", api.referenced_by, "GET"),
        ("/compatibility/subjects/{subject}/versions", api.check_all, "POST"),
        ("/compatibility/subjects/{subject}/versions/{version}", api.check_version, "POST"),
        ("/config", api.get_global_config, "GET"),
        ("/config", api.set_global_config, "PUT"),
        ("/config", api.delete_global_config, "DELETE"),
        ("/config/{subject}", api.get_subject_config, "GET"),
        ("/config/{subject}", api.set_subject_config, "PUT"),
        ("/config/{subject}", api.delete_subject_config, "DELETE"),
        ("/mode", api.get_mode, "GET"),
        ("/mode", api.set_mode, "PUT"),
        ("/mode/{subject}", api.get_mode, "GET"),
        ("/mode/{subject}", api.set_mode, "PUT"),
        ("/contexts", api.contexts, "GET"),
        ("/associations/resources/{namespace}/{name}", api.associations, "GET"),
    ]
    return [
        Route(
            prefix + path,
            endpoint,
            methods=frozenset({method}),
            render_error=render_error,
            dialect=DIALECT,
        )
        for path, endpoint, method in table
    ]


def _respond(content: object, status: int = 200) -> Response:
    return json_response(content, status, content_type=CONTENT_TYPE)


class SchemaRegistryApi:
    """The endpoints; each parses its request, calls the registry and shapes the answer."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._schema_request = msgspec.json.Decoder(SchemaRequest).decode
        self._config_request = msgspec.json.Decoder(ConfigRequest).decode
        self._mode_request = msgspec.json.Decoder(ModeBody).decode

    # -- schemas by id ---------------------------------------------------------------

    async def schema_types(self, request: Request) -> Response:
        """``GET /schemas/types``."""
        return _respond(self._registry.schema_types())

    async def schema_by_id(self, request: Request) -> Response:
        """``GET /schemas/ids/{id}``: the schema, its type (omitted for AVRO) and references."""
        schema = self._registry.schema(_schema_id(request))
        return _respond(
            SchemaByIdResponse(
                schema=schema.schema,
                schema_type=_type_field(schema.schema_type),
                references=_references_field(schema.references),
            )
        )

    async def raw_schema_by_id(self, request: Request) -> Response:
        """``GET /schemas/ids/{id}/schema``: the schema text alone."""
        return Response(
            self._registry.schema(_schema_id(request)).schema.encode(), content_type=CONTENT_TYPE
        )

    async def subjects_by_id(self, request: Request) -> Response:
        """``GET /schemas/ids/{id}/subjects``."""
        subjects = self._registry.subjects_for_id(
            _schema_id(request), deleted=_flag(request, "deleted")
        )
        wanted = request.query_param("subject")
        if wanted:
            subjects = [s for s in subjects if s == wanted]
        return _respond(_page(request, subjects))

    async def versions_by_id(self, request: Request) -> Response:
        """``GET /schemas/ids/{id}/versions``: ``[{subject, version}]``."""
        pairs = self._registry.versions_for_id(
            _schema_id(request), deleted=_flag(request, "deleted")
        )
        wanted = request.query_param("subject")
        found = [SubjectVersion(s, v) for s, v in pairs if not wanted or s == wanted]
        return _respond(_page(request, found))

    async def list_schemas(self, request: Request) -> Response:
        """``GET /schemas``: every subject version with its schema."""
        deleted = _flag(request, "deleted")
        latest_only = _flag(request, "latestOnly")
        found: list[SubjectVersionResponse] = []
        for subject in self._registry.subjects(deleted=deleted, prefix=_prefix(request)):
            versions = self._registry.versions(subject, deleted=deleted)
            for version in versions[-1:] if latest_only else versions:
                found.append(
                    _subject_version(self._registry.get_version(subject, version, deleted=True))
                )
        return _respond(_page(request, found))

    # -- subjects --------------------------------------------------------------------

    async def list_subjects(self, request: Request) -> Response:
        """``GET /subjects``."""
        subjects = self._registry.subjects(
            deleted=_flag(request, "deleted"),
            deleted_only=_flag(request, "deleted_only") or _flag(request, "deletedOnly"),
            prefix=_prefix(request),
        )
        return _respond(_page(request, subjects))

    async def list_versions(self, request: Request) -> Response:
        """``GET /subjects/{subject}/versions``."""
        versions = self._registry.versions(
            request.path_params["subject"],
            deleted=_flag(request, "deleted"),
            deleted_only=_flag(request, "deleted_only") or _flag(request, "deletedOnly"),
        )
        return _respond(_page(request, versions))

    async def register(self, request: Request) -> Response:
        """``POST /subjects/{subject}/versions``: ``{id}``."""
        body = await self._body(request, self._schema_request)
        registered = await self._registry.register(
            request.path_params["subject"],
            body.schema,
            body.schema_type or SchemaType.AVRO,
            _references(body.references),
            normalize=_flag(request, "normalize"),
        )
        return _respond(IdResponse(id=registered.id))

    async def lookup(self, request: Request) -> Response:
        """``POST /subjects/{subject}``: the version that holds the schema."""
        body = await self._body(request, self._schema_request)
        registered = self._registry.lookup(
            request.path_params["subject"],
            body.schema,
            body.schema_type or SchemaType.AVRO,
            _references(body.references),
            deleted=_flag(request, "deleted"),
        )
        return _respond(_subject_version(registered))

    async def get_version(self, request: Request) -> Response:
        """``GET /subjects/{subject}/versions/{version}``."""
        registered = self._registry.get_version(
            request.path_params["subject"],
            parse_version(request.path_params["version"]),
            deleted=_flag(request, "deleted"),
        )
        return _respond(_subject_version(registered))

    async def raw_schema_by_version(self, request: Request) -> Response:
        """``GET /subjects/{subject}/versions/{version}/schema``."""
        registered = self._registry.get_version(
            request.path_params["subject"],
            parse_version(request.path_params["version"]),
            deleted=_flag(request, "deleted"),
        )
        return Response(registered.schema.encode(), content_type=CONTENT_TYPE)

    async def referenced_by(self, request: Request) -> Response:
        """``GET /subjects/{subject}/versions/{version}/referencedby``."""
        ids = self._registry.referenced_by(
            request.path_params["subject"], parse_version(request.path_params["version"])
        )
        return _respond(_page(request, ids))

    async def delete_subject(self, request: Request) -> Response:
        """``DELETE /subjects/{subject}``: the versions deleted."""
        versions = await self._registry.delete_subject(
            request.path_params["subject"], permanent=_flag(request, "permanent")
        )
        return _respond(versions)

    async def delete_version(self, request: Request) -> Response:
        """``DELETE /subjects/{subject}/versions/{version}``: the version deleted."""
        version = await self._registry.delete_version(
            request.path_params["subject"],
            parse_version(request.path_params["version"]),
            permanent=_flag(request, "permanent"),
        )
        return _respond(version)

    # -- compatibility ---------------------------------------------------------------

    async def check_version(self, request: Request) -> Response:
        """``POST /compatibility/subjects/{subject}/versions/{version}``."""
        return await self._compatibility(request, parse_version(request.path_params["version"]))

    async def check_all(self, request: Request) -> Response:
        """``POST /compatibility/subjects/{subject}/versions``."""
        return await self._compatibility(request, None)

    async def _compatibility(self, request: Request, version: Version | None) -> Response:
        body = await self._body(request, self._schema_request)
        messages = self._registry.check_compatibility(
            request.path_params["subject"],
            body.schema,
            body.schema_type or SchemaType.AVRO,
            _references(body.references),
            version=version,
        )
        verbose = _flag(request, "verbose")
        return _respond(
            CompatibilityResponse(
                is_compatible=not messages, messages=messages if verbose else None
            )
        )

    # -- configuration and mode ------------------------------------------------------

    async def get_global_config(self, request: Request) -> Response:
        """``GET /config``."""
        return _respond(ConfigResponse(self._registry.compatibility_level()))

    async def set_global_config(self, request: Request) -> Response:
        """``PUT /config``."""
        level = await self._level(request)
        return _respond(ConfigUpdateResponse(await self._registry.set_compatibility_level(level)))

    async def delete_global_config(self, request: Request) -> Response:
        """``DELETE /config``: back to the default; answers the old level."""
        return _respond(ConfigResponse(await self._registry.delete_compatibility_level()))

    async def get_subject_config(self, request: Request) -> Response:
        """``GET /config/{subject}`` (``defaultToGlobal`` falls back)."""
        level = self._registry.compatibility_level(
            request.path_params["subject"], default_to_global=_flag(request, "defaultToGlobal")
        )
        return _respond(ConfigResponse(level))

    async def set_subject_config(self, request: Request) -> Response:
        """``PUT /config/{subject}``."""
        level = await self._level(request)
        subject = request.path_params["subject"]
        return _respond(
            ConfigUpdateResponse(await self._registry.set_compatibility_level(level, subject))
        )

    async def delete_subject_config(self, request: Request) -> Response:
        """``DELETE /config/{subject}``: answers the level removed."""
        level = await self._registry.delete_compatibility_level(request.path_params["subject"])
        return _respond(ConfigResponse(level))

    async def _level(self, request: Request) -> CompatibilityLevel:
        body = await self._body(request, self._config_request)
        return parse_level(body.compatibility or body.compatibility_level)

    async def get_mode(self, request: Request) -> Response:
        """``GET /mode`` and ``/mode/{subject}``: always READWRITE."""
        # Imports and read-only modes are not offered: the registry is always writable.
        return _respond(ModeBody(mode="READWRITE"))

    async def set_mode(self, request: Request) -> Response:
        """``PUT /mode`` and ``/mode/{subject}``: only READWRITE is accepted."""
        body = await self._body(request, self._mode_request)
        mode = (body.mode or "").upper()
        if mode == "READWRITE":
            return _respond(ModeBody(mode=mode))
        if mode in _MODES:
            raise Unprocessable(
                f"mode {mode} is not supported: this registry is always READWRITE",
                reason=INVALID_MODE,
            )
        raise Unprocessable(
            "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE, and IMPORT",
            reason=INVALID_MODE,
        )

    async def contexts(self, request: Request) -> Response:
        """``GET /contexts``: the default context only."""
        return _respond(["."])

    async def associations(self, request: Request) -> Response:
        """``GET /associations/resources/{namespace}/{name}``: always 404."""
        # Without associations, clients fall back to their subject name strategy on 404.
        raise NotFound(
            f"Association for '{request.path_params['name']}' not found.",
            reason=ASSOCIATION_NOT_FOUND,
        )

    # -- request parsing -------------------------------------------------------------

    async def _body(self, request: Request, decode: Callable[[bytes], T]) -> T:
        if request.media_type not in _MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"unsupported Content-Type {request.media_type!r}: expected "
                "application/vnd.schemaregistry.v1+json or application/json"
            )
        return decode_json(await request.body(json=True), decode)


def _schema_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 10:
        raise SchemaNotFound(f"Schema {raw} not found")
    return int(raw)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_param(name)
    if raw is None:
        return False
    # Any case: Confluent's Python client formats booleans with str(), "True"/"False".
    value = raw.lower()
    if value not in ("true", "false"):
        raise BadRequest(f"query parameter {name} must be true or false, got {raw!r}")
    return value == "true"


def _prefix(request: Request) -> str:
    prefix = request.query_param("subjectPrefix") or ""
    return "" if prefix == _ALL_SUBJECTS else prefix


def _page(request: Request, items: Sequence[T]) -> list[T]:
    offset = _int_param(request, "offset", 0)
    limit = _int_param(request, "limit", -1)
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}")
    if limit < -1:
        raise BadRequest(f"limit must be -1 (all) or more, got {limit}")
    return list(items[offset:] if limit < 0 else items[offset : offset + limit])


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_param(name)
    if raw is None:
        return default
    try:
        # int() alone would take " 5", "+5" and "1_000"; the document says digits.
        if not raw.lstrip("-").isdigit():
            raise ValueError(raw)
        return int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer, got {raw!r}") from None


def _references(references: list[Reference] | None) -> list[SchemaReference]:
    return [SchemaReference(r.name, r.subject, r.version) for r in references or ()]


def _references_field(references: Sequence[SchemaReference]) -> list[Reference] | None:
    return [Reference(r.name, r.subject, r.version) for r in references] or None


def _type_field(schema_type: SchemaType) -> str | None:
    return None if schema_type is SchemaType.AVRO else schema_type.value


def _subject_version(registered: RegisteredSchema) -> SubjectVersionResponse:
    return SubjectVersionResponse(
        subject=registered.subject,
        version=registered.version,
        id=registered.id,
        schema=registered.schema,
        schema_type=_type_field(registered.schema_type),
        references=_references_field(registered.references),
    )
