"""The OpenAPI 3.1 document of the topic admin API, built here and saved as ``openapi.json``
beside it (``python -m sluicegate.dialects.topic_admin.openapi`` rewrites it; a test keeps
the two equal)."""

from __future__ import annotations

from typing import Any

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
from sluicegate.dialects.topic_admin.routes import MAX_READ_RECORDS, MAX_WAIT_SECONDS
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

Permissions: the list shows only the topics the client may administer; create, describe,
alter, purge and delete need `admin` on the topic, produce needs `produce`, read needs
`consume`.

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
    return {
        "/admin/v1/topics": {
            "get": operation(
                "listTopics",
                "Topics the client may administer, by name, a page at a time",
                {"200": list_response("TopicOut", "A page of topics"), **errors("400")},
                PAGE_PARAMETERS,
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
                "Change partitions (grow only), retention or config; absent fields stay",
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
    structs = [TopicCreate, TopicPatch, TopicOut, ProduceBatch, ProduceResult, RecordsOut]
    return build("sluicegate topic admin", _DESCRIPTION, _paths(), structs)


if __name__ == "__main__":
    save(__file__, build_document())
