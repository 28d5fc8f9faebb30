"""The OpenAPI 3.1 document of the topic admin API, built here and saved as ``openapi.json``
beside it (``python -m sluicegate.dialects.topic_admin.openapi`` rewrites it; a test keeps
the two equal)."""

from __future__ import annotations

from typing import Any

from sluicegate.core.tail import MAX_RATE
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
from sluicegate.dialects.topic_admin.routes import (
    MAX_NAME_FILTER,
    MAX_READ_RECORDS,
    MAX_WAIT_SECONDS,
)
from sluicegate.dialects.topic_admin.watch import (
    BROWSE_LIMIT,
    HEARTBEAT_SECONDS,
    MAX_RATE_MINUTES,
    MAX_TAIL_TIMEOUT,
    RatesOut,
    RecordsPage,
)
from sluicegate.dialects.topic_admin.wire import (
    ProduceBatch,
    ProduceResult,
    RecordsOut,
    TopicCreate,
    TopicOut,
    TopicPatch,
)

__all__ = ["build_document"]

_DESCRIPTION = f"""\
The gateway's own topic administration, as Kafka's admin tools offer it: create, list,
describe (with each partition's low and high watermark), alter (partitions only grow;
retention), purge (drop every record, offsets go on counting), delete; and, for people and
scripts, produce UTF-8 text records and read one partition from an offset (long poll with
`timeout`). Topic names are Kafka's: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or
`..`; names starting with `__sluicegate` are the gateway's own and neither listed nor usable.

Watching a topic (what the web console at `/console` shows): `/tail` streams the records
appended to every partition as Server-Sent Events, from the end or from `from` (an offset,
or an RFC 3339 time), paced to at most `max_rate` records a second (it reads on at that
pace when the topic is faster); `/browse` gives a page of records from `from` (default:
the oldest kept), in time order across partitions; `/rates` counts the records each
minute took over the last minutes (from the records' timestamps: purged or expired
records are not counted). Their records are decoded where the bytes allow: Confluent wire
format with a schema id the registry knows (Avro or JSON Schema, decoded with it), JSON,
UTF-8 text, else base64; a CloudEvent stored under the Kafka binding gets its attributes
(`ce_*` headers) in `cloudevent`.

Permissions: the list shows, and describe answers for, the topics the client has any
permission on (`produce`, `consume` or `admin`: Kafka's `Describe` comes with each);
create, alter, purge and delete need `admin` on the topic, produce needs `produce`, read,
tail, browse and rates need `consume`.

{COMMON_DESCRIPTION}"""

_NAME = path_parameter("name", r"^[a-zA-Z0-9._-]{1,249}$", "Topic name")
_WRITE = ("400", "403", "404", "408")


def _topic(description: str, status: str = "200") -> dict[str, Any]:
    return named_response(
        "TopicOut",
        description,
        status,
        "describeTopic",
        "alterTopic",
        "produceRecords",
        "readRecords",
        "purgeTopic",
        "deleteTopic",
    )


def _paths() -> dict[str, Any]:
    one = "/admin/v1/topics/{name}"
    read_parameters = [
        _NAME,
        query_parameter(
            "partition", {"type": "integer", "minimum": 0, "default": 0}, "Partition to read"
        ),
        query_parameter(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "First offset (default: the partition's low watermark; below it reads from it)",
        ),
        query_parameter(
            "max_records",
            {"type": "integer", "minimum": 1, "maximum": MAX_READ_RECORDS, "default": 100},
            "At most this many records (and at most 4 MiB)",
        ),
        query_parameter(
            "timeout",
            {"type": "integer", "minimum": 0, "maximum": int(MAX_WAIT_SECONDS), "default": 0},
            "Seconds to wait for a record when none is at `offset` yet",
        ),
    ]
    from_parameter = query_parameter(
        "from",
        {"type": "string", "pattern": r"^([0-9]{1,18}|[0-9]{4}-.+)$"},
        "An offset (in every partition read, or in `partition`), or an RFC 3339 time: "
        "each partition's first record stamped at or after it",
    )
    partition_parameter = query_parameter(
        "partition", {"type": "integer", "minimum": 0}, "Only this partition (default: all)"
    )
    positions_parameter = query_parameter(
        "positions",
        {"type": "string", "pattern": r"^([0-9]{1,18}:[0-9]{1,18})?(,[0-9]{1,18}:[0-9]{1,18})*$"},
        "Where to go on, as `partition:offset` pairs separated by commas (`0:41,1:17`: "
        "the `positions` of a page or of a tail's event); a partition not named starts "
        "at `from` (default: its oldest record), one the topic lacks is ignored",
    )
    event_stream = {
        "description": (
            "`text/event-stream`: `retry: 3000`, an `event: start` (`topic`, `topic_id`: "
            "the topic's never reused id, `positions`: partition → next offset), then "
            "`event: records` events whose data is a RecordsPage (`records`, and "
            "`positions` after them), a `: keep-alive` comment "
            f"after {HEARTBEAT_SECONDS:g} s without a record, and `event: error` "
            "(`status`, `error`, `message`) if reading fails, before the stream ends"
        ),
        # A stream of events, not one string: described in words, as `/ce/sse` is.
        "content": {"text/event-stream": {}},
    }
    return {
        "/admin/v1/topics": {
            "get": operation(
                "listTopics",
                "Topics the client has any permission on, by name, a page at a time",
                {"200": list_response("TopicOut", "A page of topics"), **errors("400")},
                [
                    *PAGE_PARAMETERS,
                    query_parameter(
                        "name",
                        {"type": "string", "maxLength": MAX_NAME_FILTER},
                        "Only topics whose name contains this (any case); the next page's "
                        "Link keeps it",
                    ),
                ],
            ),
            "post": operation(
                "createTopic",
                "Create a topic",
                {**_topic("Created", "201"), **errors("400", "403", "408", "409", "413")},
                requestBody=json_body("TopicCreate"),
            ),
        },
        one: {
            "get": operation(
                "describeTopic",
                "A topic, with each partition's low and high watermark",
                {**_topic("The topic"), **errors("400", "403", "404")},
                [_NAME],
            ),
            "patch": operation(
                "alterTopic",
                "Change partitions (grow only), retention or config keys; absent ones stay",
                {**_topic("The changed topic"), **errors(*_WRITE, "413")},
                [_NAME],
                requestBody=json_body("TopicPatch"),
            ),
            "delete": operation(
                "deleteTopic",
                "Delete the topic, its records and its groups' committed offsets",
                {"204": {"description": "Deleted"}, **errors(*_WRITE)},
                [_NAME],
            ),
        },
        f"{one}/purge": {
            "post": operation(
                "purgeTopic",
                "Drop every record; offsets go on from the old high watermark",
                {"204": {"description": "Purged"}, **errors(*_WRITE)},
                [_NAME],
            )
        },
        f"{one}/tail": {
            "get": operation(
                "tailTopic",
                "Stream the topic's records as they are appended (Server-Sent Events); "
                "without `partition`, also those of partitions the topic grows to",
                {"200": event_stream, **errors("400", "403", "404", "406")},
                [
                    _NAME,
                    from_parameter,
                    partition_parameter,
                    positions_parameter,
                    query_parameter(
                        "max_rate",
                        {"type": "integer", "minimum": 1, "maximum": MAX_RATE, "default": MAX_RATE},
                        "At most this many records a second",
                    ),
                    query_parameter(
                        "timeout",
                        {"type": "integer", "minimum": 0, "maximum": MAX_TAIL_TIMEOUT},
                        "End the stream after this many seconds without a record (0: once "
                        "what is there was sent); absent: when the client leaves",
                    ),
                ],
            )
        },
        f"{one}/browse": {
            "get": operation(
                "browseTopic",
                "A page of records from an offset or a time, decoded, in time order",
                {
                    "200": json_response(ref("RecordsPage"), "Records and where to go on"),
                    **errors("400", "403", "404"),
                },
                [
                    _NAME,
                    from_parameter,
                    partition_parameter,
                    positions_parameter,
                    query_parameter(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": BROWSE_LIMIT, "default": 50},
                        "At most this many records",
                    ),
                ],
            )
        },
        f"{one}/rates": {
            "get": operation(
                "topicRates",
                "Records a minute over the last minutes, oldest first (the last one so far)",
                {
                    "200": json_response(ref("RatesOut"), "One point a minute"),
                    **errors("400", "403", "404"),
                },
                [
                    _NAME,
                    query_parameter(
                        "minutes",
                        {"type": "integer", "minimum": 1, "maximum": MAX_RATE_MINUTES}
                        | {"default": 15},
                        "How many minutes back",
                    ),
                ],
            )
        },
        f"{one}/records": {
            "get": operation(
                "readRecords",
                "Records of one partition from an offset (text, or base64 if not UTF-8)",
                {
                    "200": json_response(ref("RecordsOut"), "Records and the offset to ask next"),
                    **errors("400", "403", "404"),
                },
                read_parameters,
            ),
            "post": operation(
                "produceRecords",
                "Produce text records (the topic is created if auto-creation is on)",
                {
                    "200": json_response(ref("ProduceResult"), "(partition, offset) of each"),
                    **errors(*_WRITE, "413"),
                },
                [_NAME],
                requestBody=json_body("ProduceBatch"),
            ),
        },
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the topic admin API."""
    structs = [
        TopicCreate,
        TopicPatch,
        TopicOut,
        ProduceBatch,
        ProduceResult,
        RecordsOut,
        RecordsPage,
        RatesOut,
    ]
    return build("sluicegate topic admin", _DESCRIPTION, _paths(), structs)


if __name__ == "__main__":
    save(__file__, build_document())
