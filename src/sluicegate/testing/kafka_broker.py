"""Apache Kafka brokers (KRaft, no ZooKeeper) on 127.0.0.1: one node, or a cluster of several.

For development, tests and CI: nothing to install by hand but Java 17+ and Maven.
``fetch`` resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with
Maven into a cache kept between runs; ``KafkaBroker`` formats a fresh storage directory,
starts a combined broker/controller on free loopback ports, waits until it answers
metadata requests, and stops it with SIGTERM (Kafka's own clean shutdown). Given users,
it also listens for SASL clients (and, given a key and certificate, for SASL over TLS,
and, given a client CA, for clients with a certificate) and authorizes them by ACLs, as a
production cluster would. ``KafkaCluster`` runs several
such nodes as one cluster (each a broker and a voter of the controller quorum), whose
topics keep three replicas and need two in sync, as production clusters are set up: a
node can be stopped or killed and its partitions' leadership moves to another.

    python -m sluicegate.testing.kafka_broker fetch     # resolve the jars once
    python -m sluicegate.testing.kafka_broker run       # serve until Ctrl-C
    python -m sluicegate.testing.kafka_broker run --version 3.9.1   # another release
"""

from __future__ import annotations

import abc
import argparse
import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "KafkaBroker",
    "KafkaCluster",
    "cache_dir",
    "fetch",
    "main",
]

#: The broker's version; its jars are cached per version.
KAFKA_VERSION = "4.1.1"
#: Kafka 4.1 brings slf4j-api 1.7, whose bindings are found by class name: the binding
#: must be of the same line, or the broker logs nothing at all.
_SLF4J_BINDING = ("org.slf4j", "slf4j-simple", "1.7.36")
#: Marks a complete jar directory: a fetch that died half-way is redone.
_COMPLETE = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluicegate.dev</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{binding[0]}</groupId><artifactId>{binding[1]}</artifactId>
      <version>{binding[2]}</version>
    </dependency>
  </dependencies>
</project>
"""


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started; the message says why."""


def cache_dir() -> Path:
    """Where jars are kept between runs: ``$SLUICEGATE_KAFKA_CACHE`` or the user's cache."""
    explicit = os.environ.get("SLUICEGATE_KAFKA_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sluicegate" / "kafka"


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BrokerError(f"{tool!r} is not on PATH; {hint}")
    return found


def fetch(version: str = KAFKA_VERSION, *, cache: Path | None = None) -> Path:
    """The directory holding the broker's jars, resolved with Maven on first use.

    Concurrent callers (parallel test runs) wait on one lock instead of fetching twice.
    """
    root = (cache or cache_dir()) / version
    lib = root / "lib"
    if (lib / _COMPLETE).exists():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (lib / _COMPLETE).exists():
            return lib
        mvn = _require("mvn", "install Maven (Debian: apt-get install maven)")
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=root))
        (root / "pom.xml").write_text(_POM.format(version=version, binding=_SLF4J_BINDING))
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(root / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = done.stdout[-4000:] + done.stderr[-4000:]
            raise BrokerError(f"Maven could not resolve Kafka {version}:\n{output}")
        (staging / _COMPLETE).touch()
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    return lib


def _free_port(taken: set[int] | None = None) -> int:
    """A loopback port free now and not in ``taken``, which it joins: the kernel may hand
    out a port just released again, and a broker's two listeners may not share one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if taken is None:
            return port
        if port not in taken:
            taken.add(port)
            return port


#: Kafka's validator of signed JWTs, keys from ``sasl.oauthbearer.jwks.endpoint.url``.
_JWT_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _pkcs12(key_pem: bytes, chain_pem: bytes, password: str) -> bytes:
    """A PKCS #12 key store (Kafka's default kind) of a PEM key and certificate chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        load_pem_private_key,
        pkcs12,
    )

    key = load_pem_private_key(key_pem, password=None)
    leaf, *chain = x509.load_pem_x509_certificates(chain_pem)
    return pkcs12.serialize_key_and_certificates(
        b"listener",
        key,  # type: ignore[arg-type]
        leaf,
        chain or None,
        BestAvailableEncryption(password.encode()),
    )


class _Running(abc.ABC):
    """Started by ``with``, stopped at its end."""

    @abc.abstractmethod
    def start(self) -> None:
        """Run, and return once clients can use it."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop cleanly (and for good, if it does not end in time)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class KafkaBroker(_Running):
    """One combined broker/controller whose storage lives in ``directory``.

    ``start()`` formats the storage on first start only, so a stopped broker started again
    on the same directory keeps its records, as a real one does. Alone, it is a cluster of
    one; ``KafkaCluster`` makes several of them one cluster (``node_id``, ``voters``,
    ``cluster_id`` and ``replicas``).
    """

    def __init__(
        self,
        directory: Path,
        *,
        version: str = KAFKA_VERSION,
        port: int = 0,
        # A test session creates thousands of partitions (CloudEvents topics have 12 each),
        # and each costs the broker heap: at 512 MB about 11,500 of them left it in
        # back-to-back full collections, answering nothing.
        heap: str = "2g",
        advertised_port: int | None = None,
        auto_create_topics: bool = False,
        sasl_users: Mapping[str, str] | None = None,
        tls: tuple[bytes, bytes] | None = None,
        client_ca: bytes | None = None,
        oauthbearer_jwks_url: str | None = None,
        node_id: int = 1,
        controller_port: int | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
        replicas: int = 1,
    ) -> None:
        self.directory = directory
        self.node_id = node_id
        #: ``controller.quorum.voters``: this node alone unless given.
        self._voters = voters
        #: Given to the nodes of one cluster; a node alone asks Kafka's tool for one.
        self._cluster_id = cluster_id
        #: Replicas of the internal topics and of topics created without a count, with one
        #: fewer needed in sync (one needs one).
        self.replicas = replicas
        #: Users and passwords of a second listener, ``SASL_PLAINTEXT`` with the ``PLAIN``
        #: mechanism, whose principals (``User:<name>``) are authorized by ACLs; the plain
        #: listener's clients stay super users (``User:ANONYMOUS``), so a test grants ACLs
        #: through it. None: no such listener and no authorizer. The SASL listeners take
        #: ``SCRAM-SHA-512`` too, for users whose credentials a client made
        #: (``alter_user_scram_credentials``: they live in the cluster's metadata), and
        #: ``OAUTHBEARER`` with Kafka's unsecured tokens (any user, its name the token's
        #: subject, no signature checked: the mechanism's path, not an identity provider).
        self.sasl_users = dict(sasl_users) if sasl_users is not None else None
        #: Ports given or picked, so that no two picked are the same.
        taken = {p for p in (port, advertised_port, controller_port) if p}
        self.sasl_port = _free_port(taken) if sasl_users is not None else None
        #: An identity provider's JWKS address: ``OAUTHBEARER`` then takes only tokens it
        #: signed (Kafka's JWT validator, as a cluster with OIDC runs), in place of the
        #: unsecured ones (with ``sasl_users`` only).
        self.oauthbearer_jwks_url = oauthbearer_jwks_url
        if oauthbearer_jwks_url is not None and sasl_users is None:
            raise BrokerError("OAUTHBEARER is a mechanism of the SASL listeners: give sasl_users")
        #: The private key and certificate chain (PEM) of a third listener, ``SASL_SSL``,
        #: for the same users (with ``sasl_users`` only).
        self.tls = tls
        self.sasl_ssl_port = _free_port(taken) if tls is not None else None
        if tls is not None and sasl_users is None:
            raise BrokerError("a TLS listener is one of SASL users: give sasl_users too")
        #: The CA (PEM) of a fourth listener, ``SSL`` with client certificates required,
        #: whose principal is the certificate's common name (``User:<CN>``, the usual
        #: ``ssl.principal.mapping.rules``), authorized by the same ACLs (with ``tls``).
        self.client_ca = client_ca
        self.ssl_port = _free_port(taken) if client_ca is not None else None
        if client_ca is not None and tls is None:
            raise BrokerError("a listener for client certificates needs tls (its own)")
        #: ``auto.create.topics.enable``: Kafka's default is on, the tests' broker's off.
        self.auto_create_topics = auto_create_topics
        self.version = version
        self.port = port or _free_port(taken)
        #: The port clients are told to connect to: another than ``port`` puts a proxy
        #: (the fault tests') between every client and the broker.
        self.advertised_port = advertised_port or self.port
        self.controller_port = controller_port or _free_port(taken)
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path = directory / "broker.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The ``SASL_PLAINTEXT`` listener's address (a broker started with ``sasl_users``)."""
        if self.sasl_port is None:
            raise BrokerError("this broker has no SASL listener (start it with sasl_users)")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The ``SASL_SSL`` listener's address (a broker started with ``tls``)."""
        if self.sasl_ssl_port is None:
            raise BrokerError("this broker has no TLS listener (start it with tls)")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap_servers(self) -> str:
        """The ``SSL`` listener's address (a broker started with ``client_ca``)."""
        if self.ssl_port is None:
            raise BrokerError("this broker has no client-certificate listener (client_ca)")
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def log_path(self) -> Path:
        """The broker's own log (stdout and stderr)."""
        return self._log_file

    def _properties(self) -> str:
        data = self.directory / "data"
        replicas = str(self.replicas)
        in_sync = str(max(1, self.replicas - 1))
        voters = self._voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertised_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            # One node: every topic has one replica, and min ISR 1. Several: a node may
            # be lost without losing an acknowledged record or stopping writes.
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            # Tests create groups constantly: no three-second wait before the first rebalance.
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
        }
        if self.replicas > 1:
            # A node killed is declared gone after its session times out (9 s by
            # default) and its partitions get new leaders then: sooner, for tests.
            settings["broker.session.timeout.ms"] = "4000"
            settings["broker.heartbeat.interval.ms"] = "1000"
        if self.sasl_users is not None:
            settings.update(self._sasl_properties(self.sasl_users))
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _sasl_properties(self, users: Mapping[str, str]) -> dict[str, str]:
        accounts = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        login = f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};"
        listeners = {"SASL_PLAINTEXT": self.sasl_port}
        if self.sasl_ssl_port is not None:
            listeners["SASL_SSL"] = self.sasl_ssl_port
        if self.ssl_port is not None:
            listeners["SSL"] = self.ssl_port
        extra = "".join(f",{name}://127.0.0.1:{port}" for name, port in listeners.items())
        settings = {
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}{extra}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertised_port}{extra}",
            "listener.security.protocol.map": ",".join(
                f"{name}:{name}" for name in ("PLAINTEXT", *listeners)
            )
            + ",CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512,OAUTHBEARER",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller's listener and the plain one authenticate nobody: their
            # principal is ANONYMOUS, a super user, as the broker's own requests must be.
            "super.users": "User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        # Kafka's unsecured validator (its default): the token's "sub" is the principal,
        # its signature is not checked. For tests of the mechanism, never for production.
        oauth = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
        for name in listeners.keys() - {"SSL"}:
            settings[f"listener.name.{name.lower()}.plain.sasl.jaas.config"] = login
            settings[f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config"] = scram
            settings[f"listener.name.{name.lower()}.oauthbearer.sasl.jaas.config"] = oauth
            if self.oauthbearer_jwks_url is not None:
                handler = f"listener.name.{name.lower()}.oauthbearer.sasl.server.callback.handler"
                settings[f"{handler}.class"] = _JWT_VALIDATOR
        if self.oauthbearer_jwks_url is not None:
            settings["sasl.oauthbearer.jwks.endpoint.url"] = self.oauthbearer_jwks_url
        if self.tls is not None:
            password = "sluicegate-test-keystore"
            keystore = self.directory / "listener.p12"
            keystore.write_bytes(_pkcs12(*self.tls, password))
            settings.update(
                {
                    "ssl.keystore.type": "PKCS12",
                    "ssl.keystore.location": str(keystore),
                    "ssl.keystore.password": password,
                    "ssl.key.password": password,
                }
            )
        if self.client_ca is not None:
            authorities = self.directory / "client-ca.pem"
            authorities.write_bytes(self.client_ca)
            settings.update(
                {
                    "listener.name.ssl.ssl.client.auth": "required",
                    "listener.name.ssl.ssl.truststore.type": "PEM",
                    "listener.name.ssl.ssl.truststore.location": str(authorities),
                    "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
                }
            )
        return settings

    def _system_properties(self) -> list[str]:
        """The broker JVM's ``-D`` settings: Kafka (4.0 on) fetches keys only from the
        addresses this one allows."""
        if self.oauthbearer_jwks_url is None:
            return []
        return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oauthbearer_jwks_url}"]

    def _java(self, lib: Path, *args: str, heap: str = "256m") -> list[str]:
        java = _require("java", "install a Java 17+ runtime (Debian: apt-get install default-jre)")
        return [java, f"-Xmx{heap}", "-cp", f"{lib}/*", *args]

    def _format(self, lib: Path, properties: Path) -> None:
        if (self.directory / "data" / "meta.properties").exists():
            return
        cluster_id = self._cluster_id
        if cluster_id is None:
            made = subprocess.run(
                self._java(lib, "kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=False,
            )
            cluster_id = made.stdout.strip().splitlines()[-1] if made.returncode == 0 else ""
            if not cluster_id:
                raise BrokerError(f"kafka-storage random-uuid failed:\n{made.stderr[-4000:]}")
        done = subprocess.run(
            self._java(
                lib, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"kafka-storage format failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )

    def start(self, timeout: float = 180.0) -> None:
        """Fetch if needed, format on first start, run, and wait until metadata answers."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Fetch if needed, format on first start, and run, without waiting for it (a node
        of a cluster answers only once a majority of its quorum runs)."""
        lib = fetch(self.version)
        self.directory.mkdir(parents=True, exist_ok=True)
        properties = self.directory / "server.properties"
        properties.write_text(self._properties())
        self._format(lib, properties)
        with open(self._log_file, "ab") as log:
            self._process = subprocess.Popen(
                self._java(
                    lib, *self._system_properties(), "kafka.Kafka", str(properties), heap=self.heap
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: Ctrl-C in a terminal reaches us, and we stop it cleanly.
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> None:
        """Return once the launched broker answers metadata requests naming a broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with {self._process.returncode}; "
                    f"last lines of its log:\n{self._tail()}"
                )
            if _answers("127.0.0.1", self.port) and self._metadata_answers():
                return
            time.sleep(0.25)
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s:\n{self._tail()}")

    def _metadata_answers(self) -> bool:
        # The port opens before the broker has joined its own quorum; a metadata answer
        # naming this broker means clients can use it.
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:  # without the client library, an open port is the best we know
            return True
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            return bool(admin.list_topics(timeout=2.0).brokers)
        except Exception:  # noqa: BLE001 - any failure here means "not yet"
            return False

    def _tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        """Whether the broker's process is alive (started, and not stopped or dead)."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM for a clean shutdown; SIGKILL if it does not end in ``timeout``."""
        _end(self._terminate(), timeout)

    def _terminate(self) -> subprocess.Popen[bytes] | None:
        """SIGTERM, not waiting: the process to wait for, if it was running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None
        process.send_signal(signal.SIGTERM)
        return process

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: no clean shutdown, no flush."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _end(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Wait up to ``timeout`` for a terminated broker to end, then kill it."""
    if process is None:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def _cluster_id() -> str:
    """A cluster id as Kafka makes them (``Uuid``: 16 random bytes, URL-safe base64), never
    starting with ``-``, which the storage tool would read as an option."""
    while True:
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not made.startswith("-"):
            return made


def _java_hash(text: str) -> int:
    """Java's ``String.hashCode``: over UTF-16 code units, in 32-bit arithmetic."""
    units = text.encode("utf-16-be")
    value = 0
    for i in range(0, len(units), 2):
        value = (value * 31 + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _java_abs(value: int) -> int:
    """Kafka's ``Utils.abs``: the smallest int is 0, not itself."""
    return 0 if value == -(1 << 31) else abs(value)


class KafkaCluster(_Running):
    """``size`` combined broker/controllers on 127.0.0.1 forming one cluster, each node a
    voter of the controller quorum, in ``directory/node-<id>``.

    Every topic created without a replica count gets one per node, up to three, and
    needs one fewer in sync: a single node may stop or die without an acknowledged
    record lost or writes refused, as in production. Nodes are reached as ``brokers``
    (``node(id)``) to stop, kill and start one at a time.
    """

    def __init__(
        self,
        directory: Path,
        *,
        size: int = 3,
        version: str = KAFKA_VERSION,
        heap: str = "1g",
    ) -> None:
        if size < 2:
            raise BrokerError("a cluster has two nodes or more; KafkaBroker runs one")
        picked: set[int] = set()
        controller_ports = [_free_port(picked) for _ in range(size)]
        voters = ",".join(f"{i}@127.0.0.1:{port}" for i, port in enumerate(controller_ports, 1))
        cluster_id = _cluster_id()
        self.brokers = [
            KafkaBroker(
                directory / f"node-{node_id}",
                version=version,
                heap=heap,
                node_id=node_id,
                controller_port=port,
                voters=voters,
                cluster_id=cluster_id,
                replicas=min(size, 3),
            )
            for node_id, port in enumerate(controller_ports, 1)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(broker.bootstrap_servers for broker in self.brokers)

    def node(self, node_id: int) -> KafkaBroker:
        return self.brokers[node_id - 1]

    def start(self, timeout: float = 240.0) -> None:
        """Launch every node, then wait until each answers naming all of them."""
        deadline = time.monotonic() + timeout
        try:
            for broker in self.brokers:
                broker.launch()
            for broker in self.brokers:
                broker.wait_ready(max(1.0, deadline - time.monotonic()))
            self._until_all_known(deadline)
        except BaseException:
            self.stop()
            raise

    def _until_all_known(self, deadline: float) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        known = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                known = len(admin.list_topics(timeout=2.0).brokers)
                if known == len(self.brokers):
                    return
            time.sleep(0.25)
        raise BrokerError(f"the cluster names {known} of its {len(self.brokers)} brokers")

    def leader(self, topic: str, partition: int = 0) -> KafkaBroker:
        """The node leading ``partition`` of ``topic`` now."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        found = admin.list_topics(topic, timeout=10.0).topics.get(topic)
        if found is None or found.error is not None or partition not in found.partitions:
            raise BrokerError(f"the cluster has no partition {partition} of {topic!r}")
        node_id = found.partitions[partition].leader
        if node_id < 1:
            raise BrokerError(f"partition {partition} of {topic!r} has no leader now")
        return self.node(node_id)

    def until_fully_replicated(self, timeout: float = 120.0) -> None:
        """Return once every partition of every topic has all its replicas in sync: what
        an operator waits for before restarting the next broker of a rolling restart."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout
        behind: list[str] = ["(not asked yet)"]
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                topics = admin.list_topics(timeout=5.0).topics.values()
                behind = [
                    f"{topic.topic}/{partition.id}"
                    for topic in topics
                    for partition in topic.partitions.values()
                    if sorted(partition.isrs) != sorted(partition.replicas)
                ]
                if not behind:
                    return
            time.sleep(0.25)
        raise BrokerError(f"partitions not fully replicated after {timeout:.0f}s: {behind[:10]}")

    def coordinator(self, internal_topic: str, key: str) -> KafkaBroker:
        """The node coordinating ``key`` now: a transactional id (``__transaction_state``)
        or a group id (``__consumer_offsets``), which Kafka hashes to a partition of that
        topic (``partitionFor``: ``Utils.abs(key.hashCode()) % partitions``) whose leader
        coordinates it. No admin API names a transaction's coordinator."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        found = admin.list_topics(internal_topic, timeout=10.0).topics.get(internal_topic)
        if found is None or found.error is not None or not found.partitions:
            raise BrokerError(f"the cluster has no {internal_topic} yet")
        return self.leader(internal_topic, _java_abs(_java_hash(key)) % len(found.partitions))

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to every running node at once (each waits for the quorum while it shuts
        down cleanly), then wait for them all."""
        processes = [broker._terminate() for broker in self.brokers]
        for process in processes:
            _end(process, timeout)


@contextlib.contextmanager
def _directory(path: str | None) -> Iterator[Path]:
    if path:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="sluicegate-kafka-") as temporary:
        yield Path(temporary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluicegate.testing.kafka_broker")
    commands = parser.add_subparsers(dest="command", required=True)
    fetching = commands.add_parser("fetch", help="resolve the broker's jars into the cache")
    run = commands.add_parser("run", help="serve a broker until interrupted")
    for command in (fetching, run):
        command.add_argument("--version", default=KAFKA_VERSION, help="Apache Kafka's version")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--dir", help="storage directory (kept); a temporary one by default")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.version))
            return 0
        with (
            _directory(args.dir) as directory,
            KafkaBroker(directory, port=args.port, version=args.version) as broker,
        ):
            # Blocked only now: the broker must not inherit a mask that ignores SIGTERM.
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            print(
                f"Kafka {broker.version} on {broker.bootstrap_servers} (Ctrl-C stops it)",
                flush=True,
            )
            signal.sigwait(stop_signals)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
