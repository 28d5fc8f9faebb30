"""Settings: one typed shape, read from a TOML file and ``SLUICEGATE_*`` variables.

Precedence, lowest first: defaults, the TOML file, the environment, command-line flags.
An environment variable names a setting by its section and key joined with a double
underscore, e.g. ``SLUICEGATE_SERVER__PORT=9000`` or ``SLUICEGATE_STORAGE__DATA_DIR=/var/lib/sg``;
values are parsed as TOML values where they can be (``true``, ``5``, ``["a", "b"]``),
else taken as strings. Every problem is reported as a ``ConfigError`` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from sluicegate.errors import ConfigError

__all__ = [
    "AuthSettings",
    "ClientSettings",
    "JwtSettings",
    "LimitSettings",
    "RecordsV2Settings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "TlsSettings",
    "TopicSettings",
    "load_settings",
]

ENV_PREFIX = "SLUICEGATE_"


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class TlsSettings(_Section):
    """TLS for the listener; with ``client_ca`` set, client certificates are required."""

    certfile: str | None = None
    keyfile: str | None = None
    client_ca: str | None = None


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    #: This node's id; the cloudevents dialect calls it the bridge.
    node_id: str = "node-1"
    #: Seconds in-flight requests get to finish on shutdown.
    graceful_shutdown: float = 10.0
    #: ``json``, ``text``, or ``auto`` (JSON unless stderr is a terminal).
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False
    tls: TlsSettings = msgspec.field(default_factory=TlsSettings)


class StorageSettings(_Section):
    backend: Literal["sqlite"] = "sqlite"
    data_dir: str = "./data"
    #: Seconds a produce request waits for its durable commit before answering 408.
    append_timeout: float = 30.0
    #: Writes queued for the writer before new ones are refused with 503.
    max_pending_appends: int = 100_000
    #: Records one transaction may hold; bigger queues are committed in several.
    max_commit_records: int = 20_000
    #: Seconds between retention passes.
    retention_interval: float = 30.0


class TopicSettings(_Section):
    #: Create a topic on first produce, as Kafka's ``auto.create.topics.enable``.
    auto_create: bool = True
    default_partitions: int = 1
    default_retention_ms: int | None = 7 * 24 * 3600 * 1000


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
    leeway: float = 30.0


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
    #: Subjects (CN or SAN) of TLS client certificates that authenticate as this client.
    certificate_subjects: list[str] = msgspec.field(default_factory=list)


class AuthSettings(_Section):
    #: Off only for local experiments: then the server binds to loopback only.
    enabled: bool = True
    jwt: JwtSettings = msgspec.field(default_factory=JwtSettings)
    clients: list[ClientSettings] = msgspec.field(default_factory=list)


class LimitSettings(_Section):
    max_concurrent_requests: int = 4096
    max_concurrent_requests_per_client: int = 1024
    max_long_polls: int = 10_000
    max_websockets: int = 10_000
    #: Token bucket per client and dialect: sustained requests per second, and burst.
    rate_per_second: float = 0.0
    rate_burst: int = 0
    max_json_depth: int = 64


class RecordsV2Settings(_Section):
    max_body_bytes: int = 64 * 1024


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    topics: TopicSettings = msgspec.field(default_factory=TopicSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    records_v2: RecordsV2Settings = msgspec.field(default_factory=RecordsV2Settings)

    def validate(self) -> Settings:
        """Check what types cannot say; raise ``ConfigError`` naming the key."""
        checks: list[tuple[bool, str, str]] = [
            (0 <= self.server.port <= 65535, "server.port", "must be between 0 and 65535"),
            (self.server.graceful_shutdown >= 0, "server.graceful_shutdown", "must be >= 0"),
            (self.storage.append_timeout > 0, "storage.append_timeout", "must be > 0"),
            (self.storage.max_pending_appends > 0, "storage.max_pending_appends", "must be > 0"),
            (self.storage.max_commit_records > 0, "storage.max_commit_records", "must be > 0"),
            (self.storage.retention_interval > 0, "storage.retention_interval", "must be > 0"),
            (self.topics.default_partitions >= 1, "topics.default_partitions", "must be >= 1"),
            (self.records_v2.max_body_bytes > 0, "records_v2.max_body_bytes", "must be > 0"),
            (self.limits.rate_per_second >= 0, "limits.rate_per_second", "must be >= 0"),
            (self.limits.max_json_depth >= 1, "limits.max_json_depth", "must be >= 1"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(key, message)
        tls = self.server.tls
        if (tls.certfile is None) != (tls.keyfile is None):
            raise ConfigError("server.tls", "certfile and keyfile must be set together")
        if tls.client_ca is not None and tls.certfile is None:
            raise ConfigError("server.tls.client_ca", "needs server.tls.certfile and keyfile")
        return self


def _env_value(raw: str) -> Any:
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
        node[path[-1]] = _env_value(raw)
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
