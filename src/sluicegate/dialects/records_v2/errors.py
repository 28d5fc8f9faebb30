"""Records v2 error bodies: ``{"error_code", "message", "incident_id"?}``.

The seed lists statuses but no body; this is the body IBM Event Streams' REST APIs use,
with the HTTP status as ``error_code``.
"""

from __future__ import annotations

from sluicegate.errors import SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response

__all__ = ["render_error"]


def render_error(exc: SluicegateError, request: Request) -> Response:
    """The response for ``exc`` in this dialect's format."""
    body: dict[str, object] = {"error_code": exc.status, "message": exc.message}
    incident = exc.detail.get("incident")
    if incident is not None:
        body["incident_id"] = incident
    return json_response(body, exc.status)
