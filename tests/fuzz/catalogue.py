"""What the fuzz suite sends to each route: a valid request to start from, and the error
body the route's dialect answers with.

The routes come from the app's router, so a route added later is fuzzed without anyone
listing it here. What a route needs to be reached with a *valid* request (its path
parameters, query, body) is looked up by its template; a template that is not known
here (a dialect added later) gets a generic request: every parameter ``fuzz``, and for
methods with a body an empty JSON object. It is fuzzed all the same, only from a less
interesting start: add its examples here to go deeper.

The error body a route must answer with is not listed at all: it is what the route's
own ``render_error`` makes of a probe error, so a new dialect brings its own format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from sluicegate.errors import BadRequest, MethodNotAllowed, NotFound
from sluicegate.http.request import Request
from sluicegate.http.responses import Response
from sluicegate.http.router import ErrorRenderer, Route, Router, plain_errors

__all__ = [
    "BODY_METHODS",
    "ErrorShape",
    "Example",
    "Target",
    "error_shape",
    "expected_renderer",
    "fuzz_targets",
]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

#: Resources the suite creates before fuzzing, so that valid requests find something.
TOPIC = "fuzz"
CLIENT = "fuzz-client"
SUBJECT = "fuzz-value"
#: Destructive routes aim elsewhere, so the resources above outlive the run.
DOOMED = "fuzz-doomed"
#: The integer id topics v1 addresses ``TOPIC`` by, set by the suite's setup when it
#: creates the topic (SQLite's value until then): on SQLite the first after the internal
#: topics, on Kafka the offset of its registry record, which internal topics move.
TOPIC_PARAMS = {"topic_id": "5"}
#: A topic id that names no topic, for the destructive topics v1 routes.
NO_TOPIC_ID = "999999"

AVRO_SCHEMA = json.dumps(
    {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "long"]}]}
)


@dataclass(frozen=True)
class Example:
    """A request the route answers with success (or a clean 4xx) when sent as is."""

    params: dict[str, str] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    content_type: str = "application/json"
    #: Whether the route is known to read the body (not so for a generic example).
    reads_body: bool = True
    #: Headers the route reads beyond Content-Type (a raw CloudEvent's ``ce-`` attributes).
    headers: tuple[tuple[str, str], ...] = ()

    def body_bytes(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()


def _json(value: Any) -> str:
    return json.dumps(value)


_SR_SCHEMA = {"schema": AVRO_SCHEMA}
_SR_JSON_SCHEMA = {"schemaType": "JSON", "schema": _json({"type": "object"})}
_SR = "application/vnd.schemaregistry.v1+json"

_CE_HEADERS = (
    ("ce-specversion", "1.0"),
    ("ce-id", "fuzz-1"),
    ("ce-source", "urn:fuzz"),
    ("ce-type", "Fuzz.Happened"),
    ("ce-subject", "fuzz/%E2%82%AC"),
    ("ce-partitionkey", "k1"),
    ("ce-fuzzext", "x"),
)
_CE_EVENT = {
    "specversion": "1.0",
    "id": "fuzz-2",
    "source": "urn:fuzz",
    "type": "Fuzz.Happened",
    "time": "2020-01-01T00:00:00Z",
    "count": 3,
    "data": {"a": [1, "b", None]},
}
_CE_BINARY = {**_CE_EVENT, "id": "fuzz-3", "datacontenttype": "image/png", "data_base64": "AAEC"}
del _CE_BINARY["data"]
#: A consumer instance's path parameters; the suite's setup puts a live instance's id in.
CONSUMER_INSTANCE = {"bridge": "node-1", "group": "~default", "instance": "set-by-the-setup"}
_INSTANCE = "/{bridge}/ce/consumers/{group}/instances/{instance}"
_NO_WAIT = (("timeout", "0"),)

#: (method, template) → examples. A template also matches a route mounted under a
#: prefix (the schema registry under ``/registry``): the longest matching suffix wins.
EXAMPLES: dict[tuple[str, str], list[Example]] = {
    ("POST", "/v2/topics/{topic_name}/records"): [
        Example(
            {"topic_name": TOPIC},
            body={
                "headers": [{"name": "h", "value": "aGk="}],
                "key": {"type": "text", "data": "k"},
                "value": {"type": "json", "data": {"a": [1, 2.5, "x", None, True]}},
            },
        ),
        Example(
            {"topic_name": TOPIC},
            query=(("serializer", "confluent"),),
            body={"value": {"type": "avro", "schema": AVRO_SCHEMA, "data": {"a": 1}}},
        ),
        Example({"topic_name": TOPIC}, body={"key": {"type": "binary", "data": "AAEC"}}),
    ],
    ("POST", "/admin/v1/topics"): [
        Example(body={"name": "fuzz-new", "partitions": 2, "config": {"cleanup.policy": "x"}})
    ],
    ("GET", "/admin/v1/topics/{name}"): [Example({"name": TOPIC})],
    ("PATCH", "/admin/v1/topics/{name}"): [
        Example({"name": TOPIC}, body={"retention_ms": 3_600_000, "config": {"a": "b"}})
    ],
    ("DELETE", "/admin/v1/topics/{name}"): [Example({"name": DOOMED})],
    ("POST", "/admin/v1/topics/{name}/purge"): [Example({"name": DOOMED})],
    ("GET", "/admin/v1/topics/{name}/records"): [
        Example(
            {"name": TOPIC},
            query=(("partition", "0"), ("offset", "0"), ("max_records", "5"), ("timeout", "0")),
        )
    ],
    ("GET", "/admin/v1/topics/{name}/browse"): [
        Example({"name": TOPIC}, query=(("from", "0"), ("partition", "0"), ("limit", "5"))),
        Example({"name": TOPIC}, query=(("from", "2020-01-01T00:00:00Z"),)),
    ],
    ("GET", "/admin/v1/topics/{name}/rates"): [Example({"name": TOPIC}, query=(("minutes", "5"),))],
    # A stream that ends once what there is was sent (``timeout=0``).
    ("GET", "/admin/v1/topics/{name}/tail"): [
        Example({"name": TOPIC}, query=(("from", "0"), ("max_rate", "100"), ("timeout", "0")))
    ],
    ("POST", "/admin/v1/topics/{name}/records"): [
        Example({"name": TOPIC}, body={"records": [{"key": "k", "value": "v", "partition": 0}]})
    ],
    ("POST", "/admin/v1/clients"): [
        Example(body={"name": "fuzz-new-client", "produce": ["fuzz*"], "consume": ["a"]})
    ],
    ("GET", "/admin/v1/clients/{name}"): [Example({"name": CLIENT})],
    ("PUT", "/admin/v1/clients/{name}"): [
        Example({"name": CLIENT}, body={"produce": ["fuzz*"], "ce_sources": ["/s"]})
    ],
    ("DELETE", "/admin/v1/clients/{name}"): [Example({"name": DOOMED})],
    ("GET", "/admin/v1/clients/{name}/keys"): [Example({"name": CLIENT})],
    ("POST", "/admin/v1/clients/{name}/keys"): [
        Example({"name": CLIENT}, body={"expires_in": 3600}),
        Example({"name": CLIENT}, body={"expires_at": "2099-01-01T00:00:00Z"}),
    ],
    ("DELETE", "/admin/v1/clients/{name}/keys/{key_id}"): [
        Example({"name": CLIENT, "key_id": "no-such-key"})
    ],
    ("GET", "/schemas"): [
        Example(query=(("subjectPrefix", "fuzz"), ("offset", "0"), ("limit", "10")))
    ],
    ("GET", "/schemas/ids/{id}"): [Example({"id": "1"})],
    ("POST", "/subjects/{subject}"): [Example({"subject": SUBJECT}, body=_SR_SCHEMA)],
    ("DELETE", "/subjects/{subject}"): [Example({"subject": DOOMED})],
    ("POST", "/subjects/{subject}/versions"): [
        Example({"subject": SUBJECT}, body=_SR_SCHEMA, content_type=_SR),
        Example({"subject": "fuzz-json-value"}, body=_SR_JSON_SCHEMA),
    ],
    ("GET", "/subjects/{subject}/versions/{version}"): [
        Example({"subject": SUBJECT, "version": "latest"}, query=(("deleted", "true"),))
    ],
    ("DELETE", "/subjects/{subject}/versions/{version}"): [
        Example({"subject": DOOMED, "version": "1"})
    ],
    ("POST", "/compatibility/subjects/{subject}/versions"): [
        Example({"subject": SUBJECT}, query=(("verbose", "true"),), body=_SR_SCHEMA)
    ],
    ("POST", "/compatibility/subjects/{subject}/versions/{version}"): [
        Example({"subject": SUBJECT, "version": "latest"}, body=_SR_SCHEMA)
    ],
    ("PUT", "/config"): [Example(body={"compatibility": "BACKWARD"})],
    ("PUT", "/config/{subject}"): [Example({"subject": SUBJECT}, body={"compatibility": "NONE"})],
    ("PUT", "/mode"): [Example(body={"mode": "READWRITE"})],
    ("PUT", "/mode/{subject}"): [Example({"subject": SUBJECT}, body={"mode": "READWRITE"})],
    ("GET", "/associations/resources/{namespace}/{name}"): [
        Example({"namespace": "-", "name": TOPIC}, query=(("resourceType", "topic"),))
    ],
    ("GET", "/openapi/{name}.json"): [Example({"name": "records-v2"})],
    ("GET", "/admin/v1/consumers"): [Example(query=(("limit", "10"),))],
    ("GET", "/admin/v1/groups"): [Example(query=(("limit", "10"),))],
    ("GET", "/console/{path:path}"): [Example({"path": "js/main.js"})],
    ("POST", "/ce/produce/raw"): [
        Example(body={"order": 1}, headers=_CE_HEADERS),
        Example(body="plain text", content_type="text/plain", headers=_CE_HEADERS),
    ],
    ("POST", "/ce/produce/event"): [
        Example(body=_CE_EVENT, content_type="application/cloudevents+json"),
        Example(body=_CE_BINARY, content_type="application/cloudevents+json"),
    ],
    ("POST", "/ce/produce/events"): [
        Example(body=[_CE_EVENT, _CE_BINARY], content_type="application/cloudevents-batch+json")
    ],
    ("POST", "/ce/tools/consumer/test"): [Example(body={"test": True}, headers=_CE_HEADERS)],
    ("POST", "/ce/consumers"): [
        Example(query=(("group", "fuzz"), ("events", "true"), ("test", "false"), ("dead", "true")))
    ],
    # A stream that ends once what there is was sent (``timeout=0``).
    ("GET", "/ce/sse"): [
        Example(query=(*_NO_WAIT, ("group", "fuzz-sse"), ("max_deliveries", "3")))
    ],
    **{
        ("GET", f"{_INSTANCE}/{form}"): [
            Example(CONSUMER_INSTANCE, query=_NO_WAIT),
            Example(CONSUMER_INSTANCE, query=(*_NO_WAIT, ("confirm", "true"))),
        ]
        for form in ("raw", "event", "events")
    },
    ("POST", f"{_INSTANCE}/confirm"): [Example(CONSUMER_INSTANCE, reads_body=False)],
    ("POST", f"{_INSTANCE}/dead"): [
        Example(CONSUMER_INSTANCE, body={"dead": True}, headers=_CE_HEADERS)
    ],
    # The instance the others use outlives the run: deletes aim at one that is not there.
    ("DELETE", _INSTANCE): [Example({**CONSUMER_INSTANCE, "instance": DOOMED})],
    ("PUT", "/admin/v1/cloudevents/types/{type:path}/schema"): [
        Example({"type": "Fuzz.Happened"}, body={"type": "object", "$defs": {"a": {}}})
    ],
    ("GET", "/admin/v1/cloudevents/types/{type:path}/schema"): [Example({"type": "Fuzz.Happened"})],
    ("DELETE", "/admin/v1/cloudevents/types/{type:path}/schema"): [Example({"type": DOOMED})],
    **{
        ("POST", f"{prefix}/topics/{{topic_id}}/publish"): [
            # The topic's value schema is SUBJECT's Avro record: the message must match it.
            Example(TOPIC_PARAMS, body={"a": 1})
        ]
        for prefix in ("/api/v1", "/api/pubsub")
    },
    **{
        ("POST", path): [
            Example(TOPIC_PARAMS, body={"payloads": [{"a": 1}, {"a": None}]}),
            Example(TOPIC_PARAMS, body={"payload": [{"a": 2}]}),
        ]
        for path in (
            "/api/v1/batch/topics/{topic_id}/publish",
            "/api/pubsub/topics/{topic_id}/batch/publish",
        )
    },
    **{
        ("POST", f"{prefix}/topics/{{topic_id}}/consume"): [
            Example(TOPIC_PARAMS, body={"batch_size": 5, "timeout_secs": 0}),
            Example(TOPIC_PARAMS, body={"since_time": "2020-01-01T00:00:00Z"}),
        ]
        for prefix in ("/api/v1", "/api/pubsub")
    },
    ("GET", "/api/event_streams/topics"): [
        Example(
            query=(
                ("name", "fuzz"),
                ("sort", "-name"),
                ("include_schema", "true"),
                ("page", "1"),
                ("per_page", "10"),
            )
        )
    ],
    ("POST", "/api/event_streams/topics"): [
        Example(
            body={
                "name": "fuzz-v1-new",
                "description": "made by the fuzz suite",
                "retention": 3600,
                "schema": [
                    {"name": "n", "type": "integer"},
                    {"name": "when", "type": "date_time", "optional": True},
                    {"name": "tags", "type": "array", "of": "string", "label": "Tags"},
                ],
            }
        )
    ],
    ("GET", "/api/event_streams/topics/{topic_id}"): [Example(TOPIC_PARAMS)],
    ("PUT", "/api/event_streams/topics/{topic_id}"): [
        Example(TOPIC_PARAMS, body={"description": "still fuzzed", "retention": 7200})
    ],
    ("PUT", "/api/event_streams/topics/{topic_id}/purge"): [Example({"topic_id": NO_TOPIC_ID})],
    ("DELETE", "/api/event_streams/topics/{topic_id}"): [Example({"topic_id": NO_TOPIC_ID})],
}

#: Path parameters by name, for templates with no example of their own.
GENERIC_PARAMS = {"subject": SUBJECT, "version": "1", "id": "1", "topic_name": TOPIC}


@dataclass(frozen=True)
class ErrorShape:
    """The keys an error body must have, the JSON type of each, and its Content-Type."""

    fields: dict[str, type]
    content_type: str

    def mismatch(self, content_type: str | None, body: bytes) -> str | None:
        """What in a response does not fit this shape, or ``None`` if it fits."""
        if content_type != self.content_type:
            return f"Content-Type {content_type!r}, expected {self.content_type!r}"
        try:
            document = json.loads(body)
        except ValueError:
            return f"body is not JSON: {body[:200]!r}"
        if not isinstance(document, dict):
            return f"body is not a JSON object: {body[:200]!r}"
        # Every field of the format, with its type; a dialect may add details to some errors
        # (an incident id, the list of schema violations).
        shape = {key: type(value) for key, value in document.items()}
        if any(shape.get(key) is not kind for key, kind in self.fields.items()):
            return f"body fields {shape}, expected {self.fields}"
        return None


def _probe_request() -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    return Request(scope, receive, {})


def error_shape(render: ErrorRenderer) -> ErrorShape:
    """The shape of the errors ``render`` makes, learnt from a probe error."""
    response: Response = render(BadRequest("probe"), _probe_request())
    content_type = dict(response.headers)[b"content-type"].decode()
    fields = {key: type(value) for key, value in json.loads(response.body).items()}
    return ErrorShape(fields, content_type)


def expected_renderer(router: Router, method: str, target: bytes) -> ErrorRenderer:
    """The renderer whose format the app answers ``method target`` in, as the app picks
    it: the matched route's, else that of the route the path looks like (404, 405)."""
    path = unquote(target.split(b"?", 1)[0].decode("latin-1"))
    try:
        route, _ = router.match(method, path)
    except (NotFound, MethodNotAllowed):
        closest = router.closest(path)
        return closest.render_error if closest is not None else plain_errors
    return route.render_error


@dataclass(frozen=True)
class Target:
    """A route to fuzz: its template, method, valid examples and error shape."""

    route: Route
    method: str
    examples: list[Example]

    @property
    def id(self) -> str:
        return f"{self.method} {self.route.path}"

    def path(self, params: dict[str, str], *, encode: Callable[[str], str] = quote) -> str:
        """The route's path with ``params`` filled in (percent-encoded by ``encode``)."""
        path = self.route.path
        for name, value in params.items():
            path = path.replace("{" + name + "}", encode(value))
            path = path.replace("{" + name + ":path}", encode(value))
        return path


def _examples(method: str, template: str) -> list[Example]:
    known = [
        (len(suffix), examples)
        for (known_method, suffix), examples in EXAMPLES.items()
        if known_method == method and template.endswith(suffix)
    ]
    if known:
        return max(known, key=lambda pair: pair[0])[1]
    params = {}
    for part in template.split("/"):
        if "{" in part:
            name = part[part.index("{") + 1 : part.index("}")].split(":")[0]
            params[name] = GENERIC_PARAMS.get(name, "fuzz")
    return [Example(params, body={} if method in BODY_METHODS else None, reads_body=False)]


def fuzz_targets(router: Router) -> list[Target]:
    """Every (route, method) the router serves, with its examples."""
    return [
        Target(route, method, _examples(method, route.path))
        for route in router.routes
        for method in sorted(route.methods)
    ]
