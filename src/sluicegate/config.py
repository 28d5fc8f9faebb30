"""Settings: one typed shape, read from a TOML file and ``SLUICEGATE_*`` variables.

Precedence, lowest first: defaults, the TOML file, the environment, command-line flags.
An environment variable names a setting by its section and key joined with a double
underscore, e.g. ``SLUICEGATE_SERVER__PORT=9000`` or ``SLUICEGATE_STORAGE__DATA_DIR=/var/lib/sg``;
a text setting takes the value as it is, a list of text takes ``a,b`` or ``["a", "b"]``,
and the others parse it as a TOML value (``true``, ``5``, ``2.5``). Every problem is
reported as a ``ConfigError`` naming the key.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from sluicegate.core.auth.patterns import validate_pattern
from sluicegate.core.auth.principals import MAX_DELIVERIES, validate_client_name
from sluicegate.core.topics import validate_topic_name
from sluicegate.errors import BadRequest, ConfigError, InvalidTopicName

__all__ = [
    "JWT_ASYMMETRIC_ALGORITHMS",
    "JWT_EC_ALGORITHMS_BY_CURVE",
    "JWT_RSA_ALGORITHMS",
    "JWT_SUPPORTED_ALGORITHMS",
    "JWT_SYMMETRIC_ALGORITHMS",
    "AuthSettings",
    "ClientSettings",
    "CloudEventRoute",
    "CloudEventSchema",
    "CloudEventSettings",
    "ClusterSettings",
    "JwtSettings",
    "KafkaSettings",
    "LimitSettings",
    "RateSettings",
    "RecordsV2Settings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "TlsSettings",
    "TopicSettings",
    "load_settings",
]

ENV_PREFIX = "SLUICEGATE_"
#: A node's id when none is set (one node alone needs no other).
DEFAULT_NODE_ID = "node-1"
#: Identities are remembered with an expiry in 32-bit seconds; a year is plenty.
_MAX_DEDUP_WINDOW = 366 * 86_400


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class TlsSettings(_Section):
    """TLS for the listener; with ``client_ca`` set, client certificates are verified."""

    certfile: str | None = None
    keyfile: str | None = None
    #: CA bundle (PEM) that client certificates must chain to.
    client_ca: str | None = None
    #: With ``client_ca``: ``required`` refuses connections without a client certificate;
    #: ``optional`` also serves clients that authenticate with an API key or JWT instead.
    client_cert: Literal["required", "optional"] = "required"
    minimum_version: Literal["1.2", "1.3"] = "1.2"


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    #: This node's id; the cloudevents dialect calls it the bridge.
    node_id: str = DEFAULT_NODE_ID
    #: Seconds streams and in-flight requests get to finish on shutdown, together (long
    #: polls answer at once); a request still running then is answered 408.
    graceful_shutdown: float = 10.0
    #: ``json``, ``text``, or ``auto`` (JSON unless stderr is a terminal).
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False
    #: Seconds a client has to send a request's headers: from connecting, or from the
    #: request's first byte. A connection that sends nothing is closed, one in the
    #: middle of its headers is answered 408.
    header_timeout: float = 10.0
    #: Seconds a client has to send a request's body once its headers are in; 408 after.
    body_timeout: float = 30.0
    #: Seconds an idle connection stays open after a response, for the next request.
    keep_alive_timeout: float = 5.0
    #: Bytes of a request's line and headers together (414 or 431 beyond).
    max_header_bytes: int = 64 * 1024
    #: Serve HTTP/2 beside HTTP/1.1 on the listener (through Hypercorn instead of
    #: uvicorn): h2 through ALPN with TLS, h2c with prior knowledge without, WebSockets
    #: over HTTP/2 streams (RFC 8441). Off: uvicorn, HTTP/1.1 only, the faster of the two.
    http2: bool = False
    #: Addresses or networks (``10.0.0.0/8``) of reverse proxies whose ``X-Forwarded-Proto``
    #: and ``X-Forwarded-Host`` headers are believed; from anyone else they are ignored.
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    tls: TlsSettings = msgspec.field(default_factory=TlsSettings)


class StorageSettings(_Section):
    #: ``sqlite``: the embedded log in ``data_dir``; ``kafka``: a Kafka cluster (``[kafka]``).
    backend: Literal["sqlite", "kafka"] = "sqlite"
    data_dir: str = "./data"
    #: Seconds a produce request waits for its durable commit before answering 408.
    append_timeout: float = 30.0
    #: Writes queued for the writer before new ones are refused with 503.
    max_pending_appends: int = 100_000
    #: Records one transaction may hold; bigger queues are committed in several.
    max_commit_records: int = 20_000
    #: Seconds between retention passes.
    retention_interval: float = 30.0
    #: Bytes of WAL past which a checkpoint restarts it, and its size after a restart.
    wal_size_limit: int = 16 * 1024 * 1024


#: librdkafka settings the Kafka backend owns: what makes an acknowledgement durable
#: (``acks``, idempotence, transactions), what reads see, how callbacks are delivered, and
#: that only the backend creates topics.
KAFKA_RESERVED_CLIENT_SETTINGS = frozenset(
    {
        "bootstrap.servers",
        "allow.auto.create.topics",
        "acks",
        "request.required.acks",
        "enable.idempotence",
        "transactional.id",
        "isolation.level",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "auto.offset.reset",
        "error_cb",
        "logger",
        "stats_cb",
        "on_delivery",
        "dr_cb",
        "dr_msg_cb",
    }
)


class KafkaSettings(_Section):
    """The Kafka cluster of ``storage.backend = "kafka"``."""

    #: ``host:port[,host:port...]`` of the cluster.
    bootstrap_servers: str = ""
    #: librdkafka settings passed as they are to every client: ``security.protocol``,
    #: ``sasl.mechanism``, ``sasl.username``, ``ssl.ca.location``... (see
    #: ``KAFKA_RESERVED_CLIENT_SETTINGS`` for the few the backend owns).
    client: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)
    #: Seconds an admin request, a read or a metadata query may take before 503.
    request_timeout: float = 10.0
    #: Replicas of the topics sluicegate creates; -1 takes the broker's default.
    replication_factor: int = -1
    #: Prepended to every topic and group name on the cluster, so several gateways (or
    #: test runs) can share one cluster without seeing each other.
    topic_prefix: str = ""
    #: The producer's ``transactional.id``: stable per node, unique in the cluster.
    #: Empty: ``sluicegate-<topic_prefix><server.node_id>``.
    transactional_id: str = ""
    #: Milliseconds the producer waits to fill a batch (librdkafka's ``linger.ms``).
    #: 0: records of concurrent requests still share produce requests while earlier ones
    #: are out, and a request never waits for a timer; 1 adds a millisecond to every
    #: request and, at low load, halves what the broker and librdkafka spend per record
    #: (see docs/design-notes.md, "Kafka single-record produce: no linger"). librdkafka
    #: waits in whole milliseconds, rounded up: 0.5 acts as 1, 1.25 as 2.
    linger_ms: float = 0.0

    def __repr__(self) -> str:
        # The client table may hold SASL passwords and key passphrases: never print them.
        client = {
            key: "***" if any(word in key for word in _SECRET_WORDS) else value
            for key, value in self.client.items()
        }
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, client={client!r}, "
            f"topic_prefix={self.topic_prefix!r})"
        )


#: Parts of librdkafka setting names whose values are secrets.
_SECRET_WORDS = ("password", "secret", "token", "key.pem", "jaas")


class ClusterSettings(_Section):
    """Several nodes on one Kafka cluster: who this node is, and how the others reach it."""

    #: This node's id: the ``{bridge}`` of the CloudEvents consumer URLs it hands out and
    #: part of its Kafka transactional id, so it must stay the same across restarts and be
    #: unique in the cluster. Empty: ``server.node_id`` (``node-1`` unless set).
    node_id: str = ""
    #: The base URL other nodes send this node's requests to (``http://10.0.0.5:8080``).
    #: Empty: the listen address (``server.host``, or this host's name when that is a
    #: wildcard, and the port the listener got).
    advertised_url: str = ""
    #: Seconds between this node's heartbeat records.
    heartbeat_interval: float = 2.0
    #: Seconds after its last heartbeat at which a node counts as gone: its consumer
    #: instances then answer 404 on every node.
    heartbeat_timeout: float = 10.0
    #: Shared by every node: proves a request comes from another node. Empty: requests are
    #: not forwarded (a ``{bridge}`` of another node answers 404). At least 32 bytes.
    secret: str = ""
    #: Consumer groups hash onto this many group shards; each shard's groups are served by
    #: the one node holding it. The same on every node of a cluster (a node whose value
    #: differs from the shards' records refuses to start); changing it needs every node
    #: stopped.
    group_shards: int = 64

    def __repr__(self) -> str:
        # Never print the secret.
        return (
            f"ClusterSettings(node_id={self.node_id!r}, advertised_url={self.advertised_url!r}, "
            f"heartbeat_interval={self.heartbeat_interval!r}, "
            f"heartbeat_timeout={self.heartbeat_timeout!r}, "
            f"group_shards={self.group_shards!r}, "
            f"secret={'***' if self.secret else ''!r})"
        )


#: What a node id may hold: it is a path segment of consumer URLs and part of Kafka ids.
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The shortest node-to-node secret taken, as for ``auth.jwt.secret``.
_MIN_CLUSTER_SECRET_BYTES = 32
#: Group shards at most: a node holds a lease record per shard it serves.
_MAX_GROUP_SHARDS = 4096


class TopicSettings(_Section):
    #: Create a topic on first produce, as Kafka's ``auto.create.topics.enable``.
    auto_create: bool = True
    default_partitions: int = 1
    default_retention_ms: int | None = 7 * 24 * 3600 * 1000


#: The JWT algorithms ``auth.jwt.algorithms`` may name, by family. ``core.auth.jwt``
#: verifies with them; they are kept here, below it, because the settings are checked
#: against them when they are read.
JWT_SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
JWT_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
#: A JWK's elliptic curve → the one algorithm that uses it.
JWT_EC_ALGORITHMS_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
JWT_ASYMMETRIC_ALGORITHMS = (
    JWT_RSA_ALGORITHMS | frozenset(JWT_EC_ALGORITHMS_BY_CURVE.values()) | {"EdDSA"}
)
JWT_SUPPORTED_ALGORITHMS = JWT_SYMMETRIC_ALGORITHMS | JWT_ASYMMETRIC_ALGORITHMS


class JwtSettings(_Section):
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = msgspec.field(default_factory=list)
    #: HS256 shared secret.
    secret: str | None = None
    #: Path or URL of a JWKS document with the public keys (RS256, ES256, EdDSA).
    jwks: str | None = None
    #: Claim that names the client.
    client_claim: str = "sub"
    #: Seconds of clock skew tolerated on ``exp`` and ``nbf``.
    leeway: float = 30.0
    #: Seconds between reloads of the JWKS (file or URL).
    jwks_refresh: float = 300.0

    def __repr__(self) -> str:
        secret = None if self.secret is None else "***"
        return (
            f"JwtSettings(issuer={self.issuer!r}, audience={self.audience!r}, "
            f"algorithms={self.algorithms!r}, secret={secret!r}, jwks={self.jwks!r}, "
            f"client_claim={self.client_claim!r})"
        )


class ClientSettings(_Section):
    """A client defined in the config file (more can be created through the admin API)."""

    name: str
    produce: list[str] = msgspec.field(default_factory=list)
    consume: list[str] = msgspec.field(default_factory=list)
    admin: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: sources and types this client may produce, types it consumes.
    ce_sources: list[str] = msgspec.field(default_factory=list)
    ce_produce_types: list[str] = msgspec.field(default_factory=list)
    ce_consume_types: list[str] = msgspec.field(default_factory=list)
    #: CloudEvents: deliveries after which an unconfirmed event goes to the client's dead
    #: stream (0: never); a consumer group may ask for another value (``max_deliveries``).
    ce_max_deliveries: int = 0
    #: Subjects (CN or SAN) of TLS client certificates that authenticate as this client.
    certificate_subjects: list[str] = msgspec.field(default_factory=list)


class AuthSettings(_Section):
    #: Off only for local experiments: then the server binds to loopback only.
    enabled: bool = True
    jwt: JwtSettings = msgspec.field(default_factory=JwtSettings)
    clients: list[ClientSettings] = msgspec.field(default_factory=list)


class RateSettings(_Section):
    """A token bucket: ``rate_per_second`` sustained, ``burst`` at once (0: one second's worth)."""

    rate_per_second: float
    burst: int = 0


def _default_dialect_rates() -> dict[str, RateSettings]:
    # Workato's legacy /pubsub endpoints are limited to 1,000 requests per minute.
    return {"topics_v1_legacy": RateSettings(rate_per_second=1000 / 60, burst=1000)}


def _default_body_limits() -> dict[str, int]:
    return {
        "admin": 64 * 1024,
        "topic_admin": 8 * 1024 * 1024,
        "schema_registry": 1024 * 1024,
        # Workato's limit for its event streams APIs, legacy paths included.
        "topics_v1": 1024 * 1024,
        "topics_v1_legacy": 1024 * 1024,
    }


class LimitSettings(_Section):
    #: In-flight requests overall (503 beyond) and per client (429 beyond).
    max_concurrent_requests: int = 4096
    max_concurrent_requests_per_client: int = 1024
    max_long_polls: int = 10_000
    max_long_polls_per_client: int = 1000
    max_websockets: int = 10_000
    max_websockets_per_client: int = 1000
    #: Token bucket per client and dialect: sustained requests per second (0: unlimited),
    #: and burst (0: one second's worth).
    rate_per_second: float = 0.0
    rate_burst: int = 0
    #: Per-dialect buckets that replace the default above, keyed by the route's dialect.
    dialect_rates: dict[str, RateSettings] = msgspec.field(default_factory=_default_dialect_rates)
    #: JSON bodies: nesting depth, keys across all objects, and bytes in one string.
    max_json_depth: int = 64
    max_json_keys: int = 10_000
    max_json_string_bytes: int = 1024 * 1024
    #: Request body bytes per dialect (413 beyond), refused while the body is read.
    #: records v2 takes ``records_v2.max_body_bytes`` (the seed's 64 kB).
    max_body_bytes: dict[str, int] = msgspec.field(default_factory=_default_body_limits)


class RecordsV2Settings(_Section):
    max_body_bytes: int = 64 * 1024


class CloudEventRoute(_Section):
    """Events whose type matches one of ``types`` (exact or glob) go to ``topic``."""

    types: list[str]
    topic: str


class CloudEventSchema(_Section):
    """A JSON Schema for the ``data`` of events of ``type``: a ``file`` or inline ``schema``."""

    type: str
    #: Path of a JSON file holding the schema.
    file: str | None = None
    #: The schema itself: a TOML table, or a string of JSON.
    schema: dict[str, Any] | str | None = None


class CloudEventSettings(_Section):
    #: Topic of a type without a route: ``<topic_prefix><type>`` (see core.cloudevents.routing).
    topic_prefix: str = "ce."
    routes: list[CloudEventRoute] = msgspec.field(default_factory=list)
    #: Bytes of one request, a single event or a batch (413 beyond).
    max_request_bytes: int = 1024 * 1024
    #: Bytes of one event: its data and every attribute's value (413 beyond).
    max_event_bytes: int = 64 * 1024
    #: Seconds an event's ``time`` may lie ahead of the gateway's clock (400 beyond).
    clock_skew: float = 5.0
    #: Partitions of a CloudEvents topic the gateway creates: a group scales to 1, 2, 3,
    #: 4, 6 or 12 instances.
    partitions: int = 12
    #: Milliseconds events are kept in the topics the gateway creates (120 hours).
    retention_ms: int = 120 * 3600 * 1000
    #: Data schemas by event type, registered at start (see core.cloudevents.schemas).
    schemas: list[CloudEventSchema] = msgspec.field(default_factory=list)
    #: Seconds a stored event's ``source`` + ``id`` is remembered, so that a retry of it
    #: is acknowledged without storing it again (never longer than its topic's retention).
    dedup_window: float = 86_400.0
    #: Identities remembered at most; past it the oldest are forgotten first, which makes
    #: the window shorter (the ``effective_window_seconds`` gauge). About 27 bytes each,
    #: so the default bound is about 190 MB.
    dedup_max_ids: int = 7_000_000
    #: Consumers: seconds without a request after which a consumer instance is deleted.
    consumer_idle_timeout: float = 300.0
    #: Seconds a long poll waits for an event before 204; a request may ask for less or
    #: more (``?timeout=``), up to ``max_poll_timeout``.
    poll_timeout: float = 20.0
    max_poll_timeout: float = 60.0
    #: Events and bytes of event data one ``…/events`` answer holds at most.
    batch_size: int = 1000
    batch_bytes: int = 1024 * 1024
    #: Events an instance may have delivered and unconfirmed; it reads no more until
    #: some are confirmed.
    max_unconfirmed: int = 10_000
    #: Seconds an instance given a partition when the group's instances change waits for
    #: the instance it came from to confirm what it delivered of it; then it reads it
    #: anyway, and what is still unconfirmed comes again (0: no wait).
    handover_timeout: float = 10.0
    #: Live consumer instances on this node, overall (503 beyond) and per client (429).
    max_consumer_instances: int = 100_000
    max_consumer_instances_per_client: int = 10_000
    #: Consumer groups labelled in /metrics; the others are summed under ``other``.
    metrics_max_groups: int = 100
    #: The absolute URL consumer instances' ``Location`` starts with (``https://events.example.com``);
    #: empty: the request's scheme and ``Host`` (see ``server.trusted_proxies``).
    public_base_url: str = ""
    #: WebSocket consumers (``/ce/ws``): events one connection may have sent and not
    #: confirmed; the server reads no more for it until confirmations arrive.
    websocket_window: int = 10_000
    #: Web origins (``https://app.example.com``) whose pages may open a WebSocket
    #: consumer, or ``["*"]`` for any. Empty: only a page of the gateway's own origin
    #: (its ``Host``). Clients that are no browser send no ``Origin`` and are not checked.
    websocket_allowed_origins: list[str] = msgspec.field(default_factory=list)
    #: Bytes of one message a client sends (a ``dead:`` event, say); the connection is
    #: closed with 1009 beyond.
    websocket_max_message_bytes: int = 1024 * 1024
    #: Seconds between WebSocket pings, and seconds a peer has to answer one before it
    #: is dropped (its unconfirmed events then go to the group again).
    websocket_ping_interval: float = 20.0
    websocket_ping_timeout: float = 20.0
    #: permessage-deflate, when the client offers it. Off: it costs more CPU per event
    #: than sending an event does, and tens of kilobytes of zlib state per connection.
    websocket_compression: bool = False
    #: Server-Sent Events consumers (``/ce/sse``): milliseconds a client waits before it
    #: reconnects (the stream's ``retry:``), and seconds an instance whose stream ended
    #: waits for that reconnection (its ``Last-Event-ID`` confirms and resumes) before it
    #: expires and its unconfirmed events go to the group again (0: at once).
    sse_retry_ms: int = 3000
    sse_reconnect_grace: float = 30.0


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    topics: TopicSettings = msgspec.field(default_factory=TopicSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    records_v2: RecordsV2Settings = msgspec.field(default_factory=RecordsV2Settings)
    cloudevents: CloudEventSettings = msgspec.field(default_factory=CloudEventSettings)
    cluster: ClusterSettings = msgspec.field(default_factory=ClusterSettings)

    def validate(self) -> Settings:
        """Check what types cannot say; raise ``ConfigError`` naming the key."""
        checks: list[tuple[bool, str, str]] = [
            (
                bool(self.server.host.strip()),
                "server.host",
                "must not be empty (0.0.0.0 or :: listens on every address)",
            ),
            (0 <= self.server.port <= 65535, "server.port", "must be between 0 and 65535"),
            (self.server.graceful_shutdown >= 0, "server.graceful_shutdown", "must be >= 0"),
            (self.server.header_timeout > 0, "server.header_timeout", "must be > 0"),
            (self.server.body_timeout > 0, "server.body_timeout", "must be > 0"),
            (self.server.keep_alive_timeout > 0, "server.keep_alive_timeout", "must be > 0"),
            (self.server.max_header_bytes >= 1024, "server.max_header_bytes", "must be >= 1024"),
            (
                bool(self.storage.data_dir.strip()),
                "storage.data_dir",
                "must not be empty (it would mean the working directory)",
            ),
            (self.storage.append_timeout > 0, "storage.append_timeout", "must be > 0"),
            (self.storage.max_pending_appends > 0, "storage.max_pending_appends", "must be > 0"),
            (self.storage.max_commit_records > 0, "storage.max_commit_records", "must be > 0"),
            (self.storage.retention_interval > 0, "storage.retention_interval", "must be > 0"),
            (self.storage.wal_size_limit > 0, "storage.wal_size_limit", "must be > 0"),
            (self.topics.default_partitions >= 1, "topics.default_partitions", "must be >= 1"),
            (self.records_v2.max_body_bytes > 0, "records_v2.max_body_bytes", "must be > 0"),
            *_cloudevent_checks(self.cloudevents),
            *_consumer_checks(self.cloudevents),
            (
                1 <= self.cloudevents.dedup_window <= _MAX_DEDUP_WINDOW,
                "cloudevents.dedup_window",
                f"must be between 1 and {_MAX_DEDUP_WINDOW} seconds (a year)",
            ),
            (self.cloudevents.dedup_max_ids >= 1, "cloudevents.dedup_max_ids", "must be >= 1"),
            *(
                (limit > 0, f"limits.max_body_bytes.{dialect}", "must be > 0")
                for dialect, limit in self.limits.max_body_bytes.items()
            ),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(key, message)
        tls = self.server.tls
        if (tls.certfile is None) != (tls.keyfile is None):
            raise ConfigError("server.tls", "certfile and keyfile must be set together")
        if tls.client_ca is not None and tls.certfile is None:
            raise ConfigError("server.tls.client_ca", "needs server.tls.certfile and keyfile")
        _validate_limits(self.limits)
        _validate_proxies(self.server.trusted_proxies)
        _validate_auth(self.auth)
        _validate_cluster(self)
        if self.storage.backend == "kafka":
            _validate_kafka(self.kafka)
        return self


def _cloudevent_checks(ce: CloudEventSettings) -> list[tuple[bool, str, str]]:
    checks = [
        (ce.max_request_bytes > 0, "cloudevents.max_request_bytes", "must be > 0"),
        (ce.max_event_bytes > 0, "cloudevents.max_event_bytes", "must be > 0"),
        (ce.clock_skew >= 0, "cloudevents.clock_skew", "must be >= 0"),
        (ce.partitions >= 1, "cloudevents.partitions", "must be >= 1"),
        (ce.retention_ms > 0, "cloudevents.retention_ms", "must be > 0"),
    ]
    for index, schema in enumerate(ce.schemas):
        where = f"cloudevents.schemas[{index}]"
        checks.append((bool(schema.type), f"{where}.type", "must not be empty"))
        checks.append(
            (
                (schema.file is None) != (schema.schema is None),
                where,
                "give the schema as file or as schema, exactly one of them",
            )
        )
    return checks


def _consumer_checks(ce: CloudEventSettings) -> list[tuple[bool, str, str]]:
    return [
        (ce.consumer_idle_timeout > 0, "cloudevents.consumer_idle_timeout", "must be > 0"),
        (ce.poll_timeout >= 0, "cloudevents.poll_timeout", "must be >= 0"),
        (
            ce.poll_timeout <= ce.max_poll_timeout,
            "cloudevents.poll_timeout",
            "must be <= cloudevents.max_poll_timeout",
        ),
        (
            # A poll keeps its instance alive; one longer than the idle timeout would not.
            ce.max_poll_timeout < ce.consumer_idle_timeout,
            "cloudevents.max_poll_timeout",
            "must be < cloudevents.consumer_idle_timeout",
        ),
        (ce.batch_size >= 1, "cloudevents.batch_size", "must be >= 1"),
        (ce.batch_bytes >= 1, "cloudevents.batch_bytes", "must be >= 1"),
        (ce.max_unconfirmed >= 1, "cloudevents.max_unconfirmed", "must be >= 1"),
        (ce.handover_timeout >= 0, "cloudevents.handover_timeout", "must be >= 0"),
        (ce.max_consumer_instances >= 1, "cloudevents.max_consumer_instances", "must be >= 1"),
        (
            ce.max_consumer_instances_per_client >= 1,
            "cloudevents.max_consumer_instances_per_client",
            "must be >= 1",
        ),
        (ce.websocket_window >= 1, "cloudevents.websocket_window", "must be >= 1"),
        (ce.metrics_max_groups >= 0, "cloudevents.metrics_max_groups", "must be >= 0"),
        (
            ce.websocket_max_message_bytes >= 1024,
            "cloudevents.websocket_max_message_bytes",
            "must be >= 1024",
        ),
        (ce.websocket_ping_interval > 0, "cloudevents.websocket_ping_interval", "must be > 0"),
        (ce.websocket_ping_timeout > 0, "cloudevents.websocket_ping_timeout", "must be > 0"),
        (ce.sse_retry_ms >= 0, "cloudevents.sse_retry_ms", "must be >= 0"),
        (ce.sse_reconnect_grace >= 0, "cloudevents.sse_reconnect_grace", "must be >= 0"),
        *(
            (
                origin == "*" or _is_origin(origin),
                f"cloudevents.websocket_allowed_origins[{index}]",
                f"expected * or an origin such as https://app.example.com, got {origin!r}",
            )
            for index, origin in enumerate(ce.websocket_allowed_origins)
        ),
        (
            not ce.public_base_url or _is_base_url(ce.public_base_url),
            "cloudevents.public_base_url",
            "expected an absolute http or https URL without query or fragment, "
            "e.g. https://events.example.com",
        ),
    ]


def _is_base_url(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.netloc)
        and not parts.query
        and not parts.fragment
        and url.isprintable()
        and " " not in url
    )


def _is_origin(origin: str) -> bool:
    """``scheme://host[:port]``, nothing more: what a browser sends as ``Origin``."""
    parts = urlsplit(origin)
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.netloc)
        and origin == f"{parts.scheme}://{parts.netloc}"
        and origin.isprintable()
        and " " not in origin
    )


def _validate_proxies(proxies: list[str]) -> None:
    for index, proxy in enumerate(proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"server.trusted_proxies[{index}]",
                f"expected an IP address or network (10.0.0.0/8), got {proxy!r}",
            ) from None


def _validate_kafka(kafka: KafkaSettings) -> None:
    servers = [s.strip() for s in kafka.bootstrap_servers.split(",")]
    if not kafka.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers", 'required when storage.backend is "kafka"')
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ConfigError(
                "kafka.bootstrap_servers", f"expected host:port[,host:port...], got {server!r}"
            )
    reserved = sorted(KAFKA_RESERVED_CLIENT_SETTINGS & set(kafka.client))
    if reserved:
        raise ConfigError(
            "kafka.client", f"{reserved} are set by sluicegate and may not be overridden"
        )
    _check_client_table(kafka.client)
    if not kafka.request_timeout > 0:
        raise ConfigError("kafka.request_timeout", "must be > 0")
    if kafka.replication_factor != -1 and kafka.replication_factor < 1:
        raise ConfigError("kafka.replication_factor", "must be >= 1, or -1 (broker default)")
    if kafka.linger_ms < 0:
        raise ConfigError("kafka.linger_ms", "must be >= 0")
    if kafka.topic_prefix:
        try:
            validate_topic_name(kafka.topic_prefix)
        except InvalidTopicName:
            raise ConfigError(
                "kafka.topic_prefix", "expected characters of [a-zA-Z0-9._-] only"
            ) from None


def _check_client_table(client: Mapping[str, Any]) -> None:
    """librdkafka's own check of ``kafka.client`` (names, values, TLS files, SASL), at
    start rather than when the first client is made: a producer and a consumer are made
    with it and dropped. Without bootstrap servers they connect to nothing; they take
    about a millisecond."""
    from confluent_kafka import Consumer, KafkaException, Producer

    # Quiet: without bootstrap servers librdkafka would warn that it cannot connect.
    for make, own in ((Producer, {}), (Consumer, {"group.id": "sluicegate-config-check"})):
        try:
            made = make({**client, **own, "log_level": 0})
        except KafkaException as exc:
            reason = exc.args[0].str() if exc.args else str(exc)
            raise ConfigError("kafka.client", f"librdkafka refuses it: {reason}") from None
        except (TypeError, ValueError) as exc:  # a value of a type librdkafka cannot take
            raise ConfigError("kafka.client", f"librdkafka refuses it: {exc}") from None
        if isinstance(made, Consumer):
            made.close()


def _validate_cluster(settings: Settings) -> None:
    """Check ``[cluster]`` and settle the node id: ``cluster.node_id`` and
    ``server.node_id`` name the same thing, so after this both hold it."""
    cluster, server = settings.cluster, settings.server
    if cluster.node_id and server.node_id not in (cluster.node_id, DEFAULT_NODE_ID):
        raise ConfigError(
            "cluster.node_id",
            f"{cluster.node_id!r} differs from server.node_id {server.node_id!r}; set one of them",
        )
    node_id = cluster.node_id or server.node_id
    if _NODE_ID.fullmatch(node_id) is None:
        raise ConfigError(
            "cluster.node_id",
            f"expected 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit, "
            f"got {node_id[:80]!r}",
        )
    cluster.node_id = server.node_id = node_id
    if cluster.advertised_url and not _is_base_url(cluster.advertised_url):
        raise ConfigError(
            "cluster.advertised_url",
            "expected an absolute http or https URL without query or fragment, "
            "e.g. http://10.0.0.5:8080",
        )
    if not cluster.heartbeat_interval > 0:
        raise ConfigError("cluster.heartbeat_interval", "must be > 0")
    if not cluster.heartbeat_timeout >= 2 * cluster.heartbeat_interval:
        # One late or lost heartbeat must not make a live node look gone.
        raise ConfigError(
            "cluster.heartbeat_timeout", "must be at least twice cluster.heartbeat_interval"
        )
    if not 1 <= cluster.group_shards <= _MAX_GROUP_SHARDS:
        raise ConfigError("cluster.group_shards", f"must be 1 to {_MAX_GROUP_SHARDS}")
    if cluster.secret and len(cluster.secret.encode()) < _MIN_CLUSTER_SECRET_BYTES:
        raise ConfigError(
            "cluster.secret", f"must be at least {_MIN_CLUSTER_SECRET_BYTES} bytes (or empty)"
        )
    if cluster.secret and not cluster.secret.isprintable():
        raise ConfigError("cluster.secret", "must be printable: it travels in an HTTP header")


def _validate_limits(limits: LimitSettings) -> None:
    positive = [
        "max_concurrent_requests",
        "max_concurrent_requests_per_client",
        "max_long_polls",
        "max_long_polls_per_client",
        "max_websockets",
        "max_websockets_per_client",
        "max_json_depth",
        "max_json_keys",
        "max_json_string_bytes",
    ]
    for name in positive:
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}", "must be >= 1")
    if limits.rate_per_second < 0:
        raise ConfigError("limits.rate_per_second", "must be >= 0 (0: unlimited)")
    if limits.rate_burst < 0:
        raise ConfigError("limits.rate_burst", "must be >= 0")
    for dialect, rate in limits.dialect_rates.items():
        if rate.rate_per_second <= 0:
            raise ConfigError(f"limits.dialect_rates.{dialect}.rate_per_second", "must be > 0")
        if rate.burst < 0:
            raise ConfigError(f"limits.dialect_rates.{dialect}.burst", "must be >= 0")


def _validate_jwt(jwt: JwtSettings) -> None:
    algorithms = set(jwt.algorithms)
    if not algorithms:
        if jwt.secret is not None or jwt.jwks is not None:
            raise ConfigError("auth.jwt.algorithms", "required when secret or jwks is set")
        return
    unknown = sorted(algorithms - JWT_SUPPORTED_ALGORITHMS)
    if unknown:
        raise ConfigError(
            "auth.jwt.algorithms",
            f"unsupported {unknown}; choose from {sorted(JWT_SUPPORTED_ALGORITHMS)}",
        )
    if not jwt.issuer:
        raise ConfigError("auth.jwt.issuer", "required when JWTs are accepted")
    if not jwt.audience:
        raise ConfigError("auth.jwt.audience", "required when JWTs are accepted")
    if algorithms & JWT_SYMMETRIC_ALGORITHMS:
        if jwt.secret is None:
            raise ConfigError("auth.jwt.secret", "required for HS256/HS384/HS512")
        if len(jwt.secret.encode()) < 32:
            raise ConfigError("auth.jwt.secret", "must be at least 32 bytes")
    if algorithms & JWT_ASYMMETRIC_ALGORITHMS and not jwt.jwks:
        raise ConfigError("auth.jwt.jwks", "required for RS*/PS*/ES*/EdDSA (a file or URL)")
    if not jwt.client_claim:
        raise ConfigError("auth.jwt.client_claim", "must not be empty")
    if jwt.leeway < 0:
        raise ConfigError("auth.jwt.leeway", "must be >= 0")
    if jwt.jwks_refresh <= 0:
        raise ConfigError("auth.jwt.jwks_refresh", "must be > 0")


def _validate_auth(auth: AuthSettings) -> None:
    _validate_jwt(auth.jwt)
    names: set[str] = set()
    subjects: dict[str, str] = {}
    pattern_lists = [
        f
        for f in ClientSettings.__struct_fields__
        if f not in {"name", "certificate_subjects", "ce_max_deliveries"}
    ]
    for index, client in enumerate(auth.clients):
        where = f"auth.clients[{index}]"
        try:
            validate_client_name(client.name)
        except BadRequest as exc:
            raise ConfigError(f"{where}.name", exc.message) from None
        if client.name in names:
            raise ConfigError(f"{where}.name", f"client {client.name!r} is defined twice")
        names.add(client.name)
        if not 0 <= client.ce_max_deliveries <= MAX_DELIVERIES:
            raise ConfigError(f"{where}.ce_max_deliveries", f"must be 0 (off) to {MAX_DELIVERIES}")
        for field in pattern_lists:
            for pattern in getattr(client, field):
                try:
                    validate_pattern(pattern)
                except BadRequest as exc:
                    raise ConfigError(f"{where}.{field}", exc.message) from None
        for subject in client.certificate_subjects:
            if not subject:
                raise ConfigError(f"{where}.certificate_subjects", "must not hold empty names")
            if subject in subjects:
                raise ConfigError(
                    f"{where}.certificate_subjects",
                    f"{subject!r} already belongs to client {subjects[subject]!r}",
                )
            subjects[subject] = client.name


@functools.cache
def _settings_type() -> msgspec.inspect.Type:
    """The settings' description, made once (not once per variable)."""
    return msgspec.inspect.type_info(Settings)


def _setting_type(path: list[str]) -> msgspec.inspect.Type | None:
    """The type of the setting at ``path`` (``["cluster", "node_id"]``), if there is one."""
    found = _settings_type()
    for part in path:
        if not isinstance(found, msgspec.inspect.StructType):
            return None
        field = next((f for f in found.fields if f.encode_name == part), None)
        if field is None:
            return None
        found = field.type
    return found


def _is_text(kind: msgspec.inspect.Type | None) -> bool:
    """Whether a setting of type ``kind`` is text (or text or nothing)."""
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(isinstance(t, msgspec.inspect.StrType) for t in kind.types) and all(
            isinstance(t, msgspec.inspect.StrType | msgspec.inspect.NoneType) for t in kind.types
        )
    return isinstance(kind, msgspec.inspect.StrType)


def _env_value(raw: str, path: list[str]) -> Any:
    """A variable's value for the setting at ``path``. Text settings take it as it is: a
    node id ``42`` or a secret of digits is text, not a number. A list of text takes
    ``a,b`` as well as TOML's ``["a", "b"]``. Anything else is a TOML value where it
    parses (``true``, ``5``, ``2.5``), else the string (refused by the type check)."""
    kind = _setting_type(path)
    if _is_text(kind):
        return raw
    if (
        isinstance(kind, msgspec.inspect.ListType)
        and _is_text(kind.item_type)
        and not raw.lstrip().startswith("[")
    ):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue  # SLUICEGATE_ADMIN_KEY and friends are not settings
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(name, "conflicts with another variable")
        node[path[-1]] = _env_value(raw, path)
    return tree


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read settings from ``path`` (TOML), the environment and ``overrides``; validate them."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            tree = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--config", f"no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    tree = _merge(tree, _from_env(os.environ if environ is None else environ))
    if overrides:
        tree = _merge(tree, overrides)
    try:
        settings = msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec says "Expected `int`, got `str` - at `$.server.port`": name the key.
        text = str(exc)
        key = "settings"
        if " - at `$." in text:
            text, _, where = text.rpartition(" - at `$.")
            key = where.rstrip("`")
        raise ConfigError(key, text) from None
    return settings.validate()
