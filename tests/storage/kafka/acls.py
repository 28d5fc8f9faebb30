"""The ACLs the README's "Storing in Apache Kafka" lists, granted as an operator would."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from sluicegate.testing.kafka_broker import KafkaBroker

__all__ = ["README_ACLS", "grant_readme_acls"]

#: By resource (``test_the_readme_lists_these_acls`` holds the two together).
README_ACLS = {
    ResourceType.TOPIC: (
        "CREATE",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "ALTER",
        "ALTER_CONFIGS",
        "WRITE",
        "READ",
        "DELETE",
    ),
    ResourceType.GROUP: ("READ", "DESCRIBE", "DELETE"),
    ResourceType.TRANSACTIONAL_ID: ("WRITE", "DESCRIBE"),
    ResourceType.BROKER: ("IDEMPOTENT_WRITE",),
}


def _allow(
    kind: ResourceType, name: str, pattern: ResourcePatternType, user: str
) -> Iterator[AclBinding]:
    for operation in README_ACLS[kind]:
        yield AclBinding(
            kind,
            name,
            pattern,
            f"User:{user}",
            "*",
            AclOperation[operation],
            AclPermissionType.ALLOW,
        )


def grant_readme_acls(
    broker: KafkaBroker,
    prefix: str,
    *,
    user: str,
    node: str,
    transactional_id: bool = True,
    denied_writes: Sequence[str] = (),
) -> None:
    """The README's ACLs for ``user``, a gateway of ``prefix`` and node ``node``, granted
    through the plain listener (a super user's); ``denied_writes``: topics (the gateway's
    names) it may not write to."""
    prefixed = ResourcePatternType.PREFIXED
    acls = [
        *_allow(ResourceType.TOPIC, prefix, prefixed, user),
        *_allow(ResourceType.GROUP, prefix, prefixed, user),
        *_allow(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, user),
    ]
    if transactional_id:
        name = f"sluicegate-{prefix}{node}"
        acls += _allow(ResourceType.TRANSACTIONAL_ID, name, ResourcePatternType.LITERAL, user)
    acls += [
        AclBinding(
            ResourceType.TOPIC,
            prefix + topic,
            ResourcePatternType.LITERAL,
            f"User:{user}",
            "*",
            AclOperation.WRITE,
            AclPermissionType.DENY,
        )
        for topic in denied_writes
    ]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for done in admin.create_acls(acls, request_timeout=30).values():
        done.result()
