"""The Kafka backend of the storage contract (see ``log``)."""

from sluicegate.storage.kafka.log import KafkaLog

__all__ = ["KafkaLog"]
