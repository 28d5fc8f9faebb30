"""CloudEvents error bodies, and the dialect's rule that every authorization failure is 401.

The seed lists the statuses and asks for a body that says what is wrong; this is it::

    {"status": 400, "error": "bad_request", "message": "events[3]: attribute id is required",
     "attribute": "id", "index": 3}

* ``status`` repeats the HTTP status, ``error`` is a stable code, ``message`` says what is
  wrong and where;
* ``attribute``: the CloudEvents attribute at fault (``data`` for the data), when one is;
* ``index``: the event's place in a batch (from 0), when the request was a batch;
* ``violations``: for a 422, each way the data breaks its type's schema, as
  ``{"pointer", "reason"}`` (a JSON pointer into ``data``);
* ``incident_id``: for a 500, the id the server log has the details under.

The seed answers **401 on any authorization error** — not a producer or consumer, a
source or type not allowed — where other dialects answer 403: a ``Forbidden`` is
rendered as ``401`` with ``error`` ``unauthorized``, its message naming what was refused.
"""

from __future__ import annotations

from typing import Any

from sluicegate.errors import Forbidden, SluicegateError
from sluicegate.http.request import Request
from sluicegate.http.responses import Response, json_response

__all__ = ["error_body", "render_error"]

_DETAILS = ("attribute", "index", "violations")


def render_error(exc: SluicegateError, request: Request) -> Response:
    """The response for ``exc`` in this dialect's format."""
    body = error_body(exc)
    return json_response(body, body["status"])


def error_body(exc: SluicegateError) -> dict[str, Any]:
    """``exc`` as this dialect's error document (a response's body, an ``error`` event's
    data)."""
    if isinstance(exc, Forbidden):
        status, code = 401, "unauthorized"
    else:
        status, code = exc.status, exc.code
    body: dict[str, Any] = {"status": status, "error": code, "message": exc.message}
    for name in _DETAILS:
        value = exc.detail.get(name)
        if value is not None:
            body[name] = value
    incident = exc.detail.get("incident")
    if incident is not None:
        body["incident_id"] = incident
    return body
