"""The librdkafka settings of the backend's few clients, built from ``[kafka]``.

Every client gets the user's ``client`` table (security protocol, SASL, TLS files...) as
it is, then the settings the backend owns on top: these decide what an acknowledgement
means and what a read sees, so configuration may not change them (``config.py`` refuses).
"""

from __future__ import annotations

from typing import Any

from sluicegate.config import KafkaSettings
from sluicegate.storage.kafka.client_log import client_log

__all__ = [
    "ONE_BATCH_BYTES",
    "ONE_BATCH_RECORDS",
    "admin_config",
    "consumer_config",
    "producer_config",
]

#: The most records, and bytes, librdkafka puts in one record batch of the transactional
#: producer (``batch.num.messages``, ``batch.size``; ``message.max.bytes`` is 1,000,000 too).
ONE_BATCH_RECORDS = 10_000
ONE_BATCH_BYTES = 1_000_000
#: The transactional producer's ``linger.ms``: its records wait for the commit, which
#: sends them at once (``commit_transaction`` flushes, whatever the linger). A
#: partition's records of one transaction then go in one record batch if they fit.
_TRANSACTION_LINGER_MS = 1_000


def _base(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {
        "client.id": client_id,
        **settings.client,
        "bootstrap.servers": settings.bootstrap_servers,
        # librdkafka retries and reconnects on its own; without this it reports every
        # refused connection at error level, and an outage floods the log.
        "log.connection.close": False,
        # Every topic is created by the admin client, with its configs. A producer's or
        # the admin's metadata request may otherwise create a topic it names (librdkafka's
        # default for both, on a cluster with auto.create.topics.enable, Kafka's
        # default): a topic just deleted, made again with the broker's defaults by the
        # producers' refresh of the topics they know.
        "allow.auto.create.topics": False,
    }


def producer_config(
    settings: KafkaSettings, client_id: str, *, append_timeout: float, transactional_id: str | None
) -> dict[str, Any]:
    """The node's producer: idempotent, ``acks=all``, transactional if given an id."""
    config = _base(settings, client_id)
    config.update(
        {
            "logger": client_log,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": settings.linger_ms,
            # A record not acknowledged by then fails (408): Log.append's deadline.
            # librdkafka wants it above linger.ms.
            "message.timeout.ms": max(int(settings.linger_ms) + 1, round(append_timeout * 1000)),
            "request.timeout.ms": max(1, round(settings.request_timeout * 1000)),
            # A topic deleted under a queued record fails it (404) in two seconds, not
            # when the record times out.
            "topic.metadata.propagation.max.ms": 2000,
        }
    )
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["linger.ms"] = _TRANSACTION_LINGER_MS
        config["batch.num.messages"] = ONE_BATCH_RECORDS
        config["batch.size"] = ONE_BATCH_BYTES
        config["message.timeout.ms"] = max(_TRANSACTION_LINGER_MS + 1, round(append_timeout * 1000))
        # The broker aborts a transaction this node left open (a crash) after this long.
        config["transaction.timeout.ms"] = max(60_000, round(append_timeout * 2000))
    return config


def consumer_config(
    settings: KafkaSettings,
    client_id: str,
    group_id: str,
    *,
    fetch_wait_ms: int,
    partition_fetch_bytes: int | None = None,
) -> dict[str, Any]:
    """A node-wide fetcher: assigned partitions only, committed records only, no commits.

    ``fetch_wait_ms``: how long the broker may hold a fetch of a partition at its end. The
    tail waits there for new records (long); the reader never asks past the end it knows,
    but librdkafka keeps one fetch in flight per broker and a new assignment waits for it,
    so the reader's must be short. ``partition_fetch_bytes``: the most one fetch brings of
    a partition (``max.partition.fetch.bytes``; None: librdkafka's 1 MiB). A larger record
    batch still comes whole, so a record of any size is read.
    """
    config = _base(settings, client_id)
    config.update(
        {
            "logger": client_log,
            # Required by librdkafka; the fetchers never join it (assign, not subscribe).
            "group.id": group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # A position below the low watermark is the reader's error, never a silent jump.
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": fetch_wait_ms,
            "socket.timeout.ms": max(10, round(settings.request_timeout * 1000)),
        }
    )
    if partition_fetch_bytes is not None:
        config["max.partition.fetch.bytes"] = partition_fetch_bytes
    return config


def admin_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {**_base(settings, client_id), "logger": client_log}
