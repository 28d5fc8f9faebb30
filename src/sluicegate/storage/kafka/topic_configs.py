"""A topic's settings as Kafka topic configs.

Retention maps to ``retention.ms``/``retention.bytes`` (``-1``: keep forever), enforced by
the brokers. Timestamps are log-append time, as the storage contract says, so every
topic is ``message.timestamp.type=LogAppendTime``. Settings a dialect keeps in
``Topic.config`` under a Kafka topic config's name (the state topics ask for
``cleanup.policy=compact``) are handed to Kafka as well; the rest stay in the registry.
"""

from __future__ import annotations

from sluicegate.core.topics import Topic

__all__ = ["PASSED_THROUGH", "kafka_topic_configs"]

#: ``Topic.config`` keys that are Kafka topic configs and go to the broker as they are.
PASSED_THROUGH = frozenset(
    {
        "cleanup.policy",
        "compression.type",
        "delete.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "segment.bytes",
        "segment.ms",
    }
)


def _kafka_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kafka_topic_configs(topic: Topic) -> dict[str, str]:
    """The Kafka topic configs that carry ``topic``'s settings."""
    configs = {
        "message.timestamp.type": "LogAppendTime",
        "retention.ms": str(-1 if topic.retention_ms is None else topic.retention_ms),
        "retention.bytes": str(-1 if topic.retention_bytes is None else topic.retention_bytes),
    }
    for key, value in topic.config.items():
        if key in PASSED_THROUGH:
            configs[key] = _kafka_value(value)
    return configs
