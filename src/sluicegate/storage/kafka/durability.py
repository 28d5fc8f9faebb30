"""Whether the cluster keeps what the gateway acknowledges on more than one broker.

``acks=all`` waits for the partition's in-sync replicas, so a record acknowledged is on
as many brokers as the topic has replicas, and at least ``min.insync.replicas`` of them
when some fall behind. Kafka's defaults (``default.replication.factor`` and
``min.insync.replicas`` both 1) make that one broker, and the gateway creates its topics
with the cluster's default replication unless ``kafka.replication_factor`` says
otherwise: on a cluster of several brokers, a node says so at start, once.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Replication", "durability_warning"]

#: Replicas a topic needs to outlive one broker's loss while a second is down or behind.
_WANTED_REPLICAS = 3


class Replication(NamedTuple):
    """How a topic the gateway made is replicated, on a cluster of ``brokers``."""

    brokers: int
    replicas: int
    min_insync: int


def durability_warning(replication: Replication) -> str | None:
    """What the node should say about ``replication``, or None when all is as it should be."""
    brokers, replicas, min_insync = replication
    wanted = min(_WANTED_REPLICAS, brokers)
    if replicas < wanted:
        return (
            f"the gateway's topics have {replicas} replica(s) on a cluster of {brokers} "
            f"brokers: a record acknowledged is on {replicas} broker(s) only and is lost "
            f"with them; set kafka.replication_factor to {wanted} (or the cluster's "
            "default.replication.factor) before topics are made"
        )
    if replicas > 2 and min_insync < 2:
        return (
            f"the gateway's topics have {replicas} replicas but min.insync.replicas "
            f"{min_insync}: when the others fall behind, acks=all acknowledges a record "
            "that one broker holds; set min.insync.replicas to 2 on the cluster"
        )
    return None
