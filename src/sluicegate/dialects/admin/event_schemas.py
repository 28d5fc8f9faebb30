"""``/admin/v1/cloudevents/types/{type}/schema``: an event type's data schema.

``PUT`` registers a JSON Schema (the body is the schema itself) as the type's latest
data schema, ``GET`` shows it, ``DELETE`` removes it (every version). The schema lives in
the registry subject ``ce.type.<type>`` (``core/cloudevents/schemas.py``). A type may
hold ``/``: the path parameter takes everything up to the last ``/schema``. Every
endpoint needs the admin permission on ``*``.
"""

from __future__ import annotations

import msgspec

from sluicegate.core.cloudevents.schemas import EventSchemas
from sluicegate.core.schemas.model import RegisteredSchema
from sluicegate.dialects.admin.access import require_admin
from sluicegate.errors import NotFound, SubjectNotFound
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response
from sluicegate.http.router import Route

__all__ = ["TypeSchemaOut", "routes"]

PATH = "/admin/v1/cloudevents/types/{type:path}/schema"


class TypeSchemaOut(msgspec.Struct, frozen=True):
    """An event type's data schema as registered."""

    type: str
    #: The registry subject holding it (``ce.type.<type>``).
    subject: str
    id: int
    version: int
    #: The JSON Schema, with the ``$schema`` of its draft.
    schema: msgspec.Raw


def _out(event_type: str, registered: RegisteredSchema) -> TypeSchemaOut:
    return TypeSchemaOut(
        type=event_type,
        subject=registered.subject,
        id=registered.id,
        version=registered.version,
        schema=msgspec.Raw(registered.schema.encode()),
    )


def _no_schema(event_type: str) -> NotFound:
    return NotFound(f"event type {event_type!r} has no data schema")


class TypeSchemasAdmin:
    """The endpoints, over the gateway's ``EventSchemas``."""

    def __init__(self, schemas: EventSchemas) -> None:
        self._schemas = schemas

    async def put(self, request: Request) -> Response:
        """Register the body as the type's data schema; 200 with what was registered."""
        require_admin(request)
        event_type = request.path_params["type"]
        text = (await request.body(json=True)).decode()
        return json_response(_out(event_type, await self._schemas.set(event_type, text)))

    async def get(self, request: Request) -> Response:
        require_admin(request)
        event_type = request.path_params["type"]
        registered = self._schemas.get(event_type)
        if registered is None:
            raise _no_schema(event_type)
        return json_response(_out(event_type, registered))

    async def delete(self, request: Request) -> Response:
        require_admin(request)
        event_type = request.path_params["type"]
        try:
            await self._schemas.delete(event_type)
        except SubjectNotFound:
            raise _no_schema(event_type) from None
        return Response(status=204, content_type=None)


def routes(schemas: EventSchemas) -> list[Route]:
    """The routes of event types' data schemas."""
    admin = TypeSchemasAdmin(schemas)
    return [
        Route(PATH, admin.put, frozenset({"PUT"}), dialect="admin"),
        Route(PATH, admin.get, frozenset({"GET"}), dialect="admin"),
        Route(PATH, admin.delete, frozenset({"DELETE"}), dialect="admin"),
    ]
