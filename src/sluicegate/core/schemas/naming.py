"""Subject name strategies: which subject a topic's key or value schema is registered under.

Confluent's strategies are ``TopicNameStrategy`` (``<topic>-key|value``),
``RecordNameStrategy`` (``<record full name>``) and ``TopicRecordNameStrategy``
(``<topic>-<record full name>``). The records v2 dialect follows IBM Event Streams
instead, whose documented answer for ``topicrecord`` on a key is
``test-topic-com.eventstreams.samples.recordKeyName-key``: IBM appends ``-key`` or
``-value`` to every strategy. So that a key and a value schema never share a subject,
``record`` gets the same suffix here (``<record full name>-key|value``).
"""

from __future__ import annotations

from typing import Literal, get_args

from sluicegate.errors import BadRequest

__all__ = ["STRATEGIES", "SubjectNameStrategy", "subject_name"]

SubjectNameStrategy = Literal["topic", "record", "topicrecord"]
STRATEGIES: tuple[str, ...] = get_args(SubjectNameStrategy)


def subject_name(strategy: str, topic: str, schema_full_name: str | None, is_key: bool) -> str:
    """The subject for a key (``is_key``) or value schema of ``topic`` (IBM's suffixes)."""
    suffix = "key" if is_key else "value"
    if strategy == "topic":
        return f"{topic}-{suffix}"
    if strategy not in ("record", "topicrecord"):
        raise BadRequest(
            f"unknown schema_name_strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}",
            field="schema_name_strategy",
        )
    if not schema_full_name:
        raise BadRequest(
            f"schema_name_strategy {strategy!r} needs a named schema: an Avro record, enum "
            "or fixed, or a JSON Schema with a title",
            field="schema_name_strategy",
        )
    if strategy == "record":
        return f"{schema_full_name}-{suffix}"
    return f"{topic}-{schema_full_name}-{suffix}"
