"""The OpenAPI 3.1 document of the clients and keys admin API, built here and saved as
``openapi.json`` beside it (``python -m sluicegate.dialects.admin.openapi`` rewrites it; a
test keeps the two equal)."""

from __future__ import annotations

from typing import Any

from sluicegate.dialects.admin.consumers import ConsumerInstanceOut
from sluicegate.dialects.admin.event_schemas import TypeSchemaOut
from sluicegate.dialects.admin.groups import GroupDetailOut, GroupOut, PartitionOut
from sluicegate.dialects.admin.nodes import NodeOut
from sluicegate.dialects.admin.wire import (
    ClientCreate,
    ClientOut,
    ClientUpdate,
    KeyCreate,
    KeyOut,
    NewKeyOut,
)
from sluicegate.dialects.admin_openapi import (
    COMMON_DESCRIPTION,
    PAGE_PARAMETERS,
    build,
    errors,
    json_body,
    json_response,
    list_response,
    named_response,
    operation,
    path_parameter,
    query_parameter,
    ref,
    save,
)
from sluicegate.observability.history import HistoryOut

__all__ = ["build_document"]

_DESCRIPTION = f"""\
Clients (principals) and their API keys. A client has permissions per topic pattern
(`produce`, `consume`, `admin`: exact names or globs), CloudEvents sources and types, and
TLS certificate subjects. Clients from the config file are shown (`origin: config`) but
cannot be changed or deleted here (409). An API key is shown once, when created, and never
stored: only its id and first characters are listed afterwards. Revoking a key works at
once; a revoked or expired key stays listed with its status.

CloudEvents data schemas: `/admin/v1/cloudevents/types/{{type}}/schema` sets (`PUT`, the
body is the JSON Schema itself), shows and deletes the JSON Schema that the `data` of
events of one type must satisfy (Draft 6, Draft 7, 2019-09 or 2020-12: named by
`$schema`, else told by the keywords used, and that `$schema` is then added). It is kept
in the schema registry as subject `ce.type.<type>`, under that subject's compatibility
level (409 if the new schema is incompatible). A type may contain `/`.

Nodes: `/admin/v1/nodes` lists the gateway nodes sharing this log (on Kafka, every node
that wrote a heartbeat in the last hour; on the embedded log, this one), with the age of
each one's last heartbeat, whether it counts as live, and its consumer instance counts.

Consumer groups: `/admin/v1/groups` lists the consumer groups this node knows (live here,
or idle since their last consumer here ended) with the figures `/metrics` exports: lag per
topic, the oldest unconfirmed event's age, deliveries, redeliveries and dead-letters (since
the node started); `/admin/v1/groups/{{group}}` adds each partition. A group is named by its
storage name, `ce/<client>/<group>` for a CloudEvents consumer group. Figures are at most a
few seconds old.

Consumer instances: `/admin/v1/consumers` lists the CloudEvents consumer instances live
on this node (by client, group and id): the node holding each, how its client reads
(`long_poll`, `websocket`, `sse`), its age, its deliveries and unconfirmed deliveries,
and its idle time. Topics-v1 consumers keep no instance (their cursor is in each
request) and are not listed.

Metrics history: `/admin/v1/metrics/history` gives the last minutes (15 by default,
a sample every 5 seconds, kept in memory by the answering node) of the produce rate
(records/s), the p99 latency of produce requests and of storage commits (seconds,
`null` for an interval without any), and the storage gauges, as columns: `times[i]`
(Unix seconds) is when each `series[name][i]` was taken.

A `PUT` of a client or a key creation without a body is the same as one with `{{}}`: no
permissions; a key that never expires. Every operation needs the `admin` permission on `*`.
Client names are 1-128 characters of `[A-Za-z0-9._@:+-]`, starting with a letter or digit.

{COMMON_DESCRIPTION}"""

_NAME = path_parameter("name", r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,127}$", "Client name")
_KEY_ID = path_parameter("key_id", r"^\S+$", "Key id (`k_...`), as listed")
_WRITE = ("400", "403", "404", "408")
_TYPE = path_parameter("type", r"^.+$", "CloudEvents event type (may contain `/`)")
_GROUP = path_parameter(
    "group", r"^.+$", "Storage group name (`ce/<client>/<group>`; it contains `/`)"
)
_TYPE_SCHEMA = json_response(ref("TypeSchemaOut"), "The type's data schema as registered")


def _client(description: str, status: str = "200") -> dict[str, Any]:
    return named_response(
        "ClientOut",
        description,
        status,
        "showClient",
        "updateClient",
        "listKeys",
        "createKey",
        "deleteClient",
    )


def _paths() -> dict[str, Any]:
    one = "/admin/v1/clients/{name}"
    new_key = json_response(
        ref("NewKeyOut"),
        "The key (in `key`, shown only here) and its record",
        {
            "Cache-Control": {
                "description": "`no-store`: the key is a secret",
                "schema": {"type": "string"},
            }
        },
    )
    new_key["links"] = {
        "revokeKey": {
            "operationId": "revokeKey",
            "parameters": {"name": "$response.body#/client", "key_id": "$response.body#/id"},
        },
        "listKeys": {"operationId": "listKeys", "parameters": {"name": "$response.body#/client"}},
    }
    return {
        "/admin/v1/clients": {
            "get": operation(
                "listClients",
                "Clients by name, a page at a time",
                {"200": list_response("ClientOut", "A page of clients"), **errors("400", "403")},
                PAGE_PARAMETERS,
            ),
            "post": operation(
                "createClient",
                "Create a client",
                {**_client("Created", "201"), **errors("400", "403", "408", "409", "413")},
                requestBody=json_body("ClientCreate"),
            ),
        },
        one: {
            "get": operation(
                "showClient", "A client", {**_client("The client"), **errors("403", "404")}, [_NAME]
            ),
            "put": operation(
                "updateClient",
                "Replace a client's permissions and certificate subjects",
                {**_client("The changed client"), **errors(*_WRITE, "409", "413")},
                [_NAME],
                requestBody=json_body("ClientUpdate", required=False),
            ),
            "delete": operation(
                "deleteClient",
                "Delete a client and every API key it has",
                {"204": {"description": "Deleted"}, **errors(*_WRITE, "409")},
                [_NAME],
            ),
        },
        f"{one}/keys": {
            "get": operation(
                "listKeys",
                "A client's keys (never the keys themselves), oldest first, a page at a time",
                {"200": list_response("KeyOut", "A page of keys"), **errors("400", "403", "404")},
                [_NAME, *PAGE_PARAMETERS],
            ),
            "post": operation(
                "createKey",
                "Create an API key; without expires_at or expires_in it never expires",
                {"201": new_key, **errors(*_WRITE, "413")},
                [_NAME],
                requestBody=json_body("KeyCreate", required=False),
            ),
        },
        "/admin/v1/cloudevents/types/{type}/schema": {
            "get": operation(
                "showTypeSchema",
                "An event type's data schema",
                {"200": _TYPE_SCHEMA, **errors("403", "404")},
                [_TYPE],
            ),
            "put": operation(
                "setTypeSchema",
                "Set an event type's data schema (a new version if it differs)",
                {"200": _TYPE_SCHEMA, **errors(*_WRITE, "409", "413")},
                [_TYPE],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": ["object", "boolean"]},
                            "example": {"type": "object", "required": ["order"]},
                        }
                    },
                },
            ),
            "delete": operation(
                "deleteTypeSchema",
                "Remove an event type's data schema, every version",
                {"204": {"description": "Deleted"}, **errors(*_WRITE)},
                [_TYPE],
            ),
        },
        "/admin/v1/nodes": {
            "get": operation(
                "listNodes",
                "The gateway nodes sharing this log: heartbeat age, liveness, instance counts",
                {
                    "200": json_response(
                        {"type": "array", "items": ref("NodeOut")},
                        "Every node known to the answering node, that one first",
                    ),
                    **errors("403"),
                },
            )
        },
        "/admin/v1/groups": {
            "get": operation(
                "listGroups",
                "Consumer groups this node knows, with their lag and health, by name",
                {"200": list_response("GroupOut", "A page of groups"), **errors("400", "403")},
                PAGE_PARAMETERS,
            ),
        },
        "/admin/v1/groups/{group}": {
            "get": operation(
                "showGroup",
                "A consumer group's figures, and each partition's lag",
                {
                    "200": json_response(ref("GroupDetailOut"), "The group"),
                    **errors("403", "404"),
                },
                [_GROUP],
            ),
        },
        "/admin/v1/consumers": {
            "get": operation(
                "listConsumerInstances",
                "CloudEvents consumer instances live on this node, by client, group and id",
                {
                    "200": list_response("ConsumerInstanceOut", "A page of instances"),
                    **errors("400", "403"),
                },
                [
                    query_parameter(
                        "group",
                        {"type": "string"},
                        "Only this storage group's instances (`ce/<client>/<group>`)",
                    ),
                    *PAGE_PARAMETERS,
                ],
            ),
        },
        "/admin/v1/metrics/history": {
            "get": operation(
                "showMetricsHistory",
                "The last minutes of the produce rate, p99 latencies and storage gauges",
                {
                    "200": json_response(ref("HistoryOut"), "Samples as columns, oldest first"),
                    **errors("403"),
                },
            ),
        },
        f"{one}/keys/{{key_id}}": {
            "delete": operation(
                "revokeKey",
                "Revoke a key at once (revoking a revoked key changes nothing)",
                {"204": {"description": "Revoked"}, **errors(*_WRITE)},
                [_NAME, _KEY_ID],
            )
        },
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the clients and keys admin API."""
    structs = [
        ClientCreate,
        ClientUpdate,
        ClientOut,
        KeyCreate,
        KeyOut,
        NewKeyOut,
        TypeSchemaOut,
        NodeOut,
        GroupOut,
        GroupDetailOut,
        PartitionOut,
        ConsumerInstanceOut,
        HistoryOut,
    ]
    return build("sluicegate clients and API keys", _DESCRIPTION, _paths(), structs)


if __name__ == "__main__":
    save(__file__, build_document())
