"""librdkafka's errors translated into sluicegate's, most specific first.

Everything the Kafka backend raises goes through ``translate`` at the boundary, so the
dialects see the same hierarchy as on SQLite: a message too large is 413, an unknown
topic 404, a broker that does not answer 503, a record not confirmed in time 408. A
refusal of the gateway's own login or of one of its ACLs is a 500 that says so: the
client is not at fault, and a retry would be refused the same way.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from sluicegate.errors import (
    BadRequest,
    OffsetOutOfRange,
    PayloadTooLarge,
    SluicegateError,
    StorageError,
    StorageForbidden,
    StorageTimeout,
    StorageUnavailable,
    TopicExists,
    UnknownTopic,
)

__all__ = ["REFUSED_LOGIN", "STALE_METADATA", "kafka_error", "reported", "translate"]

_TOO_LARGE = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE,
}
_UNKNOWN_TOPIC = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_ID,
}
#: librdkafka refused a record at once from what it remembers of the topic: missing, or
#: without that partition. The topic may have been made again, or grown, since it last
#: asked the cluster (its refresh is minutes apart): asking again settles it.
STALE_METADATA = frozenset({KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})
#: The cluster refused the gateway's SASL login (bad credentials, an unknown user).
REFUSED_LOGIN = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
#: An ACL of the cluster does not allow the gateway's principal what it asked.
_NOT_ALLOWED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}
#: Sent, but whether it was stored is not known: timed out, purged in flight (a producer
#: closed under it), failed by a producer's fatal error, or a call cut short by its
#: client's end (``_DESTROY``; a record's report of it is ``reported``'s).
_OUTCOME_UNKNOWN = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._PURGE_INFLIGHT,
    KafkaError._FATAL,
    KafkaError._DESTROY,
}
_UNAVAILABLE = {
    KafkaError._PURGE_QUEUE,  # never sent
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError._TIMED_OUT,
    KafkaError._TIMED_OUT_QUEUE,
    KafkaError._WAIT_COORD,
    KafkaError.BROKER_NOT_AVAILABLE,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
    KafkaError.NETWORK_EXCEPTION,
    # A broker handle decommissioned under a request in flight (librdkafka forgets the
    # brokers it learned when every connection is lost, and those a metadata answer no
    # longer lists), or moved to a new address; a partial metadata answer.
    KafkaError._DESTROY_BROKER,
    KafkaError._NODE_UPDATE,
    KafkaError._PARTIAL,
}
_INVALID = {
    KafkaError.INVALID_PARTITIONS,
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.INVALID_CONFIG,
    KafkaError.INVALID_REQUEST,
    KafkaError.POLICY_VIOLATION,
    KafkaError.TOPIC_EXCEPTION,
    # A record the broker will not take (one without a key in a topic compacted outside
    # the gateway's knowledge): the request's, not the cluster's fault.
    KafkaError.INVALID_RECORD,
}


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` inside ``exc`` (a ``KafkaException`` from any call), if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def reported(error: KafkaError) -> KafkaError:
    """A record's delivery error as ``translate`` should take it.

    A producer destroyed serves no report, so a report of ``_DESTROY`` comes from a live
    one: the record's partition left librdkafka's metadata (its topic deleted) while a
    retry of it was in flight, and the retry was put back in the dropped partition, which
    fails what it holds so when it is freed (``rd_kafka_toppar_destroy_final``). A moment
    sooner the record would have been failed as an unknown partition: it is one.
    """
    if error.code() == KafkaError._DESTROY:
        return KafkaError(
            KafkaError._UNKNOWN_PARTITION, f"{error.str()} (its partition left the metadata)"
        )
    return error


def translate(error: KafkaError, *, topic: str | None = None) -> SluicegateError:
    """The sluicegate error for ``error``; ``topic`` is named in messages that need it."""
    code = error.code()
    text = error.str()
    detail = {} if topic is None else {"topic": topic}
    if code in _TOO_LARGE:
        return PayloadTooLarge(f"the record is larger than Kafka accepts: {text}", **detail)
    named = "a topic" if topic is None else f"topic {topic!r}"
    if code in _UNKNOWN_TOPIC:
        return UnknownTopic(f"{named} does not exist in Kafka: {text}", **detail)
    if code == KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicExists(f"{named} already exists", **detail)
    if code == KafkaError.OFFSET_OUT_OF_RANGE:
        return OffsetOutOfRange(f"offset out of range: {text}", **detail)
    if code in _NOT_ALLOWED:
        where = "" if topic is None else f" on topic {topic!r}"
        return StorageForbidden(
            f"Kafka's ACLs do not allow the gateway's principal this{where}: {text} (the "
            "README's 'Storing in Apache Kafka' lists the ACLs it needs)",
            **detail,
        )
    if code in REFUSED_LOGIN:
        return StorageForbidden(f"Kafka refused the gateway's credentials: {text}")
    if code in _OUTCOME_UNKNOWN:
        return StorageTimeout(
            f"Kafka did not confirm the write: {text}; it is either stored or not"
        )
    if code in _INVALID:
        return BadRequest(f"Kafka refused the request: {text}", **detail)
    if code in _UNAVAILABLE or error.retriable():
        return StorageUnavailable(f"Kafka is unavailable: {text}")
    return StorageError(f"Kafka failed: {text}")
