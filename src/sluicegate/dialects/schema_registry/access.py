"""Who may do what on the registry API.

Reading (``GET``, lookups, compatibility checks) needs only valid credentials, as
Confluent's serializers and deserializers of any client need to resolve ids. Registering
a schema under a subject needs the admin permission on the subject's name, or the produce
permission on the topic a ``<topic>-key|value`` subject belongs to (so a producer whose
serializer auto-registers its schema may do so). Everything else that changes a subject
(deleting it or its versions, its compatibility or mode) needs admin on the subject: a
producer that could set its topic's compatibility to ``NONE``, or delete the schema its
topic's consumers read with, could take the topic's contract away from them. Global
settings (``/config``, ``/mode``) need admin on every topic.
"""

from __future__ import annotations

import dataclasses

from sluicegate.errors import Forbidden, Unauthenticated
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import Endpoint, Route

__all__ = ["guarded"]


def _is_read(route: Route) -> bool:
    if "GET" in route.methods:
        return True
    # POST /subjects/{subject} is a lookup; /compatibility/... only tests a schema.
    return "/compatibility/" in route.path or (
        route.path.endswith("/subjects/{subject}") and ("POST" in route.methods)
    )


def _is_registration(route: Route) -> bool:
    return route.path.endswith("/subjects/{subject}/versions") and "POST" in route.methods


def _guard(endpoint: Endpoint, read: bool, registration: bool) -> Endpoint:
    async def checked(request: Request) -> Response:
        principal = request.principal
        if principal is None:
            raise Unauthenticated("this request needs credentials")
        if not read:
            subject = request.path_params.get("subject")
            if subject is None:
                principal.require_admin()
            elif registration and not principal.may_register_schema(subject):
                raise Forbidden(
                    f"client {principal.name!r} may not register a schema under subject "
                    f"{subject!r}: it needs admin on the subject, or produce on the topic "
                    "of a <topic>-key|value subject",
                    check="admin",
                )
            elif not registration and not principal.allows("admin", subject):
                raise Forbidden(
                    f"client {principal.name!r} may not change subject {subject!r}: it "
                    "needs admin on the subject (producing to its topic allows only "
                    "registering schemas)",
                    check="admin",
                )
        return await endpoint(request)

    return checked


def guarded(routes: list[Route]) -> list[Route]:
    """``routes`` with each endpoint behind its permission check."""
    return [
        dataclasses.replace(
            route,
            endpoint=_guard(route.endpoint, _is_read(route), _is_registration(route)),
        )
        for route in routes
    ]
