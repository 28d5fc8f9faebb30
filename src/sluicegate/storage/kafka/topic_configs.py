"""A topic's settings as Kafka topic configs.

Retention maps to ``retention.ms``/``retention.bytes`` (``-1``: keep forever), enforced by
the brokers. Timestamps are log-append time, as the storage contract says, so every
topic is ``message.timestamp.type=LogAppendTime``. Settings a dialect keeps in
``Topic.config`` under a Kafka topic config's name (the state topics ask for
``cleanup.policy=compact``) are handed to Kafka as well; the rest stay in the registry.
"""

from __future__ import annotations

from sluicegate.core.topics import Topic
from sluicegate.storage.topic_rules import KAFKA_TOPIC_CONFIGS, config_text

__all__ = ["PASSED_THROUGH", "kafka_topic_configs"]

#: ``Topic.config`` keys that are Kafka topic configs and go to the broker as they are
#: (their values checked by ``topic_rules`` on every backend).
PASSED_THROUGH = frozenset(KAFKA_TOPIC_CONFIGS)


def kafka_topic_configs(topic: Topic) -> dict[str, str]:
    """The Kafka topic configs that carry ``topic``'s settings."""
    configs = {
        "message.timestamp.type": "LogAppendTime",
        "retention.ms": str(-1 if topic.retention_ms is None else topic.retention_ms),
        "retention.bytes": str(-1 if topic.retention_bytes is None else topic.retention_bytes),
    }
    for key, value in topic.config.items():
        if key in PASSED_THROUGH:
            configs[key] = config_text(value)
    return configs
