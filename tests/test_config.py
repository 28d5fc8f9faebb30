from pathlib import Path

import pytest

from sluicegate.config import load_settings
from sluicegate.errors import ConfigError
from sluicegate.storage.factory import open_log
from sluicegate.storage.kafka import KafkaLog


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.storage.data_dir == "./data"
    assert settings.records_v2.max_body_bytes == 64 * 1024


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "sluicegate.toml"
    config.write_text('[server]\nport = 9000\nnode_id = "a"\n[topics]\ndefault_partitions = 3\n')
    settings = load_settings(
        config,
        environ={"SLUICEGATE_SERVER__PORT": "9001", "SLUICEGATE_ADMIN_KEY": "not a setting"},
        overrides={"server": {"node_id": "b"}},
    )
    assert settings.server.port == 9001
    assert settings.server.node_id == "b"
    assert settings.topics.default_partitions == 3


def test_environment_values_are_toml_or_strings() -> None:
    settings = load_settings(
        environ={
            "SLUICEGATE_TOPICS__AUTO_CREATE": "false",
            "SLUICEGATE_STORAGE__DATA_DIR": "/var/lib/sluicegate",
        }
    )
    assert settings.topics.auto_create is False
    assert settings.storage.data_dir == "/var/lib/sluicegate"


def test_text_settings_take_the_variable_as_it_is() -> None:
    # A node id of digits, a secret of digits, a prefix that reads as a boolean: text.
    settings = load_settings(
        environ={
            "SLUICEGATE_CLUSTER__NODE_ID": "42",
            "SLUICEGATE_CLUSTER__SECRET": "1" * 35,
            "SLUICEGATE_CLOUDEVENTS__TOPIC_PREFIX": "true",
            "SLUICEGATE_SERVER__PORT": "9000",
        }
    )
    assert settings.cluster.node_id == "42"
    assert settings.cluster.secret == "1" * 35
    assert settings.cloudevents.topic_prefix == "true"
    assert settings.server.port == 9000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        ("10.0.0.0/8, ::1", ["10.0.0.0/8", "::1"]),
        ('["10.1.0.0/16"]', ["10.1.0.0/16"]),
    ],
)
def test_a_list_of_text_takes_commas_or_toml(raw: str, expected: list[str]) -> None:
    settings = load_settings(environ={"SLUICEGATE_SERVER__TRUSTED_PROXIES": raw})
    assert settings.server.trusted_proxies == expected


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"SLUICEGATE_SERVER__HOST": ""}, "server.host"),
        ({"SLUICEGATE_STORAGE__DATA_DIR": " "}, "storage.data_dir"),
        ({"SLUICEGATE_SERVER__PORT": "eighty"}, "server.port"),
        ({"SLUICEGATE_SERVER__PORT": "70000"}, "server.port"),
        ({"SLUICEGATE_SERVER__NO_SUCH": "1"}, "server"),
        ({"SLUICEGATE_TOPICS__DEFAULT_PARTITIONS": "0"}, "topics.default_partitions"),
        ({"SLUICEGATE_SERVER__TLS__CERTFILE": "cert.pem"}, "server.tls"),
        ({"SLUICEGATE_SERVER__HEADER_TIMEOUT": "0"}, "server.header_timeout"),
        ({"SLUICEGATE_SERVER__BODY_TIMEOUT": "-1"}, "server.body_timeout"),
        ({"SLUICEGATE_SERVER__KEEP_ALIVE_TIMEOUT": "0"}, "server.keep_alive_timeout"),
        ({"SLUICEGATE_SERVER__MAX_HEADER_BYTES": "100"}, "server.max_header_bytes"),
        ({"SLUICEGATE_CLOUDEVENTS__DEDUP_WINDOW": "0"}, "cloudevents.dedup_window"),
        ({"SLUICEGATE_CLOUDEVENTS__DEDUP_WINDOW": "31708800"}, "cloudevents.dedup_window"),
        ({"SLUICEGATE_CLOUDEVENTS__DEDUP_MAX_IDS": "0"}, "cloudevents.dedup_max_ids"),
        ({"SLUICEGATE_CLUSTER__NODE_ID": "a/b"}, "cluster.node_id"),
        ({"SLUICEGATE_CLUSTER__NODE_ID": "x" * 65}, "cluster.node_id"),
        ({"SLUICEGATE_SERVER__NODE_ID": "-a"}, "cluster.node_id"),
        (
            {"SLUICEGATE_CLUSTER__NODE_ID": "a", "SLUICEGATE_SERVER__NODE_ID": "b"},
            "cluster.node_id",
        ),
        ({"SLUICEGATE_CLUSTER__ADVERTISED_URL": "10.0.0.5:8080"}, "cluster.advertised_url"),
        ({"SLUICEGATE_CLUSTER__HEARTBEAT_INTERVAL": "0"}, "cluster.heartbeat_interval"),
        ({"SLUICEGATE_CLUSTER__HEARTBEAT_TIMEOUT": "3"}, "cluster.heartbeat_timeout"),
        ({"SLUICEGATE_CLUSTER__SECRET": "short"}, "cluster.secret"),
        ({"SLUICEGATE_CLUSTER__GROUP_SHARDS": "0"}, "cluster.group_shards"),
        ({"SLUICEGATE_CLUSTER__GROUP_SHARDS": "4097"}, "cluster.group_shards"),
        ({"SLUICEGATE_CLUSTER__SECRET": "x" * 31 + "\n"}, "cluster.secret"),
    ],
)
def test_bad_values_name_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert info.value.key == key


def test_cluster_node_id_is_the_bridge() -> None:
    """``cluster.node_id`` and ``server.node_id`` name one thing; either sets both."""
    default = load_settings(environ={})
    assert default.cluster.node_id == default.server.node_id == "node-1"
    for variable in ("SLUICEGATE_CLUSTER__NODE_ID", "SLUICEGATE_SERVER__NODE_ID"):
        settings = load_settings(environ={variable: "gw-2.eu"})
        assert settings.cluster.node_id == settings.server.node_id == "gw-2.eu"
    both = {"SLUICEGATE_CLUSTER__NODE_ID": "gw-2", "SLUICEGATE_SERVER__NODE_ID": "gw-2"}
    assert load_settings(environ=both).server.node_id == "gw-2"
    cluster = load_settings(
        environ={
            "SLUICEGATE_CLUSTER__ADVERTISED_URL": "http://10.0.0.5:8080",
            "SLUICEGATE_CLUSTER__HEARTBEAT_INTERVAL": "1",
            "SLUICEGATE_CLUSTER__HEARTBEAT_TIMEOUT": "2",
            "SLUICEGATE_CLUSTER__SECRET": "s" * 32,
            "SLUICEGATE_CLUSTER__GROUP_SHARDS": "16",
        }
    ).cluster
    assert (cluster.advertised_url, cluster.heartbeat_timeout) == ("http://10.0.0.5:8080", 2)
    assert (cluster.group_shards, default.cluster.group_shards) == (16, 64)
    assert "s" * 32 not in repr(cluster)


def test_bad_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_kafka_from_two_variables_and_a_client_table(tmp_path: Path) -> None:
    config = tmp_path / "sluicegate.toml"
    config.write_text(
        '[kafka.client]\n"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "PLAIN"\n'
        '"sasl.username" = "gw"\n"sasl.password" = "secret"\n'
    )
    settings = load_settings(
        config,
        environ={
            "SLUICEGATE_STORAGE__BACKEND": "kafka",
            "SLUICEGATE_KAFKA__BOOTSTRAP_SERVERS": "10.0.0.1:9092,10.0.0.2:9092",
        },
    )
    assert settings.storage.backend == "kafka"
    assert settings.kafka.bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"
    assert settings.kafka.client == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "gw",
        "sasl.password": "secret",
    }
    log = open_log(settings)
    assert isinstance(log, KafkaLog)


@pytest.mark.parametrize(
    ("kafka", "key", "message"),
    [
        ({}, "kafka.bootstrap_servers", "required"),
        ({"bootstrap_servers": "no-port"}, "kafka.bootstrap_servers", "host:port"),
        ({"bootstrap_servers": "h:1", "client": {"acks": "1"}}, "kafka.client", "'acks'"),
        (
            {"bootstrap_servers": "h:1", "client": {"allow.auto.create.topics": True}},
            "kafka.client",
            "'allow.auto.create.topics'",
        ),
        (
            {"bootstrap_servers": "h:1", "client": {"no.such.setting": "1"}},
            "kafka.client",
            'librdkafka refuses it: No such configuration property: "no.such.setting"',
        ),
        (
            {"bootstrap_servers": "h:1", "client": {"linger.ms": "soon"}},
            "kafka.client",
            "Invalid value",
        ),
        (
            {
                "bootstrap_servers": "h:1",
                "client": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"},
            },
            "kafka.client",
            "sasl.username and sasl.password must be set",
        ),
        ({"bootstrap_servers": "h:1", "linger_ms": -1}, "kafka.linger_ms", ">= 0"),
        ({"bootstrap_servers": "h:1", "request_timeout": 0}, "kafka.request_timeout", "> 0"),
        ({"bootstrap_servers": "h:1", "replication_factor": 0}, "kafka.replication_factor", "-1"),
        ({"bootstrap_servers": "h:1", "topic_prefix": "a b"}, "kafka.topic_prefix", "a-zA-Z"),
    ],
)
def test_bad_kafka_settings_name_the_key(kafka: dict[str, object], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(environ={}, overrides={"storage": {"backend": "kafka"}, "kafka": kafka})
    assert info.value.key == key


def test_kafka_settings_are_not_checked_for_sqlite() -> None:
    assert load_settings(environ={}).storage.backend == "sqlite"


def test_kafka_secrets_are_not_shown() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "storage": {"backend": "kafka"},
            "kafka": {
                "bootstrap_servers": "h:1",
                "client": {"sasl.username": "gw", "sasl.password": "hunter2"},
            },
        },
    )
    shown = repr(settings.kafka)
    assert "hunter2" not in shown
    assert "'sasl.username': 'gw'" in shown


def test_cloudevents_defaults_and_schemas_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sluicegate.toml"
    path.write_text(
        '[[cloudevents.schemas]]\ntype = "Order.Created"\nfile = "order.json"\n'
        '[[cloudevents.schemas]]\ntype = "Order.Paid"\nschema = { type = "object" }\n'
    )
    ce = load_settings(path, environ={}).cloudevents
    assert (ce.max_request_bytes, ce.max_event_bytes) == (1024 * 1024, 64 * 1024)
    assert (ce.partitions, ce.retention_ms, ce.clock_skew) == (12, 120 * 3600 * 1000, 5.0)
    assert [s.type for s in ce.schemas] == ["Order.Created", "Order.Paid"]
    assert ce.schemas[1].schema == {"type": "object"}


@pytest.mark.parametrize(
    ("cloudevents", "key"),
    [
        ({"max_event_bytes": 0}, "cloudevents.max_event_bytes"),
        ({"clock_skew": -1}, "cloudevents.clock_skew"),
        ({"partitions": 0}, "cloudevents.partitions"),
        ({"schemas": [{"type": "T"}]}, "cloudevents.schemas[0]"),
        ({"schemas": [{"type": "", "schema": "{}"}]}, "cloudevents.schemas[0].type"),
    ],
)
def test_bad_cloudevents_settings_name_the_key(cloudevents: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"cloudevents": cloudevents})
    assert caught.value.key == key
