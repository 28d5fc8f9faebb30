"""Topics v1 error bodies: ``{"message", "code", "incident_id"?, "errors"?}``.

The seed gives no error body; this is the shape Workato's APIs answer with, a message
that says what is wrong and a stable code, plus the incident id of a 500. A message that
breaks its topic's schema also gets ``errors``: each violation's JSON pointer and reason.
"""

from __future__ import annotations

from sluicegate.errors import SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response

__all__ = ["render_error"]


def render_error(exc: SluicegateError, request: Request) -> Response:
    """The response for ``exc`` in this dialect's format."""
    body: dict[str, object] = {"message": exc.message, "code": exc.code}
    incident = exc.detail.get("incident")
    if incident is not None:
        body["incident_id"] = incident
    violations = exc.detail.get("violations")
    if violations is not None:
        body["errors"] = violations
    return json_response(body, exc.status)
